/**
 * A peer that closes every connection after its response (gunicorn's sync workers, HTTP/1.0
 * servers) says so with `Connection: close`; the pool must not keep that connection, or every
 * next request fails on the dead socket first and is replayed on a fresh one.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { createUpstreamGroup } from "../../src/upstream/index.ts";

test("a connection the peer closes (Connection: close) is not reused", async (t) => {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.on("error", () => {});
    socket.once("data", () =>
      socket.end("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const group = await createUpstreamGroup("g", { peers: [`127.0.0.1:${port}`] });
  t.after(() => group.close());
  for (let i = 0; i < 20; i++) {
    const r = await group.request({ method: "GET", path: "/", headers: ["host", "x"] });
    let text = "";
    for await (const c of r.body) text += c;
    assert.equal(text, "ok");
  }
  const pool = group.snapshot().peers[0]!.pool;
  assert.equal(pool.requests, 20, "one attempt per request, none on a dead connection");
  assert.equal(pool.reused, 0);
  assert.equal(connections, 20);
});
