/**
 * The HTTP/1 engine on real sockets (in this process): keep-alive, pipelining, HTTP/1.0, HEAD,
 * each body kind, Upgrade and CONNECT takeover, limits, timeouts, Date and Server.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { type TestContext, test } from "node:test";
import type { UserConfig } from "../../src/config/schema.ts";
import { modules } from "../../src/webserver/modules.ts";
import { waitFor } from "../helpers/process.ts";
import { exchange, request, startEngine, tempDir } from "./helpers.ts";
import { probe } from "./probe.ts";

type Web = NonNullable<UserConfig["web"]>;

async function serve(t: TestContext, web: Web = {}) {
  const dir = tempDir(t);
  return startEngine(t, { listen: ["127.0.0.1:0"], ...web }, { modules: [...modules, probe(dir)] });
}

test("keep-alive, pipelining and HTTP/1.0", async (t) => {
  const s = await serve(t);
  const pipelined = await exchange(
    s.port,
    "GET /req/a HTTP/1.1\r\nHost: x\r\n\r\nGET /req/b HTTP/1.1\r\nHost: x\r\n\r\nGET /req/c HTTP/1.1\r\nHost: x\r\n\r\n",
    { responses: 3 },
  );
  assert.deepEqual(
    pipelined.responses.map((r) => [
      r.status,
      JSON.parse(r.text).path,
      JSON.parse(r.text).requests,
    ]),
    [
      [200, "/req/a", 0],
      [200, "/req/b", 1],
      [200, "/req/c", 2],
    ],
  );
  assert.equal(pipelined.closed, false, "keep-alive");
  const old = await exchange(s.port, "GET /req/x HTTP/1.0\r\n\r\n", { untilClose: true });
  assert.equal(old.responses[0]!.status, 200);
  assert.equal(JSON.parse(old.responses[0]!.text).version, "1.0");
  assert.equal(old.closed, true, "HTTP/1.0 without keep-alive closes");
  const kept = await exchange(
    s.port,
    "GET /req/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /req/y HTTP/1.0\r\n\r\n",
    { responses: 2 },
  );
  assert.equal(kept.responses.length, 2);
});

test("HEAD gets the GET's length and no body; Date and Server", async (t) => {
  const s = await serve(t);
  const get = await request(s.port, "/file/100");
  const head = await request(s.port, "/file/100", { method: "HEAD" });
  assert.equal(get.headers["content-length"], "100");
  assert.equal(head.headers["content-length"], "100");
  assert.equal(head.body.length, 0);
  assert.equal(get.headers.server, "brigade");
  assert.ok(!Number.isNaN(Date.parse(get.headers.date!)));
  const ex = await exchange(
    s.port,
    "HEAD /stream/3 HTTP/1.1\r\nHost: x\r\n\r\nGET /req/after HTTP/1.1\r\nHost: x\r\n\r\n",
    { responses: 2, head: [true, false] },
  );
  assert.equal(ex.responses[1]!.status, 200, "the connection stays in sync after a HEAD");
  const hidden = await serve(t, { serverHeader: "off" });
  assert.equal((await request(hidden.port, "/req/")).headers.server, undefined);
  const versioned = await serve(t, { serverHeader: "version" });
  assert.match((await request(versioned.port, "/req/")).headers.server!, /^brigade\/\d/);
});

test("every body kind: bytes, small and large files, streams", async (t) => {
  const s = await serve(t);
  const small = await request(s.port, "/file/1000");
  assert.equal(small.body.length, 1000);
  assert.equal(small.text.slice(0, 3), "abc");
  const large = await request(s.port, "/file/300000");
  assert.equal(large.body.length, 300000);
  assert.equal(large.body[299999], 97 + (299999 % 26));
  const stream = await request(s.port, "/stream/3");
  assert.equal(stream.headers["transfer-encoding"], "chunked");
  assert.equal(stream.text, "chunk0;chunk1;chunk2;");
  const empty = await request(s.port, "/file/0");
  assert.equal(empty.headers["content-length"], "0");
});

test("request bodies: read, limited by declared length and while chunked", async (t) => {
  const s = await serve(t, { clientMaxBodySize: 10 });
  const ok = await request(s.port, "/body", { method: "POST", body: "hello" });
  assert.equal(ok.text, "5:hello");
  const chunked = await exchange(
    s.port,
    "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
  );
  assert.equal(chunked.responses[0]!.text, "5:abcde");
  const declared = await exchange(
    s.port,
    "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    { untilClose: true },
  );
  assert.equal(declared.responses[0]!.status, 413);
  assert.equal(declared.responses[0]!.headers.connection, "close");
  const tooLong = await exchange(
    s.port,
    "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
    { untilClose: true },
  );
  assert.equal(tooLong.responses[0]!.status, 413);
  assert.equal(tooLong.closed, true);
});

test("Upgrade and CONNECT hand the connection over; other upgrades are answered normally", async (t) => {
  const s = await serve(t);
  const echo = (raw: string, then: string) =>
    new Promise<string>((resolve, reject) => {
      const c = net.connect(s.port, "127.0.0.1", () => c.write(raw));
      let got = "";
      let sent = false;
      c.on("data", (d) => {
        got += d.toString("latin1");
        if (!sent && got.includes("\r\n\r\n")) {
          sent = true;
          c.write(then);
        }
        if (got.endsWith(then)) {
          c.destroy();
          resolve(got);
        }
      });
      c.on("error", reject);
      setTimeout(() => {
        c.destroy();
        reject(new Error(`no echo: ${JSON.stringify(got)}`));
      }, 5000);
    });
  const ws = await echo(
    "GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    "ping",
  );
  assert.match(ws, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(ws, /\r\nupgrade: echo\r\n/);
  assert.ok(ws.endsWith("\r\n\r\nping"));
  const tunnel = await echo(
    "CONNECT upstream.test:443 HTTP/1.1\r\nHost: upstream.test:443\r\n\r\n",
    "pong",
  );
  assert.match(tunnel, /^HTTP\/1\.1 200 OK\r\n/);
  // curl --http2 on plain http sends Upgrade: h2c; a location that does not take over answers.
  const h2c = await exchange(
    s.port,
    "GET /req/u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
  );
  assert.equal(h2c.responses[0]!.status, 200);
  assert.equal(JSON.parse(h2c.responses[0]!.text).path, "/req/u");
});

test("limits: request line 414, header count and size 431, Host rules 400", async (t) => {
  const s = await serve(t, { maxRequestLine: 100, maxHeaders: 5, maxHeaderSize: 2000 });
  const long = await exchange(s.port, `GET /${"a".repeat(200)} HTTP/1.1\r\nHost: x\r\n\r\n`, {
    untilClose: true,
  });
  assert.equal(long.responses[0]!.status, 414);
  assert.equal(long.closed, true);
  const huge = await exchange(s.port, `GET /${"a".repeat(3000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.equal(huge.responses[0]!.status, 414);
  const many = await exchange(
    s.port,
    `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 6 }, (_, i) => `X-${i}: 1\r\n`).join("")}\r\n`,
  );
  assert.equal(many.responses[0]!.status, 431);
  const big = await exchange(
    s.port,
    `GET / HTTP/1.1\r\nHost: x\r\nX: ${"b".repeat(3000)}\r\n\r\n`,
    {
      untilClose: true,
    },
  );
  assert.equal(big.responses[0]!.status, 431);
  assert.equal(big.closed, true);
  const noHost = await exchange(s.port, "GET /req/ HTTP/1.1\r\n\r\n");
  assert.equal(noHost.responses[0]!.status, 400);
  const twoHosts = await exchange(s.port, "GET /req/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
  assert.equal(twoHosts.responses[0]!.status, 400);
  const badHost = await exchange(s.port, "GET /req/ HTTP/1.1\r\nHost: a/b\r\n\r\n");
  assert.equal(badHost.responses[0]!.status, 400);
});

test("absolute-form targets route by their host; OPTIONS * is refused", async (t) => {
  const s = await serve(t);
  const abs = await exchange(
    s.port,
    "GET http://Other.Test:81/req/p?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  const seen = JSON.parse(abs.responses[0]!.text);
  assert.deepEqual([seen.host, seen.path, seen.query], ["other.test", "/req/p", "q=1"]);
  const star = await exchange(s.port, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal(star.responses[0]!.status, 400);
});

test("timeouts: the head, the body, an idle keep-alive, a client that stops reading", async (t) => {
  const s = await serve(t, {
    clientHeaderTimeout: "300ms",
    clientBodyTimeout: "300ms",
    keepaliveTimeout: "300ms",
    sendTimeout: "300ms",
  });
  const head = await exchange(s.port, "GET / HTTP/1.1\r\nHost: x\r\n", {
    timeoutMs: 8000,
    untilClose: true,
  });
  assert.equal(head.responses[0]?.status, 408);
  assert.equal(head.closed, true);
  const body = await exchange(
    s.port,
    "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    { timeoutMs: 8000, untilClose: true },
  );
  assert.equal(body.responses[0]?.status, 408);
  assert.equal(body.closed, true);
  const idle = await exchange(s.port, "GET /req/ HTTP/1.1\r\nHost: x\r\n\r\n", {
    timeoutMs: 8000,
    untilClose: true,
  });
  assert.equal(idle.responses.length, 1);
  assert.equal(idle.closed, true, "an idle keep-alive connection is closed");
  // A client that asks for 20 MB and never reads: the server drops it.
  const c = net.connect(s.port, "127.0.0.1", () =>
    c.write("GET /file/20000000 HTTP/1.1\r\nHost: x\r\n\r\n"),
  );
  c.pause();
  t.after(() => c.destroy());
  await waitFor(() => s.engine.sendTimeouts === 1, "the stalled client to be dropped", 10_000);
  // Reading now gets what was buffered, then the end: far less than the 20 MB asked for.
  let got = 0;
  c.on("data", (d) => {
    got += d.length;
  });
  c.resume();
  await new Promise((resolve) => c.once("close", resolve));
  assert.ok(got < 20_000_000, `got ${got} bytes`);
});

test("errors: the built-in page, 500 for a throw, 444 closes", async (t) => {
  const s = await serve(t, {
    servers: [
      {
        listen: ["127.0.0.1:0"],
        locations: [{ match: "= /drop", return: 444 }],
      },
    ],
  });
  const notFound = await request(s.port, "/error/404");
  assert.equal(notFound.status, 404);
  assert.equal(notFound.headers["content-type"], "text/html");
  assert.match(notFound.text, /<title>404 Not Found<\/title>/);
  const thrown = await request(s.port, "/throw");
  assert.equal(thrown.status, 500);
  const drop = await exchange(s.port, "GET /drop HTTP/1.1\r\nHost: x\r\n\r\n", {
    untilClose: true,
  });
  assert.equal(drop.responses.length, 0);
  assert.equal(drop.closed, true);
  const garbage = await exchange(s.port, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", {
    untilClose: true,
  });
  assert.equal(garbage.responses[0]?.status, 400);
  assert.equal(garbage.closed, true);
});
