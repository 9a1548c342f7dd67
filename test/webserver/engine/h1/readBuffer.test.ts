/**
 * The engine reads every plain connection into one buffer of the worker's (connection.ts,
 * `readInto`): nothing that outlives a read may still point into it. These tests make the
 * buffer be overwritten while earlier bytes are still in use (request bodies held by a slow
 * upstream or by request buffering, pipelined heads split across reads, many connections at
 * once) and check that every byte arrives where it was sent, unchanged.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import test, { type TestContext } from "node:test";
import { READ_BUFFER, readView } from "../../../../src/core/http1/readBuffer.ts";
import { startEngine } from "../../helpers.ts";

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** An upstream answering each request with the SHA-256 of its body, after `delayMs`. */
async function hashingUpstream(t: TestContext, delayMs: number): Promise<number> {
  const server = http.createServer((req, res) => {
    const h = createHash("sha256");
    let n = 0;
    req.on("data", (c: Buffer) => {
      h.update(c);
      n += c.length;
      // Slow reading: the front holds what it has not yet written to us.
      if (delayMs > 0) {
        req.pause();
        setTimeout(() => req.resume(), delayMs);
      }
    });
    req.on("end", () => {
      res.setHeader("content-type", "text/plain");
      res.end(`${h.digest("hex")} ${n}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

/** Send `body` as a POST over a raw socket in pieces of `piece` bytes; resolve with the response. */
function post(port: number, path: string, body: Buffer, piece: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    let got = "";
    s.setEncoding("latin1");
    s.on("data", (c: string) => {
      got += c;
    });
    s.on("error", reject);
    s.on("end", () => resolve(got));
    s.on("connect", async () => {
      s.write(
        `POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
      );
      for (let at = 0; at < body.length; at += piece) {
        s.write(body.subarray(at, at + piece));
        if ((at / piece) % 8 === 0) await new Promise((r) => setImmediate(r));
      }
    });
  });
}

for (const buffering of [true, false]) {
  test(`proxied request bodies arrive intact from many connections at once (request buffering ${buffering ? "on" : "off"})`, async (t) => {
    const up = await hashingUpstream(t, buffering ? 0 : 2);
    const s = await startEngine(t, {
      engine: "brigade",
      listen: ["127.0.0.1:0"],
      upstreams: { app: { peers: [`127.0.0.1:${up}`] } },
      servers: [{ locations: [{ match: "/", proxy: "app", proxyRequestBuffering: buffering }] }],
    });
    const bodies = Array.from({ length: 12 }, (_, i) => randomBytes(150_000 + i * 7_919));
    const answers = await Promise.all(
      bodies.map((b, i) => post(s.port, `/b${i}`, b, 1_000 + i * 337)),
    );
    answers.forEach((a, i) => {
      assert.match(a, /^HTTP\/1\.1 200 /, a.slice(0, 200));
      const text = a.slice(a.indexOf("\r\n\r\n") + 4);
      assert.equal(text, `${sha(bodies[i]!)} ${bodies[i]!.length}`, `body ${i}`);
    });
  });
}

test("pipelined requests split across reads, with bodies, are answered in order and intact", async (t) => {
  const up = await hashingUpstream(t, 0);
  const s = await startEngine(t, {
    engine: "brigade",
    listen: ["127.0.0.1:0"],
    upstreams: { app: { peers: [`127.0.0.1:${up}`] } },
    servers: [{ locations: [{ match: "/", proxy: "app" }] }],
  });
  const bodies = Array.from({ length: 20 }, (_, i) => randomBytes(100 + i * 997));
  let wire = Buffer.alloc(0);
  bodies.forEach((b, i) => {
    const last = i === bodies.length - 1;
    const head = `POST /p${i} HTTP/1.1\r\nHost: t\r\nContent-Length: ${b.length}\r\n${last ? "Connection: close\r\n" : ""}\r\n`;
    wire = Buffer.concat([wire, Buffer.from(head, "latin1"), b]);
  });
  const got = await new Promise<string>((resolve, reject) => {
    const c = net.connect(s.port, "127.0.0.1");
    let text = "";
    c.setEncoding("latin1");
    c.on("data", (d: string) => {
      text += d;
    });
    c.on("end", () => resolve(text));
    c.on("error", reject);
    c.on("connect", async () => {
      // Pieces that cut heads and bodies anywhere, each its own read on the server.
      for (let at = 0; at < wire.length; ) {
        const n = 1 + ((at * 7919) % 1500);
        c.write(wire.subarray(at, at + n));
        at += n;
        await new Promise((r) => setTimeout(r, 1));
      }
    });
  });
  const answers = got.split(/HTTP\/1\.1 /).filter((x) => x !== "");
  assert.equal(answers.length, bodies.length);
  answers.forEach((a, i) => {
    assert.match(a, /^200 /);
    assert.equal(a.slice(a.indexOf("\r\n\r\n") + 4), `${sha(bodies[i]!)} ${bodies[i]!.length}`);
  });
});

test("readView: a view of the read buffer of exactly the length read, for any length", () => {
  for (const n of [0, 1, 41, 150, 41, 2048, 2049, 65536, 150]) {
    const v = readView(n);
    assert.equal(v.length, n);
    assert.equal(v.buffer, READ_BUFFER.buffer);
    assert.equal(v.byteOffset, READ_BUFFER.byteOffset);
    READ_BUFFER.fill(n % 251, 0, n);
    if (n > 0) assert.equal(v[n - 1], n % 251);
  }
});
