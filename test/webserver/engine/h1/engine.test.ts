/**
 * The HTTP/1.1 engine on real loopback sockets: framing, keep-alive, pipelining, HEAD, 1.0,
 * bodies, 100-continue, limits, what modules may and may not put in a head, file and stream
 * bodies, 444, keep-alive limits and graceful shutdown.
 */
import assert from "node:assert/strict";
import {
  closeSync,
  fstatSync,
  mkdtempSync,
  openSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileBuffers } from "../../../../src/webserver/engine/h1/bufferPool.ts";
import { backlogged } from "../../../../src/webserver/engine/h1/connection.ts";
import {
  Fields,
  HttpError,
  response,
  type WebRequest,
  type WebResponse,
} from "../../../../src/webserver/exchange.ts";
import { exchange, header, startEngine } from "./helpers.ts";

const hello = () => response(200, "hello", { "content-type": "text/plain" });

test("GET: status, Date, Server, Content-Length; keep-alive serves the next request", async (t) => {
  const { port } = await startEngine(t, { handler: hello });
  const x = await exchange(
    port,
    ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"],
    { responses: 2 },
  );
  assert.equal(x.error, undefined);
  assert.equal(x.responses.length, 2);
  const r = x.responses[0]!;
  assert.equal(r.status, 200);
  assert.equal(r.body, "hello");
  assert.equal(header(r, "content-length"), "5");
  assert.equal(header(r, "server"), "brigade");
  assert.match(header(r, "date") ?? "", /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.equal(header(r, "connection"), undefined);
  assert.equal(x.closed, false);
});

test("pipelined requests are answered in order, each with its own body, even when handlers finish out of order", async (t) => {
  const seen: string[] = [];
  const { port } = await startEngine(t, {
    handler: async (req) => {
      const body = (await req.body.buffer()).toString();
      seen.push(req.path);
      // Later requests would finish first if they ran concurrently.
      await sleep(req.path === "/1" ? 30 : 0);
      return response(200, `${req.path}:${body}`);
    },
  });
  const x = await exchange(
    port,
    "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: a\r\n\r\nPOST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n",
    { responses: 3 },
  );
  assert.deepEqual(
    x.responses.map((r) => r.body),
    ["/1:abc", "/2:", "/3:xy"],
  );
  assert.deepEqual(seen, ["/1", "/2", "/3"]);
});

test("pipelined responses larger than the socket buffer all arrive (coalescing never stalls)", async (t) => {
  const big = Buffer.alloc(200_000, 0x62);
  const { port } = await startEngine(t, {
    handler: (req) => response(200, req.path === "/s" ? "s" : big),
  });
  const x = await exchange(
    port,
    "GET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /s HTTP/1.1\r\nHost: a\r\n\r\n".repeat(4),
    {
      responses: 8,
    },
  );
  assert.equal(x.error, undefined);
  assert.deepEqual(
    x.responses.map((r) => r.body.length),
    [200_000, 1, 200_000, 1, 200_000, 1, 200_000, 1],
  );
});

test("HEAD gets the length of the body it would have had, and no body", async (t) => {
  const { port } = await startEngine(t, { handler: hello });
  const x = await exchange(
    port,
    "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    {
      responses: 2,
      methods: ["HEAD", "GET"],
    },
  );
  assert.equal(x.error, undefined);
  assert.equal(header(x.responses[0], "content-length"), "5");
  assert.equal(x.responses[0]!.body, "");
  assert.equal(x.responses[1]!.body, "hello");
});

test("HTTP/1.0: closed after the response unless keep-alive is asked for", async (t) => {
  const { port } = await startEngine(t, { handler: hello });
  const a = await exchange(port, "GET / HTTP/1.0\r\n\r\n");
  assert.equal(a.closed, true);
  assert.equal(header(a.responses[0], "connection"), "close");
  const b = await exchange(
    port,
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
  );
  assert.equal(b.responses.length, 2);
  assert.equal(header(b.responses[0], "connection"), "keep-alive");
  assert.equal(header(b.responses[1], "connection"), "close");
  assert.equal(b.closed, true);
});

test("a stream of unknown length is chunked for 1.1 and close-delimited for 1.0", async (t) => {
  const { port } = await startEngine(t, {
    handler: () => ({
      status: 200,
      fields: new Fields(),
      body: { kind: "stream", stream: Readable.from(["ab", "cd", "e"]) },
    }),
  });
  const a = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", { responses: 1 });
  assert.equal(header(a.responses[0], "transfer-encoding"), "chunked");
  assert.equal(a.responses[0]!.body, "abcde");
  const b = await exchange(port, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  assert.equal(b.responses[0]!.framing, "close");
  assert.equal(b.responses[0]!.body, "abcde");
  assert.equal(b.closed, true);
});

test("a stream with a declared length is sent with it; one that lies about it cuts the connection", async (t) => {
  const { port, reports } = await startEngine(t, {
    handler: (req) => ({
      status: 200,
      fields: new Fields(),
      body: {
        kind: "stream",
        stream: Readable.from([Buffer.from("abc")]),
        length: req.path === "/lie" ? 5 : 3,
      },
    }),
  });
  const a = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", { responses: 1 });
  assert.equal(header(a.responses[0], "content-length"), "3");
  assert.equal(a.responses[0]!.body, "abc");
  const b = await exchange(port, "GET /lie HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(b.responses.length, 0);
  assert.equal(b.closed, true);
  assert.ok(
    reports.some((r) => r.includes("shorter than its declared length")),
    reports.join("\n"),
  );
});

test("request bodies: read as a stream, or left unread and discarded before the next request", async (t) => {
  const { port } = await startEngine(t, {
    handler: async (req) => {
      if (req.path === "/stream") {
        let n = "";
        for await (const c of req.body.stream()) n += c;
        return response(200, `got ${n}`);
      }
      return response(200, `ignored ${req.body.length}`);
    },
  });
  const x = await exchange(
    port,
    [
      "POST /stream HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
      "3\r\ndef\r\n0\r\n\r\n",
      "POST /skip HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
      "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    { responses: 3 },
  );
  assert.deepEqual(
    x.responses.map((r) => r.body),
    ["got abcdef", "ignored 10", "got "],
  );
});

test("Expect: 100-continue: 100 when the body is read, or before an answer that drops it; none before a closing answer", async (t) => {
  const { port } = await startEngine(t, {
    handler: async (req) => {
      if (req.path === "/read") return response(200, await req.body.buffer());
      if (req.path === "/big") throw new HttpError(413, "too large", { close: true });
      return response(403, "no");
    },
  });
  const a = await exchange(
    port,
    "PUT /read HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    { limitMs: 300 },
  );
  assert.match(a.raw.toString(), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  // Refused without reading: 100 first (as nginx, which discards the body), then the 403; the
  // body that follows is dropped and the connection carries the next request.
  const deny = "PUT /deny HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n";
  const b = await exchange(
    port,
    [deny, "ok", "PUT /read HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"],
    {
      responses: 2,
    },
  );
  assert.deepEqual(
    b.responses.map((r) => [r.status, r.body]),
    [
      [403, "no"],
      [200, "hi"],
    ],
  );
  // An answer that closes the connection invites no body.
  const c = await exchange(
    port,
    "PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
  );
  assert.doesNotMatch(c.raw.toString(), /100 Continue/);
  assert.equal(c.responses[0]!.status, 413);
  assert.equal(header(c.responses[0], "connection"), "close");
  assert.equal(c.closed, true);
  const d = await exchange(port, "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n");
  assert.equal(d.responses[0]!.status, 417);
});

test("a broken chunked body nobody read turns the answer into a 400 when it arrived before it", async (t) => {
  const { port } = await startEngine(t, { handler: () => response(200, "fine") });
  const x = await exchange(
    port,
    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
  );
  assert.equal(x.responses[0]?.status, 400);
  assert.equal(x.closed, true);
});

test("the engine owns framing: modules' Content-Length, Transfer-Encoding, Connection, Keep-Alive are replaced", async (t) => {
  const { port } = await startEngine(t, {
    handler: () =>
      response(200, "abc", [
        ["content-length", "99"],
        ["transfer-encoding", "chunked"],
        ["connection", "close"],
        ["keep-alive", "timeout=1"],
        ["x-kept", "yes"],
      ]),
  });
  const x = await exchange(
    port,
    "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    { responses: 2 },
  );
  const r = x.responses[0]!;
  assert.deepEqual(
    r.headers.filter(([n]) => n !== "date"),
    [
      ["x-kept", "yes"],
      ["server", "brigade"],
      ["content-length", "3"],
    ],
  );
  assert.equal(x.responses.length, 2);
});

test("304 and HEAD keep a module's Content-Length with an empty body; 204 and 1xx have none", async (t) => {
  const { port } = await startEngine(t, {
    handler: (req) => {
      if (req.path === "/304")
        return response(304, undefined, { "content-length": "1234", etag: '"x"' });
      if (req.path === "/204") return response(204, undefined, { "content-length": "5" });
      return response(200, undefined, { "content-length": "4321" });
    },
  });
  const x = await exchange(
    port,
    "GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\nHEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    { responses: 4, methods: ["GET", "GET", "HEAD", "GET"] },
  );
  assert.equal(x.error, undefined);
  assert.equal(header(x.responses[0], "content-length"), "1234");
  assert.equal(header(x.responses[0], "etag"), '"x"');
  assert.equal(header(x.responses[1], "content-length"), undefined);
  assert.equal(header(x.responses[2], "content-length"), "4321");
  assert.equal(header(x.responses[3], "content-length"), "0", "a GET with an empty body states 0");
});

test("a field value with CR/LF (response splitting) is never written: 500 instead, connection closed", async (t) => {
  const { port, reports } = await startEngine(t, {
    handler: () => response(200, "x", { "x-evil": "a\r\nSet-Cookie: stolen=1" }),
  });
  const x = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(x.responses.length, 1);
  assert.equal(x.responses[0]!.status, 500);
  assert.doesNotMatch(x.raw.toString(), /stolen/);
  assert.equal(x.closed, true);
  assert.ok(
    reports.some((r) => r.startsWith("error: invalid response")),
    reports.join("\n"),
  );
});

test("handler errors: HttpError answers with its status and fields; a crash is a 500", async (t) => {
  const { port, reports } = await startEngine(t, {
    handler: (req) => {
      if (req.path === "/405")
        throw new HttpError(405, "no", { fields: Fields.from({ allow: "GET" }) });
      return Promise.reject(new Error("boom"));
    },
  });
  const a = await exchange(port, "POST /405 HTTP/1.1\r\nHost: a\r\n\r\n", { responses: 1 });
  assert.equal(a.responses[0]!.status, 405);
  assert.equal(header(a.responses[0], "allow"), "GET");
  const b = await exchange(port, "GET /crash HTTP/1.1\r\nHost: a\r\n\r\n", { responses: 1 });
  assert.equal(b.responses[0]!.status, 500);
  assert.ok(reports.some((r) => r === "handler: boom"));
});

test("limits: 414, 431 and 413 answered, then the connection closed", async (t) => {
  const { port } = await startEngine(t, {
    options: { maxRequestLine: 64, maxHeaderSize: 256 },
    handler: async (req) => {
      // What the pipeline does with a location's clientMaxBodySize.
      req.bodyLimit = 8;
      if ((req.declaredLength ?? 0) > 8) throw new HttpError(413, "too large", { close: true });
      return response(200, await req.body.buffer());
    },
  });
  const cases: [string, number][] = [
    [`GET /${"a".repeat(100)} HTTP/1.1\r\nHost: a\r\n\r\n`, 414],
    [`GET / HTTP/1.1\r\nHost: a\r\nX: ${"b".repeat(300)}\r\n\r\n`, 431],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\n123456789", 413],
    [
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n",
      413,
    ],
  ];
  for (const [raw, status] of cases) {
    const x = await exchange(port, raw);
    assert.equal(x.responses[0]?.status, status, raw.slice(0, 40));
    assert.equal(header(x.responses[0], "connection"), "close");
    assert.equal(x.closed, true);
  }
});

test("file bodies: a small and a large range, the fd closed after (unless keepOpen)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "brigade-h1-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const big = Buffer.alloc(300_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  writeFileSync(join(dir, "big"), big);
  const fds: number[] = [];
  const { port } = await startEngine(t, {
    handler: (req) => {
      const fd = openSync(join(dir, "big"), "r");
      fds.push(fd);
      const [start, end] =
        req.path === "/small" ? [10, 1010] : req.path === "/empty" ? [0, 0] : [5, 299_999];
      return {
        status: 200,
        fields: new Fields(),
        body: { kind: "file", fd, start, end, path: "big" },
      };
    },
  });
  const x = await exchange(
    port,
    "GET /small HTTP/1.1\r\nHost: a\r\n\r\nGET /large HTTP/1.1\r\nHost: a\r\n\r\nGET /empty HTTP/1.1\r\nHost: a\r\n\r\n",
    { responses: 3 },
  );
  assert.equal(x.error, undefined);
  assert.equal(header(x.responses[2], "content-length"), "0", "an empty range: the head alone");
  assert.equal(Buffer.from(x.responses[0]!.body, "latin1").equals(big.subarray(10, 1010)), true);
  assert.equal(Buffer.from(x.responses[1]!.body, "latin1").equals(big.subarray(5, 299_999)), true);
  await sleep(20);
  for (const fd of fds) assert.throws(() => fstatSync(fd), /EBADF/);

  const kept = openSync(join(dir, "big"), "r");
  t.after(() => closeSync(kept));
  const k = await startEngine(t, {
    handler: () => ({
      status: 200,
      fields: new Fields(),
      body: { kind: "file", fd: kept, start: 0, end: 4, path: "big", keepOpen: true },
    }),
  });
  const y = await exchange(k.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", { responses: 1 });
  assert.equal(y.responses[0]!.body.length, 4);
  await sleep(20);
  assert.ok(fstatSync(kept).size > 0);
});

test("status 444 closes the connection without a response", async (t) => {
  const { port } = await startEngine(t, { handler: () => response(444) });
  const x = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(x.raw.length, 0);
  assert.equal(x.closed, true);
});

test("keepaliveRequests: the last allowed request says Connection: close", async (t) => {
  const { port } = await startEngine(t, { handler: hello, options: { keepaliveRequests: 2 } });
  const x = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(3));
  assert.equal(x.responses.length, 2);
  assert.equal(header(x.responses[0], "connection"), undefined);
  assert.equal(header(x.responses[1], "connection"), "close");
  assert.equal(x.closed, true);
});

/** Send `raw` on a half-open-capable socket; resolve once the server has ended its side. */
async function untilServerEnds(port: number, raw: string): Promise<Socket> {
  const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  socket.on("error", () => {});
  socket.resume();
  await new Promise<void>((resolve, reject) => {
    socket.once("end", resolve);
    socket.once("close", () => reject(new Error("closed without an end")));
    socket.write(raw);
  });
  return socket;
}

async function connectionsAfter(
  engine: { connectionCount: number },
  want: number,
): Promise<number> {
  for (let i = 0; i < 50 && engine.connectionCount !== want; i++) await sleep(10);
  return engine.connectionCount;
}

test("a clean last response closes the connection at once; pipelined bytes after it make it linger", async (t) => {
  const { port, engine } = await startEngine(t, { handler: hello });
  // Connection: close, nothing after it: closed at once (nginx's way), not after the client's FIN.
  const clean = await untilServerEnds(
    port,
    "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
  );
  t.after(() => clean.destroy());
  assert.equal(
    await connectionsAfter(engine, 0),
    0,
    "closed while the client still holds its side",
  );
  // A next request already received: the engine half-closes and lingers (reads and drops), so
  // the client gets its response rather than a reset.
  const piped = await untilServerEnds(
    port,
    "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
  );
  t.after(() => piped.destroy());
  await sleep(200);
  assert.equal(engine.connectionCount, 1, "lingering");
  piped.end();
  assert.equal(await connectionsAfter(engine, 0), 0, "gone with the client's FIN");
});

test("the connection carries counts and addresses; the signal aborts when the client goes", async (t) => {
  let seen: WebRequest | undefined;
  let aborted!: () => void;
  const abortedP = new Promise<void>((r) => {
    aborted = r;
  });
  let reached!: () => void;
  const reachedP = new Promise<void>((r) => {
    reached = r;
  });
  const { port } = await startEngine(t, {
    handler: (req): Promise<WebResponse> | WebResponse => {
      if (req.path === "/hang") {
        req.signal.addEventListener("abort", () => aborted());
        reached();
        return new Promise(() => {});
      }
      seen = req;
      return hello();
    },
  });
  await exchange(
    port,
    "GET /a HTTP/1.1\r\nHost: Example.COM:81\r\n\r\nGET /b?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    { responses: 2 },
  );
  assert.equal(seen!.connection.requests, 1, "one request before this one");
  assert.equal(seen!.connection.remoteAddress, "127.0.0.1");
  assert.equal(seen!.path, "/b");
  assert.equal(seen!.query, "x=1");
  assert.equal(seen!.id.length, 32);
  // The client goes once the handler has the request (a fixed delay could go before it, under load).
  const client = connect(port, "127.0.0.1", () => {
    client.write("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n");
  });
  client.on("error", () => {});
  await reachedP;
  client.destroy();
  await abortedP;
});

test("shutdown: an idle connection is closed, a busy one finishes with Connection: close", async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const run = await startEngine(t, {
    handler: async (req) => {
      if (req.path === "/slow") await gate;
      return hello();
    },
  });
  const idle = exchange(run.port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  const busy = exchange(run.port, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
  while (run.engine.connectionCount < 2) await sleep(5);
  await sleep(20);
  const stopped = run.engine.stop(true);
  release();
  const [a, b] = await Promise.all([idle, busy]);
  await stopped;
  assert.equal(a.responses.length, 1);
  assert.equal(a.closed, true);
  assert.equal(b.responses.length, 1);
  assert.equal(header(b.responses[0], "connection"), "close");
  assert.equal(b.closed, true);
});

test("path and query: decoded once, dot segments resolved, slashes merged; unsafe paths are 400", async (t) => {
  const paths: string[] = [];
  const { port } = await startEngine(t, {
    handler: (req) => {
      paths.push(`${req.path}|${req.query}`);
      return hello();
    },
  });
  const x = await exchange(
    port,
    [
      "GET /a//b/./c/../d%20e?q=%20 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://h/x/%2e%2e/y HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /%E2%82%AC HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    { responses: 3 },
  );
  assert.equal(x.responses.length, 3);
  assert.deepEqual(paths, ["/a/b/d e|q=%20", "/y|", "/€|"]);
  for (const bad of ["/../etc/passwd", "/a/%2e%2e/%2e%2e/x", "/a%00b", "/%zz", "/%C3"]) {
    const y = await exchange(port, `GET ${bad} HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.equal(y.responses[0]?.status, 400, bad);
  }
});

test("file bodies use one pooled buffer per connection at a time, however large the file and slow the client", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "brigade-h1-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "huge");
  writeFileSync(path, "");
  truncateSync(path, 128 * 1024 * 1024); // sparse
  const fds: number[] = [];
  const { port } = await startEngine(t, {
    handler: () => {
      const fd = openSync(path, "r");
      fds.push(fd);
      return {
        status: 200,
        fields: new Fields(),
        body: { kind: "file", fd, start: 0, end: 128 * 1024 * 1024, path: "huge" },
      };
    },
  });
  const allocatedBefore = fileBuffers.allocated;
  const clients: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = connect(port, "127.0.0.1");
    s.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    await new Promise((resolve) => s.once("data", resolve));
    s.pause(); // and never read again
    clients.push(s);
  }
  // Wait (bounded) until every connection waits on its socket: no read in flight.
  for (let i = 0; i < 100 && fileBuffers.inUse > 4; i++) await sleep(50);
  await sleep(300);
  assert.ok(fileBuffers.inUse <= 4, `${fileBuffers.inUse} buffers in use for 4 connections`);
  assert.ok(fileBuffers.allocated - allocatedBefore <= 4, "no buffer allocated per chunk");
  for (const s of clients) s.destroy();
  for (let i = 0; i < 100 && (fileBuffers.inUse > 0 || fds.some(open)); i++) await sleep(50);
  assert.equal(fileBuffers.inUse, 0, "the buffers are back in the pool");
  assert.equal(fds.filter(open).length, 0, "the descriptors are closed");
});

function open(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

test("a write above the socket's high-water mark that the kernel took whole is no backlog; one the client holds back is", async (t) => {
  let client!: Socket;
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer(resolve).listen(0, "127.0.0.1");
    t.after(() => server.close());
    server.once("listening", () => {
      client = connect((server.address() as { port: number }).port, "127.0.0.1");
      t.after(() => client.destroy());
      client.on("data", () => {});
    });
  });
  const s = await accepted;
  s.cork();
  s.write(Buffer.alloc(300));
  s.write(Buffer.alloc(64 * 1024));
  s.uncork();
  // Node keeps writableNeedDrain until the 'drain' of the next tick, though nothing waits.
  assert.equal(s.writableNeedDrain, true);
  assert.equal(s.writableLength, 0);
  assert.equal(backlogged(s), false);
  client.pause();
  await sleep(20);
  s.write(Buffer.alloc(16 * 1024 * 1024));
  assert.ok(s.writableLength > 0, "more than the kernel holds for a client that does not read");
  assert.equal(backlogged(s), true);
  s.destroy();
});

test("a bytes body larger than the socket takes completes only as the client reads it, not while it holds back", async (t) => {
  const big = Buffer.alloc(16 * 1024 * 1024, 0x61);
  const done: number[] = [];
  let asked!: () => void;
  const handled = new Promise<void>((resolve) => {
    asked = resolve;
  });
  const { port } = await startEngine(t, {
    handler: () => {
      asked();
      return { status: 200, fields: new Fields(), body: { kind: "bytes", data: big } };
    },
    complete: (_req, _res, c) => done.push(c.bodyBytesSent),
  });
  const s = connect(port, "127.0.0.1");
  t.after(() => s.destroy());
  s.pause();
  s.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  await handled;
  await sleep(100);
  assert.deepEqual(done, [], "16 MiB cannot all be in the kernel's buffers of a paused client");
  let got = 0;
  s.on("data", (c: Buffer) => {
    got += c.length;
  });
  s.resume();
  for (let i = 0; i < 200 && done.length === 0; i++) await sleep(25);
  assert.deepEqual(done, [big.length]);
  for (let i = 0; i < 200 && got <= big.length; i++) await sleep(25);
  assert.ok(got > big.length, "the whole response arrives");
});
