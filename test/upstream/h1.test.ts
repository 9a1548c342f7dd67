/**
 * Brigade's upstream HTTP/1.1 client (src/upstream/h1.ts) on raw sockets: strict framing (two
 * framings, a bad status line: 502; a cut body: the body fails), connections never reused after
 * anything doubtful, 1xx skipped, bodiless statuses, chunked both ways, close-delimited bodies,
 * backpressure, what goes on the wire, and the read buffer shared by connections (nothing of it
 * kept). Plus, for both transports: a client that goes away is not a failure of the peer
 * (passive health).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { Readable } from "node:stream";
import { test } from "node:test";
import { PeerPool, type PoolOptions, UpstreamError } from "../../src/upstream/index.ts";
import { group, startPeers, text, until } from "./helpers.ts";

const options: PoolOptions = {
  idle: 8,
  idleTimeout: 4000,
  maxRequests: 1000,
  connectTimeout: 2000,
  sendTimeout: 2000,
  readTimeout: 3000,
};

function pool(
  t: { after(fn: () => unknown): void },
  port: number,
  extra: Partial<PoolOptions> = {},
) {
  const p = new PeerPool(
    { kind: "tcp", host: "127.0.0.1", port },
    { ...options, ...extra },
    "brigade",
  );
  t.after(() => p.destroy());
  return p;
}

/**
 * A raw peer: for each complete request head (and its Content-Length body) on a connection,
 * `answer(request, connectionIndex, requestIndexOnConnection)` gives the bytes to write back
 * (or null to close the connection).
 */
async function rawPeer(
  t: { after(fn: () => unknown): void },
  answer: (request: string, conn: number, n: number, socket: Socket) => string | null | undefined,
): Promise<{ port: number; connections: number; requests: string[] }> {
  const state = { port: 0, connections: 0, requests: [] as string[] };
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    const conn = state.connections++;
    let n = 0;
    let buf = "";
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.on("data", (d) => {
      buf += d.toString("latin1");
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buf.slice(0, end + 4);
        const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
        let total = end + 4 + (cl ? Number(cl[1]) : 0);
        if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
          const last = buf.indexOf("\r\n0\r\n\r\n", end);
          if (last === -1) return;
          total = last + 7;
        }
        if (buf.length < total) return;
        const request = buf.slice(0, total);
        buf = buf.slice(total);
        state.requests.push(request);
        const reply = answer(request, conn, n++, socket);
        if (reply === null) socket.destroy();
        else if (reply !== undefined) socket.write(reply);
      }
    });
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

const ok = (body: string, extra = "") =>
  `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

async function badResponse(p: PeerPool): Promise<UpstreamError> {
  try {
    const r = await p.request({ method: "GET", path: "/" });
    await text(r.body);
  } catch (err) {
    assert.ok(err instanceof UpstreamError, String(err));
    return err;
  }
  assert.fail("expected an error");
}

test("strict framing: two framings, bad status lines, bad fields are 502s, and the connection is closed", async (t) => {
  const replies: Record<string, string> = {
    "cl-te":
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "te-cl":
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "two-lengths": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "gzip-chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "status-line": "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "no-reason-space": "HTTP/1.1 200OK\r\nContent-Length: 2\r\n\r\nok",
    "bare-lf": "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "space-before-colon": "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    http2: "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
  };
  for (const [what, reply] of Object.entries(replies)) {
    const peer = await rawPeer(t, () => reply);
    const p = pool(t, peer.port);
    const e = await badResponse(p);
    assert.equal(e.kind, "badResponse", `${what}: ${e.message}`);
    assert.equal(e.status, 502, what);
    assert.match(e.message, /invalid response/, what);
    assert.equal(p.stats().open, 0, `${what}: the connection is closed`);
  }
});

test("a body cut short fails the body stream (never a short response that looks whole)", async (t) => {
  const cases = {
    length: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    chunked: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    "bad chunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
  };
  for (const [what, reply] of Object.entries(cases)) {
    const peer = await rawPeer(t, (_r, _c, _n, socket) => {
      socket.end(reply);
      return undefined;
    });
    const p = pool(t, peer.port);
    const r = await p.request({ method: "GET", path: "/" });
    assert.equal(r.status, 200);
    await assert.rejects(text(r.body), (err: Error) => {
      assert.ok(err instanceof UpstreamError, String(err));
      assert.equal(err.status, 502, what);
      return true;
    });
    assert.equal(p.stats().open, 0);
  }
});

test("never a reused poisoned connection: extra bytes, Connection: close, HTTP/1.0, a body given up", async (t) => {
  let mode = "";
  const peer = await rawPeer(t, (_r, conn) => {
    if (mode === "extra") return `${ok("one")}HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmug!`;
    if (mode === "close") return ok("bye", "Connection: close\r\n");
    if (mode === "http10") return "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
    if (mode === "big")
      return `HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n${"x".repeat(200000)}`;
    return ok(`conn${conn}`);
  });
  const p = pool(t, peer.port);
  const fetchText = async () => text((await p.request({ method: "GET", path: "/" })).body);

  mode = "extra";
  assert.equal(await fetchText(), "one");
  mode = "";
  // The smuggled second response is never taken as the answer to the next request.
  const next = await fetchText();
  assert.match(next, /^conn\d+$/);
  assert.notEqual(next, "conn0");

  for (const m of ["close", "http10"]) {
    mode = m;
    const before = peer.connections;
    await fetchText();
    mode = "";
    await fetchText();
    assert.equal(peer.connections, before + 1, `${m}: the next request goes on a new connection`);
  }

  mode = "big";
  const before = peer.connections;
  const r = await p.request({ method: "GET", path: "/" });
  await once(r.body, "readable");
  r.body.destroy();
  mode = "";
  assert.match(await fetchText(), /^conn\d+$/);
  assert.equal(peer.connections, before + 1, "a body given up closes its connection");
});

test("reuse: length, chunked and bodiless responses keep the connection; 1xx are skipped", async (t) => {
  const peer = await rawPeer(t, (request) => {
    const path = request.split(" ")[1];
    if (path === "/chunked")
      return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3;x=y\r\nllo\r\n0\r\nX-Trailer: t\r\n\r\n";
    if (path === "/interim")
      return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal";
    if (path === "/204") return "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
    if (path === "/304")
      return 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: "a"\r\n\r\n';
    if (request.startsWith("HEAD")) return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    return ok("plain");
  });
  const p = pool(t, peer.port);
  const get = async (path: string, method = "GET") => {
    const r = await p.request({ method, path });
    return { status: r.status, headers: r.headers, body: await text(r.body) };
  };
  assert.equal((await get("/")).body, "plain");
  assert.equal((await get("/chunked")).body, "hello");
  const interim = await get("/interim");
  assert.equal(interim.status, 200);
  assert.equal(interim.body, "final");
  assert.equal((await get("/204")).body, "");
  const nm = await get("/304");
  assert.equal(nm.status, 304);
  assert.equal(nm.body, "");
  const head = await get("/", "HEAD");
  assert.equal(head.body, "");
  assert.equal(head.headers["content-length"], "5");
  assert.equal((await get("/")).body, "plain");
  assert.equal(peer.connections, 1, "one connection for all of them");
});

test("a close-delimited body ends with the connection, which is not reused", async (t) => {
  const peer = await rawPeer(t, (_r, _c, _n, socket) => {
    socket.end("HTTP/1.1 200 OK\r\n\r\nuntil the end");
    return undefined;
  });
  const p = pool(t, peer.port);
  const r = await p.request({ method: "GET", path: "/" });
  assert.equal(await text(r.body), "until the end");
  await until(() => p.stats().open === 0, 2000, "closed");
});

test("the wire: head in one piece, Host, in-memory lengths, streamed bodies chunked or with their length", async (t) => {
  const peer = await rawPeer(t, () => ok("k"));
  const p = pool(t, peer.port);
  await text((await p.request({ method: "GET", path: "/a?b=1", headers: ["X-One", "1"] })).body);
  assert.equal(
    peer.requests[0],
    `GET /a?b=1 HTTP/1.1\r\nX-One: 1\r\nhost: 127.0.0.1:${peer.port}\r\n\r\n`,
  );
  await text(
    (await p.request({ method: "POST", path: "/", headers: { host: "h" }, body: "hello" })).body,
  );
  assert.equal(peer.requests[1], "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nhello");
  await text((await p.request({ method: "POST", path: "/", headers: { host: "h" } })).body);
  assert.equal(peer.requests[2], "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n");
  const streamed = Readable.from([Buffer.from("ab"), Buffer.from("cde")]);
  await text(
    (await p.request({ method: "PUT", path: "/", headers: { host: "h" }, body: streamed })).body,
  );
  assert.equal(
    peer.requests[3],
    "PUT / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n",
  );
  const sized = Readable.from([Buffer.from("ab"), Buffer.from("cde")]);
  await text(
    (
      await p.request({
        method: "PUT",
        path: "/",
        headers: { host: "h", "content-length": "5" },
        body: sized,
      })
    ).body,
  );
  assert.equal(peer.requests[4], "PUT / HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nabcde");
  assert.equal(peer.connections, 1);
  // A field that would split the head is refused before anything is sent.
  await assert.rejects(p.request({ method: "GET", path: "/", headers: { "x-bad": "a\r\nb: c" } }));
  await assert.rejects(p.request({ method: "GET", path: "/a b" }));
  assert.equal(peer.requests.length, 5);
});

test("the last request head is reused only for the same request: any change to method, path, a field, the body or the peer makes a new one", async (t) => {
  const peer = await rawPeer(t, () => ok("k"));
  const other = await rawPeer(t, () => ok("k"));
  const p = pool(t, peer.port);
  const q = pool(t, other.port);
  const send = async (
    via: PeerPool,
    method: string,
    path: string,
    headers: string[],
    body?: Buffer | Readable,
  ) => text((await via.request({ method, path, headers, body })).body);
  const fields = ["x-a", "1", "x-forwarded-for", "127.0.0.1"];
  // Each request sent twice or more in a row (the second from the memo), then a change.
  await send(p, "GET", "/a", fields);
  await send(p, "GET", "/a", fields.slice());
  await send(p, "GET", "/a", fields);
  await send(p, "GET", "/b", fields);
  await send(p, "DELETE", "/b", fields);
  await send(p, "DELETE", "/b", ["x-a", "2", "x-forwarded-for", "127.0.0.1"]);
  await send(p, "DELETE", "/b", ["x-a", "2", "x-forwarded-for", "127.0.0.1"]);
  await send(p, "DELETE", "/b", ["x-a", "2", "X-Forwarded-For", "127.0.0.1"]);
  await send(p, "DELETE", "/b", ["x-a", "2"]);
  await send(p, "POST", "/b", ["x-a", "2"], Buffer.from("one"));
  await send(p, "POST", "/b", ["x-a", "2"], Buffer.from("one"));
  await send(p, "POST", "/b", ["x-a", "2"], Buffer.from("three"));
  await send(p, "POST", "/b", ["x-a", "2"], Readable.from([Buffer.from("st")]));
  await send(p, "POST", "/b", ["x-a", "2"]);
  // A list changed in place after it was sent is not the same list.
  const mutable = ["x-m", "before"];
  await send(p, "GET", "/m", mutable);
  mutable[1] = "after";
  await send(p, "GET", "/m", mutable);
  // The same fields to another peer: its own Host.
  await send(q, "GET", "/m", mutable);
  await send(p, "GET", "/m", mutable);
  const host = `host: 127.0.0.1:${peer.port}\r\n`;
  assert.deepEqual(peer.requests, [
    `GET /a HTTP/1.1\r\nx-a: 1\r\nx-forwarded-for: 127.0.0.1\r\n${host}\r\n`,
    `GET /a HTTP/1.1\r\nx-a: 1\r\nx-forwarded-for: 127.0.0.1\r\n${host}\r\n`,
    `GET /a HTTP/1.1\r\nx-a: 1\r\nx-forwarded-for: 127.0.0.1\r\n${host}\r\n`,
    `GET /b HTTP/1.1\r\nx-a: 1\r\nx-forwarded-for: 127.0.0.1\r\n${host}\r\n`,
    `DELETE /b HTTP/1.1\r\nx-a: 1\r\nx-forwarded-for: 127.0.0.1\r\n${host}\r\n`,
    `DELETE /b HTTP/1.1\r\nx-a: 2\r\nx-forwarded-for: 127.0.0.1\r\n${host}\r\n`,
    `DELETE /b HTTP/1.1\r\nx-a: 2\r\nx-forwarded-for: 127.0.0.1\r\n${host}\r\n`,
    `DELETE /b HTTP/1.1\r\nx-a: 2\r\nX-Forwarded-For: 127.0.0.1\r\n${host}\r\n`,
    `DELETE /b HTTP/1.1\r\nx-a: 2\r\n${host}\r\n`,
    `POST /b HTTP/1.1\r\nx-a: 2\r\n${host}content-length: 3\r\n\r\none`,
    `POST /b HTTP/1.1\r\nx-a: 2\r\n${host}content-length: 3\r\n\r\none`,
    `POST /b HTTP/1.1\r\nx-a: 2\r\n${host}content-length: 5\r\n\r\nthree`,
    `POST /b HTTP/1.1\r\nx-a: 2\r\n${host}transfer-encoding: chunked\r\n\r\n2\r\nst\r\n0\r\n\r\n`,
    `POST /b HTTP/1.1\r\nx-a: 2\r\n${host}content-length: 0\r\n\r\n`,
    `GET /m HTTP/1.1\r\nx-m: before\r\n${host}\r\n`,
    `GET /m HTTP/1.1\r\nx-m: after\r\n${host}\r\n`,
    `GET /m HTTP/1.1\r\nx-m: after\r\n${host}\r\n`,
  ]);
  assert.deepEqual(other.requests, [
    `GET /m HTTP/1.1\r\nx-m: after\r\nhost: 127.0.0.1:${other.port}\r\n\r\n`,
  ]);
  // A field refused once is refused again (nothing of a failed head is remembered).
  const bad = ["x-bad", "a\r\nb: c"];
  await assert.rejects(p.request({ method: "GET", path: "/m", headers: bad }));
  await assert.rejects(p.request({ method: "GET", path: "/m", headers: bad }));
  assert.equal(peer.requests.length, 17);
});

test("backpressure: a body nobody reads stays in the socket, and flows again when read", async (t) => {
  const size = 8 * 1024 * 1024;
  const [peer] = await startPeers(t, 1, (_req, res) => {
    res.setHeader("content-length", size);
    res.end(Buffer.alloc(size, 97));
  });
  const p = pool(t, peer!.port);
  const r = await p.request({ method: "GET", path: "/" });
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(r.body.readableLength < size / 2, `buffered ${r.body.readableLength}`);
  let n = 0;
  for await (const c of r.body) n += (c as Buffer).length;
  assert.equal(n, size);
  assert.equal(p.stats().idle, 1);
});

for (const client of ["brigade", "undici"] as const) {
  test(`passive health (${client}): a client that goes away is not a failure of the peer`, async (t) => {
    const previous = process.env.BRIGADE_UPSTREAM_CLIENT;
    process.env.BRIGADE_UPSTREAM_CLIENT = client;
    t.after(() => {
      if (previous === undefined) delete process.env.BRIGADE_UPSTREAM_CLIENT;
      else process.env.BRIGADE_UPSTREAM_CLIENT = previous;
    });
    const [a, b] = await startPeers(t, 2, (req, res) => {
      if (req.url === "/slow") {
        res.flushHeaders();
        res.write("part");
        return; // never ends
      }
      if (req.url === "/hang") return; // never answers
      res.end("ok");
    });
    const g = await group(t, { peers: [a!.address, b!.address], maxFails: 1, failTimeout: "30s" });
    for (const path of ["/hang", "/slow"]) {
      for (let i = 0; i < 4; i++) {
        const ac = new AbortController();
        const pending = g.request({
          method: "GET",
          path,
          headers: { host: "x" },
          signal: ac.signal,
        });
        if (path === "/slow") {
          const res = await pending;
          res.body.on("error", () => {});
          res.body.resume();
          await new Promise((r) => setTimeout(r, 20));
          // As the engine does when its client closes.
          ac.abort(new Error("client closed the connection"));
          if (!res.body.destroyed) await new Promise((r) => res.body.once("close", r));
        } else {
          await new Promise((r) => setTimeout(r, 20));
          ac.abort(new Error("client closed the connection"));
          await assert.rejects(pending, (e: UpstreamError) => e.kind === "aborted");
        }
      }
    }
    await until(() => g.snapshot().peers.every((p) => p.active === 0), 2000, "leases released");
    for (const p of g.snapshot().peers) {
      assert.equal(p.state, "up", `${p.name} ${JSON.stringify(p)}`);
      assert.equal(p.failures, 0, p.name);
    }
  });
}

for (const client of ["brigade", "undici"] as const) {
  test(`${client}: a header that cannot be sent is an invalidRequest (500): nothing sent, no peer failure, no retry`, async (t) => {
    const previous = process.env.BRIGADE_UPSTREAM_CLIENT;
    process.env.BRIGADE_UPSTREAM_CLIENT = client;
    t.after(() => {
      if (previous === undefined) delete process.env.BRIGADE_UPSTREAM_CLIENT;
      else process.env.BRIGADE_UPSTREAM_CLIENT = previous;
    });
    const peers = await startPeers(t, 2);
    const g = await group(t, {
      peers: peers.map((p) => p.address),
      maxFails: 1,
      failTimeout: "30s",
    });
    for (const value of ["a\r\nx-injected: 1", "a\nb", "a\0b"]) {
      await assert.rejects(
        g.request({ method: "GET", path: "/", headers: { host: "x", "x-uri": value } }),
        (e: UpstreamError) => {
          assert.equal(e.kind, "invalidRequest", e.message);
          assert.equal(e.status, 500);
          assert.equal(e.sent, false);
          assert.equal(e.attempts.length, 1, "not retried");
          assert.equal(e.attempts[0]!.retried, false);
          if (client === "brigade") assert.match(e.message, /header "x-uri"/);
          return true;
        },
      );
    }
    assert.deepEqual(
      peers.map((p) => p.hits),
      [0, 0],
      "nothing reached a peer",
    );
    for (const p of g.snapshot().peers) {
      assert.equal(p.state, "up", p.name);
      assert.equal(p.failures, 0, p.name);
      assert.equal(p.active, 0, p.name);
    }
    // The group still serves.
    const res = await g.request({ method: "GET", path: "/", headers: { host: "x" } });
    assert.match(await text(res.body), /^peer\d$/);
  });
}

test("timers: an idle connection closes after the idle timeout (or the peer's Keep-Alive hint), a busy one is not timed as idle", async (t) => {
  const peer = await rawPeer(t, (request) =>
    request.includes("/hint") ? ok("h", "Keep-Alive: timeout=1\r\n") : ok("k"),
  );
  const p = pool(t, peer.port, { idleTimeout: 150, readTimeout: 400 });
  for (let i = 0; i < 3; i++) {
    assert.equal(await text((await p.request({ method: "GET", path: "/" })).body), "k");
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(peer.connections, 1, "reused within the idle timeout");
  await until(() => p.stats().open === 0, 2000, "closed when idle");
  // timeout=1: kept for 1 s less than that, i.e. not at all.
  await text((await p.request({ method: "GET", path: "/hint" })).body);
  assert.equal(p.stats().open, 0);
});

test("the shared read buffer: concurrent responses of every size and framing, read at once or late, arrive intact", async (t) => {
  const sizes = [0, 1, 100, 3000, 5000, 17000, 65000, 70000, 200000];
  const bodyOf = (n: number): Buffer => {
    const b = Buffer.allocUnsafe(sizes[n % sizes.length]!);
    let x = (n * 2654435761) >>> 0;
    for (let i = 0; i < b.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[i] = x >>> 24;
    }
    return b;
  };
  const [peer] = await startPeers(t, 1, (req, res) => {
    const n = Number(req.url!.slice(1));
    const b = bodyOf(n);
    if (n % 3 === 0) {
      // Content-Length, in one write
      res.writeHead(200, { "content-length": b.length });
      res.end(b);
    } else if (n % 3 === 1) {
      // chunked, in two writes a tick apart
      res.writeHead(200);
      res.write(b.subarray(0, b.length >> 1));
      setImmediate(() => res.end(b.subarray(b.length >> 1)));
    } else {
      // Content-Length, in pieces
      res.writeHead(200, { "content-length": b.length });
      let i = 0;
      const step = (): void => {
        if (i >= b.length) {
          res.end();
          return;
        }
        res.write(b.subarray(i, i + 7000));
        i += 7000;
        setImmediate(step);
      };
      step();
    }
  });
  const p = pool(t, peer!.port);
  const one = async (n: number): Promise<void> => {
    const res = await p.request({ method: "GET", path: `/${n}` });
    // Every fourth reader starts late: what arrived meanwhile waits in the parser (copied out of
    // the shared buffer) while other connections read into it.
    if (n % 4 === 0) await new Promise((r) => setTimeout(r, 5));
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(bodyOf(n)), `response ${n} intact`);
  };
  for (let batch = 0; batch < 6; batch++) {
    await Promise.all(Array.from({ length: 40 }, (_, i) => one(batch * 40 + i)));
  }
  assert.ok(p.stats().reused > 0, "connections were reused");
});

test("requests go out at the end of the event-loop turn: one aborted in the turn it was sent never reaches the peer", async (t) => {
  const peer = await rawPeer(t, (request) => ok(request.slice(4, request.indexOf(" ", 4))));
  const p = pool(t, peer.port);
  assert.equal(await text((await p.request({ method: "GET", path: "/a" })).body), "/a");
  // Sent on the kept connection and given up at once (a client gone while its request was
  // being routed): nothing of it was written yet.
  const ac = new AbortController();
  const pending = p.request({ method: "GET", path: "/b", signal: ac.signal });
  ac.abort(new Error("client closed the connection"));
  await assert.rejects(pending, (e: UpstreamError) => e.kind === "aborted");
  // Several in one turn all go out (kept and fresh connections alike).
  const texts = await Promise.all(
    ["/c", "/d", "/e"].map(async (path) => text((await p.request({ method: "GET", path })).body)),
  );
  assert.deepEqual(texts, ["/c", "/d", "/e"]);
  const paths = peer.requests.map((r) => r.slice(4, r.indexOf(" ", 4)));
  assert.deepEqual(paths.sort(), ["/a", "/c", "/d", "/e"]);
});

test("a kept connection the peer closed as it was taken: the request goes again on a fresh one", async (t) => {
  // Each answer closes its connection without saying so: the next request may take the kept
  // connection after its FIN was read and before it closed (or find it gone).
  const peer = await rawPeer(t, (request, _c, _n, socket) => {
    socket.end(ok(request.slice(4, request.indexOf(" ", 4))));
    return undefined;
  });
  const p = pool(t, peer.port, { readTimeout: 1000 });
  for (let i = 0; i < 40; i++) {
    assert.equal(await text((await p.request({ method: "GET", path: `/${i}` })).body), `/${i}`);
    // Let the connection's end arrive in one of a few places of the loop.
    for (let k = 0; k < i % 4; k++) await new Promise((r) => setImmediate(r));
  }
});
