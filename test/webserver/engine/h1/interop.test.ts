/**
 * Real clients against the engine: undici (Node's fetch) with keep-alive reuse, request streams
 * and chunked responses; curl for HTTP/1.0 and pipelining-free keep-alive.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { Readable } from "node:stream";
import { test } from "node:test";
import { promisify } from "node:util";
import { Fields, response } from "../../../../src/webserver/exchange.ts";
import { requireTool } from "../../../helpers/peers.ts";
import { startEngine } from "./helpers.ts";

const run = promisify(execFile);

test("fetch (undici): keep-alive reuse, streamed request body, chunked response", async (t) => {
  const conns = new Set<number>();
  const { port } = await startEngine(t, {
    handler: async (req) => {
      conns.add(req.connection.id);
      if (req.method === "POST") {
        const body = await req.body.buffer();
        return response(201, `len=${body.length}`, { "content-type": "text/plain" });
      }
      return {
        status: 200,
        fields: new Fields(),
        body: { kind: "stream", stream: Readable.from(["a", "b", "c"]) },
      };
    },
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 3; i++) {
    const r = await fetch(`${base}/x`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("transfer-encoding"), "chunked");
    assert.equal(await r.text(), "abc");
  }
  const post = await fetch(`${base}/up`, {
    method: "POST",
    body: Readable.toWeb(
      Readable.from([Buffer.alloc(70_000, 1), Buffer.alloc(30_000, 2)]),
    ) as ReadableStream,
    duplex: "half",
  } as RequestInit);
  assert.equal(post.status, 201);
  assert.equal(await post.text(), "len=100000");
  // undici's pool alternates between two sockets here (it does the same against node:http):
  // four requests on at most two connections means they were reused.
  assert.ok(conns.size <= 2, `${conns.size} connections for four requests`);
});

test("curl: HTTP/1.0, HEAD, and several requests over one connection", async (t) => {
  if (!requireTool(t, "curl")) return;
  const { port } = await startEngine(t, {
    handler: () => response(200, "hello\n", { "content-type": "text/plain" }),
  });
  const url = `http://127.0.0.1:${port}/`;
  const a = await run("curl", ["-s", "-i", "-0", url]);
  assert.match(a.stdout, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(a.stdout, /\r\nconnection: close\r\n/i);
  const b = await run("curl", ["-s", "-I", url]);
  assert.match(b.stdout, /\r\ncontent-length: 6\r\n/i);
  const c = await run("curl", ["-s", "-v", url, url, url]);
  assert.equal(c.stdout, "hello\nhello\nhello\n");
  assert.match(c.stderr, /Re-using existing connection|Reusing existing/);
});
