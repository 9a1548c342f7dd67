/**
 * WebSockets (HTTP upgrades) to apps under `brigade app`, on real sockets: a `ws` server attached
 * to the exported node:http server, Fastify with @fastify/websocket, socket.io (long-polling, the
 * WebSocket transport and the upgrade from one to the other); a fetch handler seeing an upgrade
 * request as an ordinary one; upgraded connections counting toward `workerConnections`, holding
 * a sync worker, and surviving a reload until `gracefulTimeout`; a stopping worker answering 503
 * to an upgrade on a connection it holds; the same apps behind real nginx,
 * behind `brigade web` and under `brigade up`.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { type Socket as IoSocket, io } from "socket.io-client";
import WebSocket from "ws";
import { requireTool, startNginx } from "../helpers/peers.ts";
import { waitFor } from "../helpers/process.ts";
import { startStack } from "../stack/harness.ts";
import { startWeb } from "../webserver/webHarness.ts";
import { request, startApp, tempDir } from "./harness.ts";

const fixtures = new URL("../fixtures/websocket/", import.meta.url).pathname;
const wsApp = join(fixtures, "ws.ts");

/** An open WebSocket whose messages are read in order with `next()`. */
interface Client {
  ws: WebSocket;
  next(): Promise<string>;
  /** Resolves with the close code once the connection is closed (by either side). */
  closed: Promise<number>;
}

function connect(t: TestContext, url: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    t.after(() => ws.terminate());
    const queue: string[] = [];
    const waiters: ((m: string) => void)[] = [];
    ws.on("message", (data) => {
      const m = String(data);
      const w = waiters.shift();
      if (w) w(m);
      else queue.push(m);
    });
    const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
    ws.once("error", reject);
    ws.once("open", () =>
      resolve({
        ws,
        closed,
        next: () =>
          queue.length > 0
            ? Promise.resolve(queue.shift()!)
            : new Promise<string>((r, j) => {
                const timer = setTimeout(() => j(new Error("no message within 10s")), 10_000);
                waiters.push((m) => {
                  clearTimeout(timer);
                  r(m);
                });
              }),
      }),
    );
  });
}

/** Open a WebSocket to the ws fixture at `base` and check its echo; closes it. Returns its pid. */
async function echoes(t: TestContext, base: string, path = "/chat"): Promise<number> {
  const c = await connect(t, `${base}${path}`);
  assert.match(await c.next(), new RegExp(`^hello ${path} pid=\\d+$`));
  c.ws.send("one");
  assert.equal(await c.next(), "echo:one");
  c.ws.send("x".repeat(70_000));
  assert.equal(await c.next(), `echo:${"x".repeat(70_000)}`);
  c.ws.send("pid");
  const pid = Number(await c.next());
  c.ws.send("bye");
  assert.equal(await c.closed, 1000);
  return pid;
}

/** Whether a request is still unanswered after `ms` (the worker cannot take it). */
function pending(port: number, path = "/"): { answered: () => boolean; reply: Promise<string> } {
  let answered = false;
  const reply = request(port, path, { timeoutMs: 20_000 }).then((r) => {
    answered = true;
    return `${r.status} ${r.body}`;
  });
  return { answered: () => answered, reply };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("ws on the exported node:http server: echo, plain HTTP beside it, the 101 in the access log", async (t) => {
  const dir = tempDir(t);
  const log = join(dir, "access.log");
  const app = await startApp(t, [wsApp, "-b", "127.0.0.1:0", "-w", "2", "--access-log", log]);
  const pid = await echoes(t, `ws://127.0.0.1:${app.port}`);
  assert.ok(app.workers().includes(pid), "served by one of the app's workers");
  const r = await request(app.port, "/");
  assert.equal(r.status, 200);
  assert.match(r.body, /^plain pid=\d+/);
  await waitFor(
    () => /"GET \/chat HTTP\/1\.1" 101 /.test(readFileSync(log, "utf8")),
    "the 101 line",
  );
  const line = readFileSync(log, "utf8")
    .split("\n")
    .find((l) => l.includes("GET /chat"));
  assert.match(line ?? "", /^127\.0\.0\.1 /, "the client's address, taken before it closed");
  assert.equal(await app.stop(), 0);
});

test("Fastify with @fastify/websocket: its WebSocket route and its HTTP routes", async (t) => {
  const app = await startApp(t, [join(fixtures, "fastify.ts"), "-b", "127.0.0.1:0", "-w", "1"]);
  const c = await connect(t, `ws://127.0.0.1:${app.port}/ws`);
  c.ws.send("hi");
  assert.equal(await c.next(), "fastify:hi");
  c.ws.close();
  await c.closed;
  const r = await request(app.port, "/");
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).plain, true);
  assert.equal(await app.stop(), 0);
});

/** A socket.io client on `transports`; resolves once connected (and upgraded, when asked). */
function ioConnect(
  t: TestContext,
  url: string,
  transports: ("polling" | "websocket")[],
  upgraded = false,
): Promise<IoSocket> {
  return new Promise((resolve, reject) => {
    const s = io(url, { transports, reconnection: false, timeout: 10_000 });
    t.after(() => s.disconnect());
    s.once("connect_error", reject);
    s.once("connect", () => {
      if (!upgraded || s.io.engine.transport.name === "websocket") return resolve(s);
      s.io.engine.once("upgrade", () => resolve(s));
    });
  });
}

async function ioPing(s: IoSocket, arg: string): Promise<string> {
  return (await s.timeout(10_000).emitWithAck("ping", arg)) as string;
}

test("socket.io: long-polling, the WebSocket transport, and polling upgraded to a WebSocket", async (t) => {
  // One worker: socket.io's polling needs every request of a session on the same process.
  const app = await startApp(t, [join(fixtures, "socketio.ts"), "-b", "127.0.0.1:0", "-w", "1"]);
  const url = `http://127.0.0.1:${app.port}`;
  const polling = await ioConnect(t, url, ["polling"]);
  assert.equal(await ioPing(polling, "a"), "pong:a transport=polling");
  const direct = await ioConnect(t, url, ["websocket"]);
  assert.equal(await ioPing(direct, "b"), "pong:b transport=websocket");
  const upgraded = await ioConnect(t, url, ["polling", "websocket"], true);
  assert.equal(await ioPing(upgraded, "c"), "pong:c transport=websocket");
  for (const s of [polling, direct, upgraded]) s.disconnect();
  const r = await request(app.port, "/");
  assert.match(r.body, /^plain pid=/);
  assert.equal(await app.stop(), 0);
});

test("apps with no upgrade listener (a fetch handler, a bare listener) see an ordinary request", async (t) => {
  const dir = tempDir(t, {
    "fetch.mjs": `export default { fetch: (r) => new Response("fetch upgrade=" + r.headers.get("upgrade")) };\n`,
    "listener.mjs": `export default (req, res) => res.end("listener upgrade=" + req.headers.upgrade);\n`,
  });
  for (const [file, body] of [
    ["fetch.mjs", "fetch upgrade=websocket"],
    ["listener.mjs", "listener upgrade=websocket"],
  ] as const) {
    const app = await startApp(t, [join(dir, file), "-b", "127.0.0.1:0", "-w", "1"]);
    const r = await request(app.port, "/", {
      headers: {
        connection: "upgrade",
        upgrade: "websocket",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
    assert.equal(r.status, 200, file);
    assert.equal(r.body, body);
    await assert.rejects(
      connect(t, `ws://127.0.0.1:${app.port}/`),
      /Unexpected server response: 200/,
    );
    assert.equal(await app.stop(), 0);
  }
});

test("upgraded connections count toward workerConnections", async (t) => {
  const app = await startApp(t, [
    wsApp,
    "-b",
    "127.0.0.1:0",
    "-w",
    "1",
    "--worker-connections",
    "2",
  ]);
  const base = `ws://127.0.0.1:${app.port}`;
  const a = await connect(t, `${base}/a`);
  const b = await connect(t, `${base}/b`);
  await a.next();
  await b.next();
  const third = pending(app.port);
  await pause(500);
  assert.equal(third.answered(), false, "a third connection waits while two WebSockets are open");
  a.ws.close();
  assert.match(await third.reply, /^200 plain/);
  b.ws.close();
  assert.equal(await app.stop(), 0);
});

test("a sync worker serves an upgraded connection as its one request, until it closes", async (t) => {
  const app = await startApp(t, [wsApp, "-b", "127.0.0.1:0", "-w", "1", "-k", "sync"]);
  const c = await connect(t, `ws://127.0.0.1:${app.port}/held`);
  await c.next();
  const other = pending(app.port);
  await pause(500);
  assert.equal(other.answered(), false, "the sync worker takes nothing else meanwhile");
  c.ws.send("still here");
  assert.equal(await c.next(), "echo:still here");
  c.ws.close();
  assert.match(await other.reply, /^200 plain/);
  assert.equal(await app.stop(), 0);
});

test("reload: an old worker's WebSockets carry on until gracefulTimeout, then are closed", async (t) => {
  const app = await startApp(t, [wsApp, "-b", "127.0.0.1:0", "-w", "1", "--graceful-timeout", "3"]);
  const base = `ws://127.0.0.1:${app.port}`;
  const old = await connect(t, `${base}/old`);
  const oldPid = Number((await old.next()).split("pid=")[1]);
  process.kill(app.pid, "SIGHUP");
  await waitFor(() => app.workers().some((p) => p !== oldPid), "a new worker", 20_000);
  // The new worker takes new connections; the old one still serves its WebSocket.
  const fresh = await connect(t, `${base}/new`);
  assert.notEqual(Number((await fresh.next()).split("pid=")[1]), oldPid);
  old.ws.send("after reload");
  assert.equal(await old.next(), "echo:after reload");
  // At the end of the grace period the worker closes it and exits by itself (not killed).
  const code = await old.closed;
  assert.equal(code, 1006, "cut at the end of the grace period");
  await app.waitForLine(/closing upgraded connections at the end of the grace period/);
  await waitFor(() => !app.workers().includes(oldPid), "the old worker's exit");
  assert.ok(!app.lines.some((l) => /killed|SIGKILL/i.test(l) && l.includes(String(oldPid))));
  fresh.ws.send("pid");
  assert.notEqual(Number(await fresh.next()), oldPid);
  fresh.ws.close();
  assert.equal(await app.stop(), 0);
});

test("a stopping worker answers 503 to an upgrade on a connection it still holds", async (t) => {
  // A draining worker accepts no new connection, so an upgrade can reach it only on one it
  // holds: each connection here has a slow request in progress (it stays open while draining)
  // and sends an upgrade behind it, one connection at a time after TERM, until the worker has
  // begun to drain (an upgrade before that is taken: 101).
  const app = await startApp(t, [
    wsApp,
    "-b",
    "127.0.0.1:0",
    "-w",
    "1",
    "--graceful-timeout",
    "10",
  ]);
  const conns = await Promise.all(
    Array.from(
      { length: 8 },
      () =>
        new Promise<{ sock: net.Socket; data: () => string }>((resolve, reject) => {
          const sock = net.connect(app.port, "127.0.0.1");
          t.after(() => sock.destroy());
          let got = "";
          sock.on("data", (d) => {
            got += d.toString("latin1");
          });
          sock.on("error", () => {});
          sock.once("connect", () => {
            sock.write("GET /slow?ms=4000 HTTP/1.1\r\nHost: x\r\n\r\n");
            resolve({ sock, data: () => got });
          });
          sock.once("error", reject);
        }),
    ),
  );
  await waitFor(
    async () => (await request(app.port, "/")).status === 200 || undefined,
    "the slow requests to be in",
  );
  const from = app.lines.length;
  process.kill(app.pid, "SIGTERM");
  await app.waitForLine(/handling action/, { from });
  const upgrade =
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  const seen: string[] = [];
  let refused: string | undefined;
  for (const c of conns) {
    c.sock.write(upgrade);
    const first = await waitFor(
      () => /^HTTP\/1\.1 \d{3}[^\r]*\r\n/.exec(c.data())?.[0],
      "an answer",
    );
    seen.push(first.trim());
    if (first.startsWith("HTTP/1.1 503")) {
      refused = c.data();
      break;
    }
    c.sock.destroy();
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.ok(refused !== undefined, `no 503 among ${seen.join(", ")}`);
  assert.match(refused, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  assert.match(refused, /\r\nconnection: close\r\n/i);
  for (const c of conns) c.sock.destroy();
  assert.equal((await app.exited).code, 0);
});

test("behind real nginx (proxy_set_header Upgrade/Connection): ws and socket.io", async (t) => {
  if (!requireTool(t, "nginx")) return;
  const app = await startApp(t, [join(fixtures, "socketio.ts"), "-b", "127.0.0.1:0", "-w", "1"]);
  const wsOnly = await startApp(t, [wsApp, "-b", "127.0.0.1:0", "-w", "2"]);
  const nginx = await startNginx(t, {
    http: "map $http_upgrade $connection_upgrade { default upgrade; '' close; }",
    serverBlock: `
    location /socket.io/ {
      proxy_pass http://127.0.0.1:${app.port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
    }
    location / {
      proxy_pass http://127.0.0.1:${wsOnly.port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
    }`,
  });
  const port = new URL(nginx.url).port;
  const pid = await echoes(t, `ws://127.0.0.1:${port}`);
  assert.ok(wsOnly.workers().includes(pid));
  const s = await ioConnect(t, `http://127.0.0.1:${port}`, ["polling", "websocket"], true);
  assert.equal(await ioPing(s, "n"), "pong:n transport=websocket");
  s.disconnect();
  assert.equal(await app.stop(), 0);
  assert.equal(await wsOnly.stop(), 0);
});

test("behind brigade web's proxy (two web workers)", async (t) => {
  const app = await startApp(t, [wsApp, "-b", "127.0.0.1:0", "-w", "2"]);
  const web = await startWeb(t, {
    workers: 2,
    servers: [{ locations: [{ match: "/", proxy: `127.0.0.1:${app.port}` }] }],
  });
  const pids = new Set<number>();
  for (let i = 0; i < 3; i++) pids.add(await echoes(t, `ws://127.0.0.1:${web.port}`, `/c${i}`));
  for (const p of pids) assert.ok(app.workers().includes(p));
  const r = await request(web.port, "/");
  assert.match(r.body, /^plain pid=/);
  process.kill(web.pid, "SIGTERM");
  assert.equal((await web.exited).code, 0);
  assert.equal(await app.stop(), 0);
});

test("through brigade up: the web tier tunnels upgrades to the app workers' sockets", async (t) => {
  const stack = await startStack(t, {
    app: `export { default } from ${JSON.stringify(wsApp)};\n`,
    args: ["--app-workers", "2"],
  });
  const base = `ws://127.0.0.1:${stack.port}`;
  await echoes(t, base);
  // Held open while plain requests go through the same web worker.
  const held = await connect(t, `${base}/held`);
  await held.next();
  const r = await request(stack.port, "/");
  assert.match(r.body, /^plain pid=/);
  held.ws.send("x");
  assert.equal(await held.next(), "echo:x");
  held.ws.close();
  await held.closed;
  process.kill(stack.pid, "SIGTERM");
  assert.equal((await stack.exited).code, 0);
});
