/**
 * The per-peer connection pool on real sockets: keep-alive reuse, the idle cap, requests per
 * connection, the stale-connection replay, upgrades, framing headers, and every error class
 * (refused, reset, timeout in send and read, bad responses) with the status a proxy answers.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { test } from "node:test";
import {
  classifyError,
  PeerPool,
  type PoolOptions,
  UpstreamError,
} from "../../src/upstream/index.ts";
import { closeServer, startPeers, text, until } from "./helpers.ts";

const options: PoolOptions = {
  idle: 8,
  idleTimeout: 4000,
  maxRequests: 1000,
  connectTimeout: 2000,
  sendTimeout: 2000,
  readTimeout: 5000,
};

function pool(
  t: { after(fn: () => unknown): void },
  port: number,
  extra: Partial<PoolOptions> = {},
) {
  const p = new PeerPool({ kind: "tcp", host: "127.0.0.1", port }, { ...options, ...extra });
  t.after(() => p.destroy());
  return p;
}

/** A raw TCP server: `onData` sees every chunk of every connection. */
async function rawServer(
  t: { after(fn: () => unknown): void },
  onData: (socket: Socket, data: string, index: number) => void,
): Promise<{ port: number; connections: number }> {
  const state = { port: 0, connections: 0 };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    const index = state.connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.on("data", (d) => onData(socket, d.toString("latin1"), index));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  state.port = (server.address() as AddressInfo).port;
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return state;
}

async function expectError(
  promise: Promise<unknown>,
  kind: string,
  phase: string,
  status: number,
): Promise<UpstreamError> {
  let caught: unknown;
  try {
    const r = (await promise) as { body?: AsyncIterable<Buffer> } | undefined;
    if (r?.body) await text(r.body);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof UpstreamError, `expected an UpstreamError, got ${String(caught)}`);
  assert.equal(caught.kind, kind, caught.message);
  assert.equal(caught.phase, phase, caught.message);
  assert.equal(caught.status, status);
  return caught;
}

test("keep-alive: sequential requests share one connection; maxRequests rotates it", async (t) => {
  const [peer] = await startPeers(t, 1);
  const p = pool(t, peer!.port);
  for (let i = 0; i < 10; i++) {
    const r = await p.request({ method: "GET", path: "/", headers: { host: "x" } });
    assert.equal(r.reused, i > 0);
    assert.equal(await text(r.body), "peer0");
  }
  assert.equal(peer!.connections, 1);
  assert.deepEqual(p.stats(), { open: 1, idle: 1, created: 1, reused: 9, requests: 10 });

  const [peer2] = await startPeers(t, 1);
  const p2 = pool(t, peer2!.port, { maxRequests: 3 });
  for (let i = 0; i < 7; i++) await text((await p2.request({ method: "GET", path: "/" })).body);
  await until(() => peer2!.connections === 3, 2000, "3 connections");
});

test("the idle cap: busy connections may exceed it, idle ones are trimmed to it", async (t) => {
  const held: { end(b: string): void }[] = [];
  const [peer] = await startPeers(t, 1, (_req, res) => {
    res.flushHeaders();
    held.push(res);
  });
  const p = pool(t, peer!.port, { idle: 2 });
  const responses = await Promise.all(
    Array.from({ length: 5 }, () => p.request({ method: "GET", path: "/" })),
  );
  assert.equal(p.stats().open, 5);
  for (const h of held.splice(0)) h.end("x");
  await Promise.all(responses.map((r) => text(r.body)));
  await until(() => p.stats().open === 2, 2000, "trimmed to 2");
  assert.equal(p.stats().idle, 2);

  const none = pool(t, peer!.port, { idle: 0 });
  const before = peer!.connections;
  for (let i = 0; i < 2; i++) {
    const r = none.request({ method: "GET", path: "/" });
    await until(() => held.length === 1);
    held.shift()!.end("y");
    await text((await r).body);
  }
  assert.equal(peer!.connections - before, 2, "idle 0: a connection per request");
});

test("the idle cap holds at the end of a turn: connections freed past it serve requests of the same turn first", async (t) => {
  const held: { end(b: string): void }[] = [];
  const [peer] = await startPeers(t, 1, (_req, res) => {
    res.flushHeaders();
    held.push(res);
  });
  const p = pool(t, peer!.port, { idle: 1 });
  const responses = await Promise.all(
    Array.from({ length: 3 }, () => p.request({ method: "GET", path: "/" })),
  );
  assert.equal(p.stats().created, 3);
  // All three bodies end in the same write burst: the pool reads them in one turn of the loop,
  // and the two requests below are sent in that turn, before its end.
  for (const h of held.splice(0)) h.end("x");
  await Promise.all(responses.map((r) => text(r.body)));
  const again = [0, 1].map(() => p.request({ method: "GET", path: "/" }));
  assert.equal(p.stats().created, 3, "the two requests took connections freed this turn");
  await until(() => held.length === 2);
  for (const h of held.splice(0)) h.end("y");
  for (const r of await Promise.all(again)) assert.equal(await text(r.body), "y");
  await until(() => p.stats().open === 1, 2000, "trimmed to the cap of 1");
  assert.equal(p.stats().idle, 1);
  assert.equal(p.stats().created, 3);
});

test("a request failing on a stale kept-alive connection is replayed on a fresh one (GET only)", async (t) => {
  const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=60\r\n\r\nok";
  const server = await rawServer(t, (socket, _data, index) => {
    // Each connection answers its first request, then closes on the next one, as a peer
    // that timed the connection out just as it was reused would.
    const s = socket as Socket & { served?: number };
    s.served = (s.served ?? 0) + 1;
    if (s.served === 1 || index < 0) socket.write(ok);
    else socket.destroy();
  });
  const p = pool(t, server.port);
  assert.equal(await text((await p.request({ method: "GET", path: "/" })).body), "ok");
  const again = await p.request({ method: "GET", path: "/" });
  assert.equal(await text(again.body), "ok");
  assert.equal(again.reused, false, "answered on the fresh connection");
  assert.equal(server.connections, 2);
  await expectError(p.request({ method: "POST", path: "/", body: "x" }), "reset", "read", 502);
});

test("error classes: refused, reset, read and send timeouts, bad responses", async (t) => {
  const closed = createServer();
  closed.listen(0, "127.0.0.1");
  await once(closed, "listening");
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const refused = await expectError(
    pool(t, deadPort).request({ method: "GET", path: "/" }),
    "refused",
    "connect",
    502,
  );
  assert.equal(refused.sent, false);
  assert.equal(refused.code, "ECONNREFUSED");
  assert.match(
    refused.message,
    /connect\(\) failed .* while connecting to upstream, upstream: "127\.0\.0\.1:\d+"/,
  );

  const reset = await rawServer(t, (socket) => socket.destroy());
  const r = await expectError(
    pool(t, reset.port).request({ method: "GET", path: "/" }),
    "reset",
    "read",
    502,
  );
  assert.equal(r.sent, true);

  const silent = await rawServer(t, () => {});
  await expectError(
    pool(t, silent.port, { readTimeout: 100 }).request({ method: "GET", path: "/" }),
    "timeout",
    "read",
    504,
  );

  // A peer that never reads: the body stalls in the socket buffer.
  const deafSockets: Socket[] = [];
  const deaf = createServer((socket) => {
    socket.pause();
    socket.on("error", () => {});
    deafSockets.push(socket);
  });
  deaf.listen(0, "127.0.0.1");
  await once(deaf, "listening");
  t.after(() => {
    // Paused sockets never see the peer's FIN: destroy them, or close() never returns.
    for (const s of deafSockets) s.destroy();
    return new Promise<void>((res) => deaf.close(() => res()));
  });
  const big = Buffer.alloc(32 * 1024 * 1024, 120);
  await expectError(
    pool(t, (deaf.address() as AddressInfo).port, { sendTimeout: 100, readTimeout: 0 }).request({
      method: "PUT",
      path: "/",
      body: big,
    }),
    "timeout",
    "send",
    504,
  );

  const cases: [string, string][] = [
    ["invalid status line", "HTTP/1.1 abc\r\n\r\n"],
    [
      "both Content-Length and chunked",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ["garbage", "SSH-2.0-OpenSSH\r\n\r\n"],
  ];
  for (const [what, reply] of cases) {
    const s = await rawServer(t, (socket) => socket.end(reply));
    const e = await expectError(
      pool(t, s.port).request({ method: "GET", path: "/" }),
      "badResponse",
      "read",
      502,
    );
    assert.match(e.message, /invalid response/, what);
  }
  // Truncated body: the head arrives, the body stream fails.
  const short = await rawServer(t, (socket) =>
    socket.end("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
  );
  const res = await pool(t, short.port).request({ method: "GET", path: "/" });
  assert.equal(res.status, 200);
  await assert.rejects(text(res.body), (err: Error) => {
    const e = classifyError(err, { connected: true, headers: true });
    assert.ok(e.kind === "badResponse" || e.kind === "reset", e.kind);
    assert.equal(e.status, 502);
    return true;
  });
});

test("classification of low-level codes", () => {
  const c = (code: string, state = { connected: true }) =>
    classifyError(Object.assign(new Error(code), { code }), state);
  assert.equal(c("UND_ERR_CONNECT_TIMEOUT").kind, "timeout");
  assert.equal(c("UND_ERR_CONNECT_TIMEOUT").phase, "connect");
  assert.equal(c("UND_ERR_HEADERS_TIMEOUT").status, 504);
  assert.equal(c("UND_ERR_BODY_TIMEOUT").phase, "read");
  assert.equal(c("ECONNREFUSED", { connected: false }).kind, "refused");
  assert.equal(c("ENOENT", { connected: false }).status, 502);
  assert.equal(c("EPIPE").kind, "reset");
  assert.equal(c("HPE_INVALID_CONSTANT").kind, "badResponse");
  assert.equal(c("UND_ERR_ABORTED").kind, "aborted");
  assert.equal(c("UND_ERR_RES_CONTENT_LENGTH_MISMATCH").kind, "badResponse");
});

test("framing headers are the pool's; others pass as given", async (t) => {
  const [peer] = await startPeers(t, 1, async (req, res) => {
    const body = await text(req);
    res.end(JSON.stringify({ headers: req.headers, body }));
  });
  const p = pool(t, peer!.port);
  const r = await p.request({
    method: "POST",
    path: "/echo?x=1",
    headers: [
      "Host",
      "example.com",
      "Connection",
      "x-secret",
      "Keep-Alive",
      "timeout=5",
      "Transfer-Encoding",
      "chunked",
      "Content-Length",
      "999",
      "X-Forwarded-For",
      "10.0.0.1",
      "Set-Thing",
      "a",
      "Set-Thing",
      "b",
    ],
    body: "hello",
  });
  const echoed = JSON.parse(await text(r.body)) as {
    headers: Record<string, string>;
    body: string;
  };
  assert.equal(echoed.body, "hello");
  assert.equal(echoed.headers.host, "example.com");
  assert.equal(echoed.headers["content-length"], "5");
  assert.equal(echoed.headers["transfer-encoding"], undefined);
  assert.equal(echoed.headers["keep-alive"], undefined);
  assert.equal(echoed.headers["x-forwarded-for"], "10.0.0.1");
  assert.equal(echoed.headers["set-thing"], "a, b");
});

test("upgrade: 101 hands over the socket; any other status is an ordinary response", async (t) => {
  const server = createHttpServer((_req, res) => {
    res.statusCode = 426;
    res.end("upgrade required");
  });
  server.on("upgrade", (req, socket) => {
    if (req.headers.upgrade !== "echo") {
      socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno");
      return;
    }
    socket.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhi:",
    );
    socket.on("data", (d) => socket.write(d));
    socket.on("end", () => socket.end());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => closeServer(server));
  const p = pool(t, (server.address() as AddressInfo).port);
  const up = await p.upgrade({
    method: "GET",
    path: "/ws",
    headers: { upgrade: "echo", connection: "upgrade" },
  });
  assert.equal(up.status, 101);
  assert.ok("socket" in up);
  const { socket, head } = up as { socket: Socket; head: Buffer };
  assert.equal(head.toString(), "hi:");
  socket.write("ping");
  const [echo] = (await once(socket, "data")) as [Buffer];
  assert.equal(echo.toString(), "ping");
  socket.destroy();
  const refusedUpgrade = await p.upgrade({
    method: "GET",
    path: "/ws",
    headers: { upgrade: "other", connection: "upgrade" },
  });
  assert.equal(refusedUpgrade.status, 400);
  assert.ok("body" in refusedUpgrade);
  assert.equal(await text(refusedUpgrade.body), "no");
});
