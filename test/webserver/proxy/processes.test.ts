/**
 * The proxy in front of real processes: `brigade web` (the CLI, master and worker) in front of
 * real gunicorn with a WSGI app; the article's slow-client test (gunicorn's sync workers starve
 * behind 20 slow clients; behind `brigade web` the fast clients are served while the slow ones
 * are still open); a peer killed during a bounded load of GETs; active health checks and a
 * backup; the quick start `brigade web --proxy A --proxy B`.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { modules } from "../../../src/webserver/modules.ts";
import { requireTool, startGunicorn } from "../../helpers/peers.ts";
import { spawnNode, waitFor } from "../../helpers/process.ts";
import { bin, startWeb, tempDir } from "../helpers.ts";
import { get, serve, upstream, upstreamProcess } from "./helpers.ts";

const wsgiApp = `
import json
def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    out = json.dumps({
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING"),
        "method": environ["REQUEST_METHOD"],
        "host": environ.get("HTTP_HOST"),
        "xff": environ.get("HTTP_X_FORWARDED_FOR"),
        "proto": environ.get("HTTP_X_FORWARDED_PROTO"),
        "body": len(body),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]
`;

/** Connect and send a request head a byte every 200 ms, never finishing it (until closed). */
function slowClient(t: TestContext, port: number): { socket: net.Socket; open: () => boolean } {
  const socket = net.connect(port, "127.0.0.1");
  let closed = false;
  socket.on("error", () => {});
  socket.on("close", () => {
    closed = true;
  });
  const head = `GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ${"a".repeat(4000)}`;
  let i = 0;
  const timer = setInterval(() => {
    if (closed || i >= head.length) return;
    socket.write(head[i++]!);
  }, 200);
  timer.unref();
  t.after(() => {
    clearInterval(timer);
    socket.destroy();
  });
  return { socket, open: () => !closed };
}

test("brigade web in front of gunicorn: GET, POST, forwarding headers, keep-alive to the client", async (t) => {
  if (!requireTool(t, "gunicorn")) return;
  const app = await startGunicorn(t, { app: wsgiApp, args: ["-w", "1", "-k", "sync"] });
  const web = await startWeb(t, {
    web: {
      listen: ["127.0.0.1:0"],
      workers: 1,
      servers: [{ locations: [{ match: "/app/", proxy: `http://127.0.0.1:${app.port}/` }] }],
    },
  } as never);
  const base = `http://127.0.0.1:${web.port}`;
  const r = JSON.parse(
    (await get(`${base}/app/items?page=2`, { headers: { "X-Forwarded-For": "203.0.113.5" } })).text,
  );
  assert.deepEqual(r, {
    path: "/items",
    query: "page=2",
    method: "GET",
    host: `127.0.0.1:${web.port}`,
    xff: "203.0.113.5, 127.0.0.1",
    proto: "http",
    body: 0,
  });
  const post = JSON.parse(
    (await get(`${base}/app/upload`, { method: "POST", body: Buffer.alloc(100_000, 1) })).text,
  );
  assert.equal(post.body, 100_000);
  // gunicorn's sync worker closes every connection; the client's stays open.
  const agent = new (await import("node:http")).Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  for (let i = 0; i < 5; i++) assert.equal((await get(`${base}/app/k`, { agent })).status, 200);
});

test("slow clients: gunicorn's sync workers starve; behind brigade web fast requests complete while the slow ones are open", async (t) => {
  if (!requireTool(t, "gunicorn")) return;
  const direct = await startGunicorn(t, { app: wsgiApp, args: ["-k", "sync", "-w", "2"] });
  const behind = await startGunicorn(t, { app: wsgiApp, args: ["-k", "sync", "-w", "2"] });
  const web = await startWeb(t, {
    web: {
      listen: ["127.0.0.1:0"],
      workers: 1,
      servers: [{ locations: [{ match: "/", proxy: `http://127.0.0.1:${behind.port}` }] }],
    },
  } as never);

  // Direct: 20 slow clients take both workers; fast requests wait behind them.
  const slowDirect = Array.from({ length: 20 }, () => slowClient(t, direct.port));
  await new Promise((r) => setTimeout(r, 500));
  let directDone = 0;
  const fast = Array.from({ length: 5 }, () =>
    get(`http://127.0.0.1:${direct.port}/fast`).then(
      () => directDone++,
      () => {},
    ),
  );
  await new Promise((r) => setTimeout(r, 2500));
  assert.ok(
    slowDirect.every((c) => c.open()),
    "the slow clients are still sending",
  );
  assert.equal(
    directDone,
    0,
    "no fast request was served directly while the slow clients were open",
  );
  for (const c of slowDirect) c.socket.destroy();
  await Promise.all(fast);

  // Through brigade web: the slow clients are held by the web server, the fast ones served.
  const slowBehind = Array.from({ length: 20 }, () => slowClient(t, web.port));
  await new Promise((r) => setTimeout(r, 500));
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => get(`http://127.0.0.1:${web.port}/fast/${i}`)),
  );
  assert.deepEqual(
    results.map((r) => r.status),
    Array(20).fill(200),
  );
  assert.ok(
    slowBehind.every((c) => c.open()),
    "the slow clients were still open meanwhile",
  );
});

test("a peer killed during a bounded load of GETs: no request fails", async (t) => {
  const peers = await Promise.all(["a", "b", "c"].map((n) => upstreamProcess(t, n)));
  const s = await serve(t, {
    upstreams: { app: { peers: peers.map((p) => `127.0.0.1:${p.port}`) } },
    servers: [{ locations: [{ match: "/", proxy: "app" }] }],
  } as never);
  const total = 300;
  const concurrency = 8;
  let next = 0;
  const statuses: number[] = [];
  const seen = new Set<string>();
  let killed = false;
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++;
      if (!killed && statuses.length >= total / 3) {
        killed = true;
        process.kill(peers[1]!.pid, "SIGKILL");
      }
      const r = await get(`${s.url}/n`);
      statuses.push(r.status);
      seen.add(r.text.split(" ")[0]!);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  assert.equal(statuses.length, total);
  assert.deepEqual(
    statuses.filter((x) => x !== 200),
    [],
  );
  assert.ok(killed);
  assert.deepEqual([...seen].sort(), ["a", "b", "c"]);
});

test("health checks take a failing peer out and bring it back; the backup serves only when every primary is down", async (t) => {
  const health = { a: true, b: true };
  const named = async (name: "a" | "b" | "c") =>
    upstream(t, (req, res) => {
      if (req.url === "/health") {
        const ok = name === "c" || health[name];
        res.writeHead(ok ? 200 : 503);
        res.end();
        return;
      }
      res.end(name);
    });
  const [a, b, c] = [await named("a"), await named("b"), await named("c")];
  const s = await serve(t, {
    upstreams: {
      app: {
        peers: [a.address, b.address, { address: c.address, backup: true }],
        healthCheck: { path: "/health", interval: "100ms", fails: 1, passes: 1 },
      },
    },
    servers: [{ locations: [{ match: "/", proxy: "app" }] }],
  } as never);
  const served = async (n: number): Promise<Set<string>> => {
    const out = new Set<string>();
    for (let i = 0; i < n; i++) out.add((await get(`${s.url}/x`)).text);
    return out;
  };
  const until = (want: string[], what: string) =>
    waitFor(
      async () => {
        const got = [...(await served(6))].sort();
        return JSON.stringify(got) === JSON.stringify(want) ? got : undefined;
      },
      what,
      10_000,
      100,
    );

  assert.deepEqual([...(await served(6))].sort(), ["a", "b"], "backup idle while primaries are up");
  health.a = false;
  await until(["b"], "a taken out");
  health.a = true;
  await until(["a", "b"], "a back");
  health.a = false;
  health.b = false;
  await until(["c"], "the backup taking over");
  health.b = true;
  await until(["b"], "b back, the backup idle again");
});

test("quick start: brigade web --proxy A --proxy B is a round-robin group; with --root, files first", async (t) => {
  const [a, b] = [await upstreamProcess(t, "a"), await upstreamProcess(t, "b")];
  const dir = tempDir(t, { "public/hello.txt": "static hello" });
  const web = await startWeb(t, { web: { workers: 1 } } as never, {
    dir,
    args: [
      "--listen",
      "127.0.0.1:0",
      "--proxy",
      `http://127.0.0.1:${a.port}`,
      "--proxy",
      `127.0.0.1:${b.port}`,
      "--root",
      "public",
    ],
  });
  const base = `http://127.0.0.1:${web.port}`;
  const names = [];
  for (let i = 0; i < 4; i++) names.push((await get(`${base}/api/x`)).text.split(" ")[0]);
  assert.deepEqual(names.sort(), ["a", "a", "b", "b"]);
  const post = await get(`${base}/form`, { method: "POST", body: "abc" });
  assert.match(post.text, /^[ab] POST \/form 3$/);
  if (!modules.some((m) => m.name === "static")) {
    t.diagnostic("no static module registered in this build: --root part not checked");
    return;
  }
  assert.equal((await get(`${base}/hello.txt`)).text, "static hello");
});

const appTier = new URL("../../../src/appserver/worker.ts", import.meta.url);

test("brigade web in front of brigade app on a unix socket", async (t) => {
  if (!existsSync(appTier)) {
    t.skip("brigade app is not in this build yet (branch app)");
    return;
  }
  const dir = tempDir(t, {
    "app.ts": `export default {
  async fetch(req: Request): Promise<Response> {
    const body = await req.text();
    return Response.json({
      path: new URL(req.url).pathname,
      method: req.method,
      xff: req.headers.get("x-forwarded-for"),
      body: body.length,
    });
  },
};
`,
  });
  const sock = join(dir, "app.sock");
  const app = spawnNode(
    t,
    [bin, "app", join(dir, "app.ts"), "-w", "2", "-b", `unix:${sock}`, "--log-format", "text"],
    {
      cwd: dir,
    },
  );
  await app.waitForLine(/master ready/, { timeoutMs: 30_000 });
  const s = await serve(t, {
    servers: [{ locations: [{ match: "/", proxy: `unix:${sock}` }] }],
  } as never);
  const r = JSON.parse(
    (await get(`${s.url}/hello`, { headers: { "X-Forwarded-For": "203.0.113.7" } })).text,
  );
  assert.deepEqual(r, { path: "/hello", method: "GET", xff: "203.0.113.7, 127.0.0.1", body: 0 });
  const post = JSON.parse(
    (await get(`${s.url}/p`, { method: "POST", body: "x".repeat(50_000) })).text,
  );
  assert.equal(post.body, 50_000);
  app.child.kill("SIGTERM");
  await app.exited;
});
