/**
 * hello: the machine's yardsticks. Every server answers `GET /` with a 5-byte "hello" (the
 * static case with a 1 KiB file), so what is measured is the cost of HTTP itself in each
 * server: the ceiling nginx sets, what node:http costs, what a parser-less Node socket costs,
 * and where gunicorn's sync workers sit.
 *
 * Brigade's own cases (`brigade web`, `brigade app`) join by adding entries to `cases`; each
 * entry is `{ name, start }`, and `nodeCase` or `startCommand` from bench/lib cover commands.
 */
import { startGunicorn, startNginx } from "../lib/peers.ts";
import { type Case, defineSuite, nodeCase } from "../lib/suite.ts";

const kib = `${"x".repeat(1023)}\n`;

const wsgiHello = `def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]
`;

export const cases: Case[] = [
  {
    name: "nginx return",
    description: 'nginx, 1 worker, `return 200 "hello"`, access_log off',
    start: () => startNginx({ workers: 1, serverBlock: 'location / { return 200 "hello"; }' }),
  },
  {
    name: "nginx static 1k",
    description: "nginx, 1 worker, a 1 KiB file; sendfile, open_file_cache, access_log off",
    start: async () => {
      const server = await startNginx({
        workers: 1,
        files: { "html/1k.txt": kib },
        http: "  sendfile on;\n  tcp_nopush on;\n  open_file_cache max=1000 inactive=60s;\n  open_file_cache_valid 60s;",
      });
      return { ...server, url: `${server.url}1k.txt` };
    },
  },
  nodeCase("node http", "bench/servers/nodeHttp.ts", [], "bare node:http, 1 process"),
  nodeCase(
    "node cluster x2",
    "bench/servers/nodeCluster.ts",
    ["2"],
    "node:http under node:cluster, 2 workers (primary distributes round-robin)",
  ),
  nodeCase(
    "node net raw",
    "bench/servers/netRaw.ts",
    [],
    "bare `net` server writing a prepared response: Node's ceiling, no HTTP parsing",
  ),
  {
    name: "gunicorn sync x2",
    description:
      "gunicorn, sync worker class, 2 workers, a WSGI hello (no keep-alive: sync closes)",
    start: () => startGunicorn({ app: wsgiHello, args: ["-k", "sync", "-w", "2"] }),
  },
];

export default defineSuite({
  description: "hello world: the HTTP cost of each server on this machine",
  baseline: "nginx return",
  tools: ["nginx", "gunicorn"],
  cases,
});
