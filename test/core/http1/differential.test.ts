/**
 * Differential fuzzing against llhttp, through a real node:http server on a loopback port: random
 * and mutated requests go to both our parser and node:http, and the test fails on any message
 * both accept with a different meaning (method, target, version, fields, body, trailers). One
 * side refusing what the other accepts is not a failure (we are stricter on purpose in places);
 * the counts are printed.
 *
 * Seeded and bounded. Defaults keep CI short (a few seconds); for a longer run:
 *   BRIGADE_FUZZ_SEED=123 BRIGADE_FUZZ_COUNT=200000 BRIGADE_FUZZ_SECONDS=300 npm test -- test/core/http1/differential.test.ts
 * A failure prints the seed, the case number and the raw bytes.
 *
 * Intended differences, not compared:
 * - after an Upgrade request or a CONNECT, llhttp stops parsing and hands the rest over; we
 *   frame the upgrade request's own body first (RFC 9110 §7.8: the request is answered first),
 *   so messages after one are not compared;
 * - llhttp knows a fixed list of methods, we take any token (node refuses the others).
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { test } from "node:test";
import { collect, type Message } from "./collect.ts";
import { corpusCases } from "./corpus.ts";

const seed = Number(process.env.BRIGADE_FUZZ_SEED ?? Date.now() % 1_000_000);
const count = Number(process.env.BRIGADE_FUZZ_COUNT ?? 1500);
const seconds = Number(process.env.BRIGADE_FUZZ_SECONDS ?? 4);
const concurrency = 24;

/** mulberry32: small, fast, seedable. */
function rng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, list: readonly T[]): T => list[Math.floor(r() * list.length)]!;
const int = (r: Rand, n: number) => Math.floor(r() * n);

const methods = [
  "GET",
  "POST",
  "PUT",
  "HEAD",
  "OPTIONS",
  "DELETE",
  "PATCH",
  "CONNECT",
  "get",
  "PROPFIND",
];
const targets = [
  "/",
  "/a/b?c=d",
  "*",
  "http://example.com/x",
  "example.com:443",
  "/%41",
  "//x",
  "/a b",
  "/\u00e9",
];
const versions = [
  "HTTP/1.1",
  "HTTP/1.1",
  "HTTP/1.1",
  "HTTP/1.0",
  "HTTP/1.2",
  "HTTP/2.0",
  "http/1.1",
];
const names = [
  "Host",
  "Content-Length",
  "Transfer-Encoding",
  "Connection",
  "X-A",
  "Upgrade",
  "Expect",
  "Cookie",
  "Trailer",
  "Content-Type",
  "Transfer_Encoding",
  "TE",
];
const values: Record<string, string[]> = {
  Host: ["a", "example.com:8080", "", "[::1]", "a b", "a,b"],
  "Content-Length": [
    "0",
    "3",
    "5",
    "10",
    "5, 5",
    "5,6",
    "-1",
    "0x5",
    " 7 ",
    "00003",
    "99999999999999999999",
  ],
  "Transfer-Encoding": [
    "chunked",
    "Chunked",
    "gzip, chunked",
    "chunked, gzip",
    "xchunked",
    "chunked;a=b",
    " chunked",
    "identity",
    '"chunked"',
    ",chunked",
  ],
  Connection: ["close", "keep-alive", "upgrade", "Upgrade, keep-alive", "foo"],
  Upgrade: ["websocket", "h2c"],
  Expect: ["100-continue", "foo"],
};
const interesting = [
  0x20, 0x09, 0x0d, 0x0a, 0x00, 0x3a, 0x2c, 0x3b, 0x22, 0x5c, 0x7f, 0x80, 0xff, 0x0b, 0x61, 0x30,
  0x46, 0x0c,
];

function chunkedBody(r: Rand, body: string): string {
  let out = "";
  let at = 0;
  while (at < body.length) {
    const n = 1 + int(r, body.length - at);
    const size = n.toString(16);
    const ext = r() < 0.2 ? pick(r, [";a=b", ';q="x y"', ";z", "; a=b", ';a="\\""']) : "";
    out += `${r() < 0.1 ? "0" : ""}${r() < 0.5 ? size : size.toUpperCase()}${ext}\r\n${body.slice(at, at + n)}\r\n`;
    at += n;
  }
  out += "0\r\n";
  if (r() < 0.3) out += "X-Trailer: t\r\n";
  return `${out}\r\n`;
}

function message(r: Rand): string {
  // Mostly well-formed, so that many cases get past the request line and test framing.
  const method = r() < 0.5 ? pick(r, ["GET", "POST"]) : pick(r, methods);
  const target = r() < 0.6 ? pick(r, ["/", "/a/b?c=d"]) : pick(r, targets);
  const version = r() < 0.7 ? "HTTP/1.1" : pick(r, versions);
  let line = `${method} ${target} ${version}\r\n`;
  const headers: string[] = [];
  const body = "abcdefghijklmnop".slice(0, int(r, 17));
  const framing = r();
  if (r() < 0.9) headers.push(`Host: ${r() < 0.6 ? "a" : pick(r, values.Host!)}`);
  if (framing < 0.35) headers.push(`Content-Length: ${body.length}`);
  else if (framing < 0.7) headers.push("Transfer-Encoding: chunked");
  const extra = int(r, 4);
  for (let k = 0; k < extra; k++) {
    const n = pick(r, names);
    headers.push(
      `${r() < 0.2 ? n.toLowerCase() : n}: ${pick(r, values[n] ?? ["v", "1", "a=b; c", ""])}`,
    );
  }
  for (let k = headers.length - 1; k > 0; k--) {
    const j = int(r, k + 1);
    [headers[k], headers[j]] = [headers[j]!, headers[k]!];
  }
  line += headers.map((h) => `${h}\r\n`).join("");
  line += "\r\n";
  if (framing < 0.35) line += body;
  else if (framing < 0.7) line += chunkedBody(r, body);
  if (r() < 0.2) line += "\r\n";
  return line;
}

function mutate(r: Rand, data: Buffer): Buffer {
  const bytes = [...data];
  const n = 1 + int(r, 2);
  for (let k = 0; k < n && bytes.length > 0; k++) {
    const at = int(r, bytes.length);
    switch (int(r, 7)) {
      case 0:
        bytes.splice(at, 0, pick(r, interesting));
        break;
      case 1:
        bytes.splice(at, 1);
        break;
      case 2:
        bytes[at] = pick(r, interesting);
        break;
      case 3: {
        // drop the CR of a CRLF, or the LF
        const crlf = bytes.findIndex((b, i) => i >= at && b === 13 && bytes[i + 1] === 10);
        if (crlf >= 0) bytes.splice(crlf + int(r, 2), 1);
        break;
      }
      case 4: {
        // duplicate a line
        const start = bytes.lastIndexOf(10, at) + 1;
        const end = bytes.indexOf(10, at);
        if (end > start) bytes.splice(end + 1, 0, ...bytes.slice(start, end + 1));
        break;
      }
      case 5:
        bytes.length = at;
        break;
      default: {
        const c = bytes[at]!;
        if (c >= 0x61 && c <= 0x7a) bytes[at] = c - 0x20;
        else if (c >= 0x30 && c <= 0x39) bytes[at] = 0x30 + int(r, 10);
      }
    }
  }
  return Buffer.from(bytes);
}

/** What llhttp (node:http) made of one connection's bytes. */
interface NodeOutcome {
  /** undefined: a message whose body did not complete. */
  messages: (Message | undefined)[];
  /** Upgrade or CONNECT: node stopped parsing after the last message. */
  stopped: boolean;
}

function nodeMessage(req: IncomingMessage, body: Buffer): Message {
  const pairs = (raw: string[]): [string, string][] => {
    const out: [string, string][] = [];
    for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
    return out;
  };
  return {
    method: req.method ?? "",
    target: req.url ?? "",
    status: 0,
    version: req.httpVersion,
    headers: pairs(req.rawHeaders),
    body: body.toString("latin1"),
    trailers: pairs(req.rawTrailers),
    framing: "",
    keepAlive: true,
    host: "",
    port: -1,
    form: "",
    reason: "",
    upgrade: "",
    expectContinue: false,
  };
}

function comparable(m: Message) {
  return {
    method: m.method,
    target: m.target,
    version: m.version,
    headers: m.headers,
    body: m.body,
    trailers: m.trailers,
  };
}

test(`differential fuzz against llhttp (seed ${seed}, up to ${count} cases / ${seconds}s)`, async (t) => {
  const byPort = new Map<number, NodeOutcome>();
  const outcomeOf = (socket: Socket): NodeOutcome => {
    const port = socket.remotePort!;
    let o = byPort.get(port);
    if (!o) {
      o = { messages: [], stopped: false };
      byPort.set(port, o);
    }
    return o;
  };
  const server = createServer({ maxHeaderSize: 32768, keepAliveTimeout: 10_000 }, (req, res) => {
    const o = outcomeOf(req.socket);
    const chunks: Buffer[] = [];
    // In order of arrival; the body (and completeness) is filled in when it has been read.
    const slot = o.messages.length;
    o.messages.push(undefined);
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      o.messages[slot] = nodeMessage(req, Buffer.concat(chunks));
      res.end();
    });
    req.on("error", () => {});
  });
  const stop = (req: IncomingMessage, socket: Socket) => {
    const o = outcomeOf(socket);
    o.messages.push(nodeMessage(req, Buffer.alloc(0)));
    o.stopped = true;
    socket.destroy();
  };
  // node answers an unknown expectation 417 itself; record the message so indexes stay aligned.
  server.on("checkExpectation", (req, res) => {
    const o = outcomeOf(req.socket);
    const slot = o.messages.length;
    o.messages.push(undefined);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      o.messages[slot] = nodeMessage(req, Buffer.concat(chunks));
      res.writeHead(417).end();
    });
  });
  server.on("upgrade", stop);
  server.on("connect", stop);
  server.on("clientError", (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;

  function sendToNode(data: Buffer): Promise<NodeOutcome> {
    return new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1");
      let local = 0;
      const timer = setTimeout(() => socket.destroy(), 3000);
      socket.on("connect", () => {
        local = socket.localPort!;
        socket.end(data);
      });
      socket.on("data", () => {});
      socket.on("error", () => {});
      socket.on("close", () => {
        clearTimeout(timer);
        // The server may still be finishing the last message's 'end' callback: one turn later.
        setImmediate(() => {
          const o = byPort.get(local) ?? { messages: [], stopped: false };
          byPort.delete(local);
          const done = o.messages.indexOf(undefined);
          if (done !== -1) {
            o.messages.length = done;
            o.stopped = false;
          }
          resolve(o);
        });
      });
    });
  }

  const r = rng(seed);
  const seeds = corpusCases()
    .filter((c) => c.kind === "request" && !c.expect.limits)
    .map((c) => c.raw);
  const deadline = Date.now() + seconds * 1000;
  const stats = { cases: 0, bothAccept: 0, onlyOurs: 0, onlyNode: 0, compared: 0 };
  const failures: string[] = [];

  function nextCase(): Buffer {
    const k = stats.cases;
    if (k < seeds.length) return seeds[k]!;
    const base =
      r() < 0.3
        ? Buffer.from(pick(r, seeds))
        : Buffer.from(Array.from({ length: 1 + int(r, 3) }, () => message(r)).join(""), "latin1");
    return r() < 0.6 ? mutate(r, base) : base;
  }

  async function one(data: Buffer, index: number): Promise<void> {
    const cuts = Array.from({ length: int(r, 4) }, () => int(r, data.length)).sort((a, b) => a - b);
    const ours = collect(data, { limits: { maxHeaderBytes: 32768, maxHeaderCount: 2000 } });
    const oursCut = collect(data, {
      limits: { maxHeaderBytes: 32768, maxHeaderCount: 2000 },
      cuts,
    });
    if (JSON.stringify(ours) !== JSON.stringify(oursCut)) {
      failures.push(
        `case ${index}: our outcome depends on how the bytes are cut (${cuts}): ${JSON.stringify(data.toString("latin1"))}`,
      );
      return;
    }
    const theirs = await sendToNode(data);
    let n = Math.min(ours.messages.length, theirs.messages.length);
    // Compare up to and including the first upgrade/CONNECT message: see the module doc.
    for (let i = 0; i < n; i++) {
      const m = ours.messages[i]!;
      if (m.method === "CONNECT" || m.upgrade !== "") {
        n = i + 1;
        break;
      }
    }
    if (theirs.stopped) n = Math.min(n, theirs.messages.length);
    for (let i = 0; i < n; i++) {
      const a = comparable(ours.messages[i]!);
      const b = comparable(theirs.messages[i]!);
      const upgradeHere = ours.messages[i]!.upgrade !== "" || a.method === "CONNECT";
      if (upgradeHere || (theirs.stopped && i === theirs.messages.length - 1)) {
        // llhttp does not frame a body after an upgrade head: compare heads only.
        a.body = "";
        b.body = "";
        a.trailers = [];
        b.trailers = [];
      }
      stats.compared++;
      try {
        assert.deepEqual(a, b);
      } catch {
        failures.push(
          `case ${index}, message ${i}: different meaning\n  raw:  ${JSON.stringify(data.toString("latin1"))}\n  ours: ${JSON.stringify(a)}\n  node: ${JSON.stringify(b)}`,
        );
        return;
      }
    }
    if (ours.messages.length === theirs.messages.length) stats.bothAccept++;
    else if (ours.messages.length > theirs.messages.length) stats.onlyOurs++;
    else stats.onlyNode++;
    if (process.env.BRIGADE_FUZZ_VERBOSE && ours.messages.length !== theirs.messages.length) {
      const who = ours.messages.length > theirs.messages.length ? "only ours" : "only node";
      t.diagnostic(
        `${who} (${ours.error?.code ?? "-"}): ${JSON.stringify(data.toString("latin1"))}`,
      );
    }
  }

  const running = new Set<Promise<void>>();
  while (stats.cases < count && Date.now() < deadline && failures.length === 0) {
    const data = nextCase();
    const p = one(data, stats.cases).finally(() => running.delete(p));
    running.add(p);
    stats.cases++;
    if (running.size >= concurrency) await Promise.race(running);
  }
  await Promise.all(running);
  t.diagnostic(`seed ${seed}: ${JSON.stringify(stats)}`);
  assert.deepEqual(failures, [], `seed ${seed} (rerun with BRIGADE_FUZZ_SEED=${seed})`);
  assert.ok(stats.cases >= Math.min(count, 200), `only ${stats.cases} cases ran`);
});
