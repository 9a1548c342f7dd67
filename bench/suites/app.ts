/**
 * app: the app server against its peers, two workers each, every one answering `GET /` with a
 * 5-byte "hello" (issue 3's targets, as ratios to `brigade app x2`, a Node listener app):
 * - gunicorn sync -w 2 with the same WSGI hello: target brigade ≥ 5×, so its ratio ≤ 0.20×;
 * - a bare node cluster of 2 and PM2 cluster mode -i 2: target ≥ 1.0×, so their ratios ≤ 1.0×;
 * - the same app as a fetch handler: target ≥ 0.9× of the listener app.
 * Also measured: `-k sync` (one request at a time, connection closed after each), and thread
 * mode (two worker_threads in one process), which decides whether a thread kind pays.
 * Per-worker RSS is measured by bench/apprss.ts; the slow-client case by bench/slowclients.ts.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { startCommand, startGunicorn } from "../lib/peers.ts";
import { benchFile, type Case, defineSuite, nodeCase } from "../lib/suite.ts";

const wsgiHello = `def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]
`;

/** `brigade app <app> -b 127.0.0.1:{port} ...args`, stopped with TERM. */
export function brigadeApp(name: string, app: string, args: string[], description: string): Case {
  return {
    name,
    description,
    start: () =>
      startCommand({
        name,
        command: process.execPath,
        args: [
          benchFile("bin/brigade.ts"),
          "app",
          benchFile(app),
          "-b",
          "127.0.0.1:{port}",
          "--log-level",
          "warn",
          ...args,
        ],
        cwd: benchFile("."),
      }),
  };
}

export const cases: Case[] = [
  brigadeApp(
    "brigade app x2",
    "bench/servers/appNode.ts",
    ["-w", "2"],
    "`brigade app`, 2 async workers, a Node (req, res) listener hello",
  ),
  brigadeApp(
    "brigade app fetch x2",
    "bench/servers/appFetch.ts",
    ["-w", "2"],
    "`brigade app`, 2 async workers, the same hello as a fetch handler",
  ),
  brigadeApp(
    "brigade app threads x2",
    "bench/servers/appNode.ts",
    ["-w", "2", "--worker-mode", "thread"],
    "`brigade app --worker-mode thread`, 2 worker threads in one process (SO_REUSEPORT)",
  ),
  brigadeApp(
    "brigade app sync x2",
    "bench/servers/appNode.ts",
    ["-w", "2", "-k", "sync"],
    "`brigade app -k sync`, 2 sync workers (one request at a time, no keep-alive)",
  ),
  nodeCase(
    "node cluster x2",
    "bench/servers/nodeCluster.ts",
    ["2"],
    "bare node:http under node:cluster, 2 workers (the primary hands out connections)",
  ),
  {
    name: "pm2 cluster x2",
    description: "PM2 7 cluster mode (`pm2-runtime start -i 2`), the same node:http hello",
    start: () => {
      // Filled in once the port and the temp dir are chosen (PM2 keeps its state in PM2_HOME).
      const env: NodeJS.ProcessEnv = { ...process.env };
      return startCommand({
        name: "pm2",
        command: process.execPath,
        args: [
          benchFile("node_modules/pm2/bin/pm2-runtime"),
          "start",
          benchFile("bench/servers/pm2Hello.cjs"),
          "-i",
          "2",
        ],
        beforeSpawn(port, dir) {
          mkdirSync(join(dir, "pm2"), { recursive: true });
          env.PORT = String(port);
          env.PM2_HOME = join(dir, "pm2");
        },
        env,
        timeoutMs: 30_000,
      });
    },
  },
  {
    name: "gunicorn sync x2",
    description:
      "gunicorn (Debian), sync workers, `-w 2`, the WSGI hello (sync closes each connection)",
    start: () => startGunicorn({ app: wsgiHello, args: ["-k", "sync", "-w", "2"] }),
  },
];

export default defineSuite({
  description: "the app server against gunicorn, a node cluster and PM2, 2 workers each",
  baseline: "brigade app x2",
  tools: ["gunicorn"],
  cases,
});
