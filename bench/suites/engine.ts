/**
 * engine: Brigade's own HTTP/1 engine (issue 10) against nginx and node:http, one worker each,
 * `GET /` ("hello", nginx `return 200`) and `GET /1k` (1 KiB) on every case:
 *
 * - nginx: `/` is `return 200 "hello"`, `/1k` a static 1 KiB file (sendfile, open_file_cache,
 *   access_log off: tuned fairly, as issue 10 asks);
 * - brigade web, `engine: "brigade"` and `engine: "node"`: a real master with one worker, `/` a
 *   `return` location, `/1k` the same 1 KiB file through the static module (open-file cache on,
 *   its default), no access log: the whole pipeline runs;
 * - the two engines alone (bench/servers/engineBare.ts: the listener and engine, no pipeline),
 *   and a bare node:http server: where the time goes, engine or pipeline;
 * - Node's floor: a bare `net` server writing prepared responses (bench/servers/netRawFiles.ts).
 *
 * `npm run bench -- engine` (see docs/benchmarks.md); the idle-connection memory is measured by
 * bench/idle.ts.
 */
import { startCommand, startNginx } from "../lib/peers.ts";
import { benchFile, type Case, defineSuite, nodeCase, startBrigadeWeb } from "../lib/suite.ts";

const kib = `${"x".repeat(1023)}\n`;

function brigadeWeb(engine: "brigade" | "node", root?: string): Case {
  const name = `brigade web (${engine})${root === undefined ? "" : ` @${root}`}`;
  return {
    name,
    description: `brigade web, \`engine: "${engine}"\`, 1 worker process, \`/\`: \`return\`, \`/1k\`: the static module (its open-file cache on, as by default), no access log, \`keepaliveRequests: 100000\` (as nginx's \`keepalive_requests\`)`,
    start: () =>
      startBrigadeWeb({
        name,
        root,
        files: { "html/1k": kib },
        config: (port) => ({
          web: {
            workers: 1,
            engine,
            // nginx's in bench/lib/peers.ts: the same connection recycling on both sides.
            keepaliveRequests: 100_000,
            servers: [
              {
                listen: [`127.0.0.1:${port}`],
                root: "html",
                locations: [{ match: "= /", return: "200 hello" }],
              },
            ],
          },
        }),
      }),
  };
}

export const cases: Case[] = [
  {
    name: "nginx",
    description:
      'nginx, 1 worker, `/`: `return 200 "hello"`, `/1k`: a 1 KiB file (sendfile, tcp_nopush, open_file_cache), access_log off',
    start: () =>
      startNginx({
        workers: 1,
        files: { "html/1k": kib },
        http: "  sendfile on;\n  tcp_nopush on;\n  open_file_cache max=1000 inactive=60s;\n  open_file_cache_valid 60s;",
        serverBlock: 'location = / { return 200 "hello"; }\n    location = /1k { }',
      }),
  },
  brigadeWeb("brigade"),
  brigadeWeb("node"),
  nodeCase(
    "engine alone (brigade)",
    "bench/servers/engineBare.ts",
    ["brigade"],
    "Brigade's engine behind the listener, a fixed handler, no pipeline",
  ),
  nodeCase(
    "engine alone (node)",
    "bench/servers/engineBare.ts",
    ["node"],
    "the node:http engine behind the listener, a fixed handler, no pipeline",
  ),
  nodeCase("node http", "bench/servers/engineBare.ts", ["raw"], "bare node:http, 1 process"),
  {
    name: "node net raw",
    description:
      "Node's floor, not a server: a bare `net` server writing prepared responses (`/`: hello, `/1k`: the file, from memory), nothing parsed but the target (bench/servers/netRawFiles.ts)",
    start: () =>
      startCommand({
        name: "node net raw",
        command: process.execPath,
        files: { "html/1k": kib },
        args: [benchFile("bench/servers/netRawFiles.ts"), "{port}", "{dir}/html", "hello"],
      }),
  },
];

export default defineSuite({
  description: "Brigade's HTTP/1 engine against nginx and node:http, one worker each",
  baseline: "nginx",
  tools: ["nginx"],
  paths: ["/", "/1k"],
  cases,
  against: (dir) => [brigadeWeb("brigade", dir)],
});
