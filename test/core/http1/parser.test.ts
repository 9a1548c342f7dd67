/**
 * Parser properties the corpus cannot state: body pieces stay valid after later feeds (the
 * parser appends into its own buffer, never over what it handed out), the unparsed rest after an
 * upgrade, response framing that depends on the request, the end of a close-delimited body, and
 * a head arriving one byte at a time costing one search per byte, not one per byte squared.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BODY,
  defaultLimits,
  END,
  H1Parser,
  HEAD,
  type Head,
  NEED_MORE,
  ParseError,
  type ParserLimits,
} from "../../../src/core/http1/parser.ts";

function drain(p: H1Parser, out: { ev: number; data?: Buffer }[] = []) {
  for (let ev = p.next(); ev !== NEED_MORE; ev = p.next()) {
    out.push(ev === BODY ? { ev, data: p.chunk } : { ev });
  }
  return out;
}

test("body pieces handed out are never overwritten by later input", () => {
  const p = new H1Parser("request");
  const kept: Buffer[] = [];
  let want = "";
  // Every feed ends inside a chunk-size line, so the parser keeps a partial line and appends
  // the next feed into its own buffer, behind the body pieces it has already handed out.
  p.feed(Buffer.from("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5"));
  for (let i = 0; i < 200; i++) {
    for (const e of drain(p)) if (e.data) kept.push(e.data);
    const data = String(i).padStart(5, "0");
    want += data;
    p.feed(Buffer.from(`\r\n${data}\r\n`));
    for (const e of drain(p)) if (e.data) kept.push(e.data);
    p.feed(Buffer.from(i === 199 ? "0\r\n\r\n" : "5"));
  }
  const evs = drain(p);
  for (const e of evs) if (e.data) kept.push(e.data);
  assert.equal(evs.at(-1)?.ev, END);
  assert.equal(Buffer.concat(kept).toString(), want);
});

test("after an upgrade request the parser stops; rest() is what followed the head", () => {
  const p = new H1Parser("request");
  p.feed(
    Buffer.from(
      "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x05hello",
      "latin1",
    ),
  );
  assert.equal(p.next(), HEAD);
  assert.equal(p.head.upgrade, "websocket");
  assert.equal(p.next(), END);
  p.stop();
  assert.equal(p.next(), NEED_MORE);
  assert.equal(p.rest().toString("latin1"), "\x81\x05hello");
});

test("responses: HEAD and 304 have no body, 1xx are interim, a close-delimited body ends at eof", () => {
  const p = new H1Parser("response");
  p.requestMethod = "HEAD";
  p.feed(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"));
  assert.deepEqual(
    drain(p).map((e) => e.ev),
    [HEAD, END],
  );
  p.requestMethod = "GET";
  p.feed(Buffer.from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nto the end"));
  const evs = drain(p);
  assert.deepEqual(
    evs.map((e) => e.ev),
    [HEAD, END, HEAD, BODY],
  );
  assert.equal(p.head.framing, "close");
  assert.equal(p.head.keepAlive, false);
  assert.equal(p.eof(), true);
  assert.equal(p.next(), END);
});

test("a response framed two ways is a 502 whatever the request was", () => {
  for (const method of ["GET", "POST"]) {
    const p = new H1Parser("response");
    p.requestMethod = method;
    p.feed(
      Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"),
    );
    assert.throws(
      () => p.next(),
      (e: unknown) => e instanceof ParseError && e.status === 502 && e.code === "cl-te",
    );
    // dead after an error
    assert.throws(() => p.next(), ParseError);
  }
});

test("a request cut short: eof() says the message did not end", () => {
  const p = new H1Parser("request");
  p.feed(Buffer.from("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab"));
  drain(p);
  assert.equal(p.eof(), false);
  const q = new H1Parser("request");
  q.feed(Buffer.from("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  drain(q);
  assert.equal(q.eof(), true);
});

test("a head fed one byte at a time is searched once per byte (no quadratic rescans)", () => {
  const p = new H1Parser("request", { maxHeaderBytes: 1 << 20 });
  const head = `GET / HTTP/1.1\r\nHost: a\r\nX-Long: ${"v".repeat(200_000)}\r\n\r\n`;
  const bytes = Buffer.from(head);
  let searched = 0;
  const indexOf = Buffer.prototype.indexOf;
  // Count the bytes the LF search looks at: from where it starts to where it stops.
  Buffer.prototype.indexOf = function (this: Buffer, v: unknown, from?: unknown) {
    const r = indexOf.call(this, v as number, from as number);
    searched += (r === -1 ? this.length : r + 1) - ((from as number) ?? 0);
    return r;
  } as typeof indexOf;
  let ev = NEED_MORE as number;
  try {
    for (let i = 0; i < bytes.length && ev === NEED_MORE; i++) {
      p.feed(bytes.subarray(i, i + 1));
      ev = p.next();
    }
  } finally {
    Buffer.prototype.indexOf = indexOf;
  }
  assert.equal(ev, HEAD);
  assert.equal(p.head.fields[3]!.length, 200_000);
  assert.ok(
    searched < 2 * bytes.length,
    `searched ${searched} bytes for a ${bytes.length}-byte head`,
  );
});

test("what the parser reuses from the last request (target, Host, its authority) is never another's", () => {
  const p = new H1Parser("request");
  const heads = (wire: string) => {
    p.feed(Buffer.from(wire, "latin1"));
    const out: { target: string; host: string; port: number }[] = [];
    for (let ev = p.next(); ev !== NEED_MORE; ev = p.next()) {
      if (ev === HEAD) out.push({ target: p.head.target, host: p.head.host, port: p.head.port });
    }
    return out;
  };
  // Same lengths, other bytes: other strings.
  assert.deepEqual(
    heads(
      "GET /aa HTTP/1.1\r\nHost: a.example:81\r\n\r\nGET /ab HTTP/1.1\r\nHost: b.example:82\r\n\r\nGET /ab HTTP/1.1\r\nHost: b.example:82\r\n\r\n",
    ),
    [
      { target: "/aa", host: "a.example", port: 81 },
      { target: "/ab", host: "b.example", port: 82 },
      { target: "/ab", host: "b.example", port: 82 },
    ],
  );
  // A Host value accepted as a Host (no port needed) is not a CONNECT authority (port needed).
  assert.deepEqual(heads("GET / HTTP/1.1\r\nHost: c.example\r\n\r\n"), [
    { target: "/", host: "c.example", port: -1 },
  ]);
  assert.throws(
    () => heads("CONNECT c.example HTTP/1.1\r\nHost: c.example\r\n\r\n"),
    (e: unknown) => e instanceof ParseError && e.status === 400,
  );
});

/** Events of `p` up to NEED_MORE, the heads it gave (as they were at their HEAD), the body. */
function events(p: H1Parser) {
  const evs: number[] = [];
  const heads: Head[] = [];
  const body: Buffer[] = [];
  for (let ev = p.next(); ev !== NEED_MORE; ev = p.next()) {
    evs.push(ev);
    if (ev === HEAD) heads.push(p.head);
    if (ev === BODY) body.push(p.chunk);
  }
  return { evs, heads, body: Buffer.concat(body).toString("latin1") };
}

test("the last response head is reused only for the same bytes, request method and limits, as a fresh head", () => {
  // A complete set of limits is shared by the parsers given it (as a pool's connections share
  // theirs), not copied: the same limits, by identity.
  const shared: ParserLimits = { ...defaultLimits };
  /** Parse one response (all of `text`) on a new parser; its head, events and body. */
  const parse = (text: string, method = "GET", limits = shared) => {
    const p = new H1Parser("response", limits);
    p.requestMethod = method;
    p.feed(Buffer.from(text, "latin1"));
    const { evs, heads, body } = events(p);
    assert.equal(evs[0], HEAD);
    return { head: heads[0]!, evs, body };
  };
  const a = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
  const first = parse(a);
  assert.deepEqual(first.head.fields, ["content-type", "text/plain", "content-length", "5"]);
  // The same bytes again: the same outcome, in a head of its own (changing one changes neither
  // the other nor the next).
  const expected = structuredClone(first.head);
  first.head.fields.push("x-first", "1");
  const again = parse(a);
  assert.notEqual(again.head, first.head);
  assert.deepEqual({ ...again.head }, { ...expected });
  assert.deepEqual(again.evs, [HEAD, BODY, END]);
  assert.equal(again.body, "hello");
  again.head.fields.push("x-added", "1");
  again.head.status = 500;
  const third = parse(a);
  assert.deepEqual(third.head.fields, ["content-type", "text/plain", "content-length", "5"]);
  assert.equal(third.head.status, 200);
  // The same bytes for a HEAD: no body (its length kept), then a GET's body again.
  const head = parse(a.slice(0, -5), "HEAD");
  assert.equal(head.head.framing, "none");
  assert.equal(head.head.contentLength, 5);
  assert.deepEqual(head.evs, [HEAD, END]);
  assert.equal(parse(a).head.framing, "length");
  // One byte different: its own value, its own framing.
  const b = parse(a.replace("Content-Length: 5", "Content-Length: 4").slice(0, -1));
  assert.equal(b.head.contentLength, 4);
  assert.equal(b.body, "hell");
  assert.equal(parse(a.replace("text/plain", "text/plaiN")).head.fields[1], "text/plaiN");
  // Under limits that refuse it, the head remembered from laxer ones is refused.
  parse(a);
  assert.throws(
    () => parse(a, "GET", { ...defaultLimits, maxHeaderCount: 1 }),
    (err: ParseError) => err.status === 502 && err.code === "header-count",
  );
  // A head that starts as the remembered one and goes on differently is parsed (and refused).
  parse(a);
  assert.throws(
    () => parse(`${a.slice(0, -7)}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`),
    (err: ParseError) => err.code === "cl-te",
  );
  // Chunked and close-delimited heads, remembered: their bodies framed as the first time.
  const chunked =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n";
  assert.equal(parse(chunked).body, "hello");
  const c2 = parse(chunked);
  assert.equal(c2.body, "hello");
  assert.deepEqual(c2.evs, [HEAD, BODY, BODY, END]);
  const closed = "HTTP/1.1 200 OK\r\nContent-Type: a/b\r\n\r\nto the end";
  parse(closed);
  const c3 = parse(closed);
  assert.equal(c3.head.framing, "close");
  assert.equal(c3.head.keepAlive, false);
  assert.equal(c3.body, "to the end");
  // Heads that differ every time (the memo rests after a run of misses), then the same again,
  // then differing again: each framed by its own bytes.
  for (let round = 0; round < 3; round++) {
    for (let i = 1; i <= 150; i++) {
      const text =
        i % 50 === 0 ? a : `HTTP/1.1 200 OK\r\nContent-Length: ${i}\r\n\r\n${"x".repeat(i)}`;
      const r = parse(text);
      assert.equal(r.body.length, i % 50 === 0 ? 5 : i);
      assert.deepEqual(r.evs.at(-1), END);
    }
    for (let i = 0; i < 100; i++) assert.equal(parse(a).body, "hello");
  }
  // On one connection: the same head twice in one read, then one split over two reads.
  const p = new H1Parser("response");
  p.feed(Buffer.from(`${a}${a}${a.slice(0, 20)}`, "latin1"));
  const one = events(p);
  assert.deepEqual(one.evs, [HEAD, BODY, END, HEAD, BODY, END]);
  assert.equal(one.body, "hellohello");
  assert.notEqual(one.heads[0], one.heads[1]);
  p.feed(Buffer.from(a.slice(20), "latin1"));
  const two = events(p);
  assert.deepEqual(two.evs, [HEAD, BODY, END]);
  assert.equal(two.body, "hello");
  assert.deepEqual(two.heads[0]!.fields, ["content-type", "text/plain", "content-length", "5"]);
});

test("the last request head is reused only for the same bytes and limits, as a fresh head with every property", () => {
  const shared: ParserLimits = { ...defaultLimits, maxBodySize: 100 };
  const parse = (text: string, limits = shared) => {
    const p = new H1Parser("request", limits);
    p.feed(Buffer.from(text, "latin1"));
    const { evs, heads, body } = events(p);
    assert.equal(evs[0], HEAD);
    return { head: heads[0]!, evs, body };
  };
  const requests = [
    "GET / HTTP/1.1\r\nHost: a.example:8080\r\nAccept: */*\r\n\r\n",
    "GET http://b.example/x?y HTTP/1.1\r\nHost: ignored\r\n\r\n",
    "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    "POST /up HTTP/1.0\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1\r\nz\r\n0\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: A.Example:8080\r\nAccept: */*\r\n\r\n",
  ];
  for (const text of requests) {
    const first = parse(text);
    const expected = structuredClone({ ...first.head });
    first.head.fields.push("x-first", "1");
    first.head.host = "changed";
    for (let i = 0; i < 3; i++) {
      const again = parse(text);
      assert.notEqual(again.head, first.head);
      assert.deepEqual({ ...again.head }, expected, text);
      assert.deepEqual(again.evs, parse(text).evs);
      again.head.fields.length = 0;
    }
  }
  // The same bytes under limits that refuse them are refused.
  const big = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n";
  parse(big);
  parse(big);
  assert.throws(
    () => parse(big, { ...defaultLimits, maxBodySize: 10 }),
    (err: ParseError) => err.status === 413,
  );
  // One byte different (the Host), a different head; a bad one after a good one is refused.
  const a = "GET / HTTP/1.1\r\nHost: one\r\n\r\n";
  assert.equal(parse(a).head.host, "one");
  assert.equal(parse(a).head.host, "one");
  assert.equal(parse(a.replace("one", "two")).head.host, "two");
  // Its first byte or its last one different: not the remembered head.
  parse(a);
  assert.equal(parse(`P${a.slice(1)}`).head.method, "PET");
  parse(a);
  const cut = new H1Parser("request", shared);
  cut.feed(Buffer.from(`${a.slice(0, -1)}X`, "latin1"));
  assert.deepEqual(events(cut).evs, [], "no LF ends the head: not a head yet");
  parse(a);
  assert.throws(
    () => parse(`${a.slice(0, -2)}Host: two\r\n\r\n`),
    (err: ParseError) => err.code === "duplicate-host",
  );
  assert.throws(
    () => parse(`${a.slice(0, -2)}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`),
    (err: ParseError) => err.code === "cl-te",
  );
  // Pipelined, the same request three times in one read: three requests.
  const p = new H1Parser("request", shared);
  p.feed(Buffer.from(a + a + a, "latin1"));
  const got = events(p);
  assert.deepEqual(got.evs, [HEAD, END, HEAD, END, HEAD, END]);
  assert.equal(new Set(got.heads).size, 3);
});
