/**
 * stack: the whole stack against nginx + gunicorn (Debian) serving the equivalent app and static
 * file through the same paths, with the same number of worker processes (3) on each side, each
 * split its best way: nginx + gunicorn 1 front + 2 app workers (the sync app workers are its
 * bottleneck), brigade up 2 web + 1 app (its default on 2 cores: the web worker is its busiest
 * process); the other split of each runs too, for comparison:
 * - `/static.txt`, a 1 KiB file the front serves alone;
 * - `/hello`, a dynamic 5-byte hello from the app (brigade: `bench/servers/appNode.ts` on async
 *   app workers over unix sockets; gunicorn: the same hello as WSGI on 2 sync workers, behind
 *   nginx `proxy_pass` over a unix socket, gunicorn's documented deployment; over a loopback port
 *   it costs gunicorn and nginx a connection per request, a row of its own);
 * - the mixed case: the same two paths while 20 slow clients each send a request head a byte
 *   every 200 ms (and start over when done), the article's slow network.
 * brigade up also runs with `--engine node` (node:http instead of Brigade's own HTTP/1.1 engine),
 * the fallback; and "nginx ×2 + node:http", nginx in front of a bare node:http hello, what
 * users glue together today and the fastest stack with a Node app measured here.
 * Target (issue 6): ≥ 3× nginx + gunicorn on `/hello`, and ≥ 0.6× on `/static.txt`.
 */

import net from "node:net";
import { join } from "node:path";
import {
  nginxForwardingHeaders,
  type RunningServer,
  startCommand,
  startGunicorn,
  startNginx,
} from "../lib/peers.ts";
import { benchFile, type Case, defineSuite, type Server } from "../lib/suite.ts";

const wsgiHello = `def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]
`;
const staticFile = Buffer.alloc(1024, "x");

/** Worker processes per tier. */
export interface Split {
  web: number;
  app: number;
}

/**
 * brigade up's split of the 3 worker processes: 2 web + 1 app, its default on this 2-core
 * machine (web workers one per core, app workers 1, as gunicorn's). The web worker is the stack's
 * busiest process (its CPU per request rises with the connections it holds: 256 connections on
 * one worker cost 15–20 % more per request than 64), so a second one tends to gain more than a
 * second app worker: 6 of 6 alternating rounds at 256 connections, +6 to +21 %; in the suite's
 * four runs ahead in 5 of 8 medians, by up to 32 %, behind in 3 by up to 3 % (docs/benchmarks.md).
 */
export const brigadeSplit: Split = { web: 2, app: 1 };

/**
 * `brigade up` on the hello app, `split` workers (`brigadeSplit` by default), ready (answering
 * /hello); `root`: run it from another checkout (with that checkout's node), for before/after in
 * one run (stackcpu.ts).
 */
export async function brigadeUp(
  extra: string[] = [],
  root?: string,
  split: Split = brigadeSplit,
): Promise<RunningServer> {
  const file = (rel: string) => (root === undefined ? benchFile(rel) : join(root, rel));
  const up = await startCommand({
    name: root === undefined ? "brigade up" : `brigade up @${root}`,
    command: root === undefined ? process.execPath : join(root, "node_modules/.bin/node"),
    args: [
      file("bin/brigade.ts"),
      "up",
      file("bench/servers/appNode.ts"),
      "--listen",
      "127.0.0.1:{port}",
      "--admin",
      "off",
      "--runtime-dir",
      "{dir}/run",
      "--app-workers",
      String(split.app),
      "--web-workers",
      String(split.web),
      "--log-level",
      "warn",
      ...extra,
    ],
    files: { "public/static.txt": staticFile },
    timeoutMs: 60_000,
  });
  try {
    await ready(up.port);
  } catch (err) {
    await up.stop();
    throw err;
  }
  return up;
}

/** The master listens before its workers are up: wait for a real answer. */
async function ready(port: number): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/hello`, {
        signal: AbortSignal.timeout(2000),
      });
      if (r.status === 200) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error("the server did not answer /hello within 60 s");
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * How nginx reaches the app: `unix`, a unix socket (gunicorn's documented deployment behind nginx,
 * and the path brigade up's tiers take), or `tcp`, a loopback port. gunicorn's sync workers close
 * every connection after its response, so nginx opens one per request: on a loopback port that is
 * a TCP handshake and teardown per request on both sides, about 1.5× the CPU per request.
 */
export type AppBind = "unix" | "tcp";

/**
 * nginx in front of gunicorn: 1 nginx worker + 2 sync gunicorn workers unless `split` says, over
 * a unix socket unless `bind` says.
 */
async function nginxGunicorn(
  split: Split = { web: 1, app: 2 },
  bind: AppBind = "unix",
): Promise<Server> {
  const app = await startGunicorn({
    app: wsgiHello,
    // The port is kept as well: startCommand waits for it to know gunicorn is up.
    args: [
      "-k",
      "sync",
      "-w",
      String(split.app),
      ...(bind === "unix" ? ["--bind", "unix:{dir}/gunicorn.sock"] : []),
    ],
  });
  const upstream =
    bind === "unix" ? `unix:${join(app.dir, "gunicorn.sock")}` : `127.0.0.1:${app.port}`;
  return nginxInFront(split.web, upstream, app);
}

/**
 * nginx ×2 in front of one node:http hello process (bench/servers/nodeHttp.ts, the same response
 * as appNode.ts) over a unix socket with a keep-alive pool: what users glue together today (nginx
 * + a Node process), and the fastest stack with a Node app measured on this machine.
 */
async function nginxNodeHttp(): Promise<Server> {
  const app = await startCommand({
    name: "node:http",
    command: process.execPath,
    args: [benchFile("bench/servers/nodeHttp.ts"), "{port}", "{dir}/app.sock"],
  });
  return nginxInFront(2, `unix:${join(app.dir, "app.sock")}`, app);
}

/** nginx with `workers` workers serving /static.txt itself and proxying the rest to `upstream`. */
async function nginxInFront(
  workers: number,
  upstream: string,
  app: RunningServer,
): Promise<Server> {
  let front: RunningServer;
  try {
    front = await startNginx({
      workers,
      files: { "html/static.txt": staticFile },
      http: `  upstream app { server ${upstream}; keepalive 16; }\n  sendfile on; tcp_nopush on; open_file_cache max=1000;`,
      serverBlock: `    location = /static.txt { }\n    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; ${nginxForwardingHeaders} }`,
    });
    await ready(front.port);
  } catch (err) {
    await app.stop();
    throw err;
  }
  return {
    url: front.url,
    pids: [front.pid, app.pid],
    async stop() {
      await front.stop();
      await app.stop();
    },
  };
}

/** 20 slow clients against `port` until stopped: a head a byte every 200 ms, then again. */
function slowClients(port: number, count = 20, perByteMs = 200): () => void {
  const head = "GET /hello HTTP/1.1\r\nHost: bench\r\nUser-Agent: slow-client\r\n\r\n";
  let stopped = false;
  const sockets = new Set<net.Socket>();
  const one = (): void => {
    if (stopped) return;
    const s = net.connect(port, "127.0.0.1");
    sockets.add(s);
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    // Exactly one successor per connection, whichever of data, error and close comes first.
    const again = () => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      sockets.delete(s);
      s.destroy();
      if (!stopped) setTimeout(one, 50);
    };
    s.on("connect", () => {
      const next = () => {
        if (s.destroyed || stopped) return;
        s.write(head[i++]!);
        if (i < head.length) timer = setTimeout(next, perByteMs);
      };
      next();
    });
    s.on("data", () => again());
    s.on("error", () => again());
    s.on("close", () => again());
  };
  for (let i = 0; i < count; i++) one();
  return () => {
    stopped = true;
    for (const s of sockets) s.destroy();
  };
}

function withSlowClients(name: string, description: string, start: () => Promise<Server>): Case {
  return {
    name,
    description,
    async start() {
      const server = await start();
      const stop = slowClients(Number(new URL(server.url).port));
      return {
        ...server,
        async stop() {
          stop();
          await server.stop();
        },
      };
    },
  };
}

export const cases: Case[] = [
  {
    name: "nginx + gunicorn",
    description:
      "nginx (1 worker: sendfile, open_file_cache, access log off) serving the file, proxy_pass (the forwarding headers brigade up sends) over a unix socket to gunicorn -k sync -w 2 running the WSGI hello",
    start: () => nginxGunicorn(),
  },
  {
    name: "brigade up",
    description:
      "brigade up --web-workers 2 --app-workers 1 (its default on 2 cores): the file from public/, the rest to the async app worker on its unix socket (buffering on, admin off)",
    start: () => brigadeUp(),
  },
  withSlowClients(
    "nginx + gunicorn, 20 slow",
    "the same, while 20 slow clients send /hello heads a byte every 200 ms",
    () => nginxGunicorn(),
  ),
  withSlowClients(
    "brigade up, 20 slow",
    "the same, while 20 slow clients send /hello heads a byte every 200 ms",
    () => brigadeUp(),
  ),
  {
    name: "nginx ×2 + gunicorn ×1",
    description: "nginx + gunicorn split as brigade up: 2 nginx workers, gunicorn -k sync -w 1",
    start: () => nginxGunicorn({ web: 2, app: 1 }),
  },
  {
    name: "nginx + gunicorn over TCP",
    description:
      "nginx + gunicorn as the baseline but to gunicorn's loopback port (a connection per request: sync workers close each one); the suite's baseline until 2026-12-02",
    start: () => nginxGunicorn({ web: 1, app: 2 }, "tcp"),
  },
  {
    name: "nginx ×2 + node:http",
    description:
      "2 nginx workers in front of one node:http hello process (bench/servers/nodeHttp.ts) over a unix socket, keep-alive pool: nginx + a bare Node app, what users glue together today",
    start: () => nginxNodeHttp(),
  },
  {
    name: "brigade up, 1 web + 2 app",
    description: "brigade up split as nginx + gunicorn: --web-workers 1 --app-workers 2",
    start: () => brigadeUp([], undefined, { web: 1, app: 2 }),
  },
  {
    name: "brigade up, node engine",
    description:
      "brigade up (2 web + 1 app) with `--engine node` (the web tier on node:http instead of Brigade's own HTTP/1.1 engine, the default)",
    start: () => brigadeUp(["--engine", "node"]),
  },
];

export default defineSuite({
  description: "brigade up against nginx + gunicorn: static, dynamic, and with 20 slow clients",
  baseline: "nginx + gunicorn",
  tools: ["nginx", "gunicorn"],
  paths: ["/static.txt", "/hello"],
  chart: true,
  cases,
});
