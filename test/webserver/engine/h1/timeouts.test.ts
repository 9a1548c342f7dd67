/**
 * The engine's timeouts, each made short and checked by what happens (a 408, a close, the
 * Completion's error), never by how long it took.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { test } from "node:test";
import { HttpError, response } from "../../../../src/webserver/exchange.ts";
import type { Completion } from "../../../../src/webserver/module.ts";
import { exchange, header, startEngine } from "./helpers.ts";

const short = { headerTimeout: 150, bodyTimeout: 150, keepaliveTimeout: 150, sendTimeout: 150 };

test("header timeout: a partial head gets 408 and the connection is closed", async (t) => {
  const { port } = await startEngine(t, { options: short, handler: () => response(200, "x") });
  const x = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n");
  assert.equal(x.responses[0]?.status, 408);
  assert.equal(header(x.responses[0], "connection"), "close");
  assert.equal(x.closed, true);
});

test("header timeout with nothing sent: closed without a response", async (t) => {
  const { port } = await startEngine(t, { options: short, handler: () => response(200, "x") });
  const x = await exchange(port, []);
  assert.equal(x.raw.length, 0);
  assert.equal(x.closed, true);
});

test("keep-alive timeout: an idle connection is closed after its response", async (t) => {
  const { port } = await startEngine(t, { options: short, handler: () => response(200, "x") });
  const x = await exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(x.responses.length, 1);
  assert.equal(header(x.responses[0], "connection"), undefined);
  assert.equal(x.closed, true);
});

test("keepAlive 0 disables keep-alive", async (t) => {
  const { port } = await startEngine(t, {
    options: { ...short, keepaliveTimeout: 0 },
    handler: () => response(200, "x"),
  });
  const x = await exchange(
    port,
    "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
  );
  assert.equal(x.responses.length, 1);
  assert.equal(header(x.responses[0], "connection"), "close");
  assert.equal(x.closed, true);
});

test("body timeout: a stalled body fails its read with 408, answered, connection closed", async (t) => {
  const errors: unknown[] = [];
  const { port } = await startEngine(t, {
    options: short,
    handler: async (req) => {
      try {
        return response(200, await req.body.buffer());
      } catch (err) {
        errors.push(err);
        throw err;
      }
    },
  });
  const x = await exchange(port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345");
  assert.equal(x.responses[0]?.status, 408);
  assert.equal(x.closed, true);
  assert.ok(errors[0] instanceof HttpError && errors[0].status === 408);
});

test("send timeout: a client that stops reading is dropped, and the log hears why", async (t) => {
  const big = Buffer.alloc(32 * 1024 * 1024, 0x61);
  let completed!: (c: Completion) => void;
  const done = new Promise<Completion>((r) => {
    completed = r;
  });
  const { port } = await startEngine(t, {
    options: short,
    handler: () => response(200, big),
    complete: (_req, _res, c) => completed(c),
  });
  const client = connect(port, "127.0.0.1");
  t.after(() => client.destroy());
  client.on("error", () => {});
  client.pause(); // never reads
  client.write("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  const c = await done;
  assert.equal(c.error, "send timeout");
  assert.ok(c.bytesSent > 0);
});

test("a reader that is slow to take the body is not the client's timeout", async (t) => {
  const { port } = await startEngine(t, {
    // The client sends the whole body at once; only a machine stalled for 300 ms could make it
    // late. The reader pauses longer than that.
    options: { ...short, bodyTimeout: 300 },
    handler: async (req) => {
      const stream = req.body.stream();
      let n = 0;
      let first = true;
      for await (const chunk of stream) {
        n += (chunk as Buffer).length;
        if (first) {
          first = false;
          // Longer than the body timeout: the client sent everything, we are the slow ones.
          await new Promise((r) => setTimeout(r, 700));
        }
      }
      return response(200, `got ${n}`);
    },
  });
  const body = Buffer.alloc(300_000, 0x61);
  const x = await exchange(
    port,
    [`POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n`, body],
    {
      responses: 1,
    },
  );
  assert.equal(x.responses[0]?.status, 200);
  assert.equal(x.responses[0]?.body, "got 300000");
});

test("bodyMinRate: a body trickling in, each byte inside the body timeout, gets 408", async (t) => {
  const { port, reports } = await startEngine(t, {
    options: { bodyTimeout: 60_000, bodyMinRate: 1000, bodyMinRateGrace: 200 },
    handler: async (req) => response(200, await req.body.buffer()),
  });
  const client = connect(port, "127.0.0.1");
  t.after(() => client.destroy());
  let got = "";
  client.on("data", (d: Buffer) => {
    got += d.toString("latin1");
  });
  const closed = new Promise<void>((r) => client.once("close", () => r()));
  client.on("error", () => {});
  client.write("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n");
  // One byte every 20 ms: 50 B/s against a minimum of 1000 B/s. Bounded: 20 s at most.
  const trickle = setInterval(() => client.writable && client.write("x"), 20);
  const bound = setTimeout(() => client.destroy(), 20_000);
  await closed;
  clearInterval(trickle);
  clearTimeout(bound);
  assert.match(got, /^HTTP\/1\.1 408 /);
  assert.ok(
    reports.some((r) => r.startsWith("info: request body too slow")),
    reports.join("\n"),
  );
});
