/**
 * Slow-client defence: the per-address connection cap on a real two-worker `brigade web` (a
 * slowloris from one address, other clients served meanwhile), and the minimum request-body
 * rate in the engine (a body trickling in within the body timeout is cut with 408; a reader
 * that is slow itself does not count against the client).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { StreamBody } from "../../src/webserver/engine/request.ts";
import { modules } from "../../src/webserver/modules.ts";
import { waitFor } from "../helpers/process.ts";
import { startEngine, tempDir } from "./helpers.ts";
import { probe } from "./probe.ts";
import { okLocation, passThrough, request, startWeb, stopWeb } from "./webHarness.ts";

/** A slowloris connection: a request head begun and never finished. */
function slowConnection(port: number, from: string) {
  const s = net.connect({ host: "127.0.0.1", port, localAddress: from });
  const state = { open: true, socket: s };
  s.on("connect", () => s.write("GET / HTTP/1.1\r\nHost: t\r\nX-a: "));
  s.on("error", () => {});
  s.on("close", () => {
    state.open = false;
  });
  return state;
}

test("a slowloris from one address is capped across workers; other clients are served", async (t) => {
  const web = await startWeb(t, {
    workers: 2,
    maxConnectionsPerAddress: 20,
    maxConnectionsExempt: ["127.0.0.9"],
    clientHeaderTimeout: "60s",
    servers: [{ listen: ["127.0.0.1:0"], ...passThrough, locations: [okLocation] }],
  });
  const p = web.port;
  const slow = Array.from({ length: 60 }, () => slowConnection(p, "127.0.0.2"));
  t.after(() => {
    for (const c of slow) c.socket.destroy();
  });
  // The cap closes all but 20 of them, whichever worker each landed on.
  await waitFor(() => slow.filter((c) => c.open).length === 20, "40 slow connections closed");
  // While the 20 are still open, everyone else is served, and quickly turned away is only the
  // slow address.
  const others = await Promise.all(
    Array.from({ length: 30 }, (_, i) => request(p, "/x", { from: `127.0.0.${3 + (i % 5)}` })),
  );
  assert.deepEqual(new Set(others.map((r) => r.status)), new Set([200]));
  assert.equal(slow.filter((c) => c.open).length, 20, "the slow ones are still there");
  // One more from the slow address does not stay open (the cap is on connections held open: a
  // fast request may be answered in the moment before the shared count's answer).
  const extra = slowConnection(p, "127.0.0.2");
  t.after(() => extra.socket.destroy());
  await waitFor(() => !extra.open, "the 21st slow connection to be closed");
  // An exempt address is not counted.
  const exempt = Array.from({ length: 25 }, () => slowConnection(p, "127.0.0.9"));
  t.after(() => {
    for (const c of exempt) c.socket.destroy();
  });
  assert.equal((await request(p, "/x", { from: "127.0.0.9" })).status, 200);
  assert.equal(exempt.filter((c) => c.open).length, 25);
  // Closing slow connections gives their places back.
  for (const c of slow.filter((x) => x.open).slice(0, 5)) c.socket.destroy();
  await waitFor(
    async () =>
      (await request(p, "/x", { from: "127.0.0.2" }).catch(() => undefined))?.status === 200,
    "the slow address to get a connection again",
  );
  assert.ok(web.lines.some((l) => /too many connections from one address/.test(l)));
  assert.equal(await stopWeb(web), 0);
});

test("a request body slower than clientBodyMinRate gets 408; a fast one passes", async (t) => {
  const dir = tempDir(t);
  const s = await startEngine(
    t,
    {
      clientBodyMinRate: 1000,
      clientBodyMinRateGrace: "500ms",
      clientBodyTimeout: "30s",
      servers: [{ listen: ["127.0.0.1:0"] }],
    },
    { modules: [...modules, probe(dir)], baseDir: dir },
  );
  // 100 bytes every 250 ms is 400 B/s: within the body timeout, under the minimum rate.
  const trickle = await new Promise<string>((resolve, reject) => {
    const c = net.connect({ host: "127.0.0.1", port: s.port });
    let got = "";
    c.setEncoding("utf8");
    c.on("data", (d: string) => {
      got += d;
    });
    c.on("close", () => resolve(got));
    c.on("error", reject);
    c.write("POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    const timer = setInterval(() => c.writable && c.write("x".repeat(100)), 250);
    c.on("close", () => clearInterval(timer));
    setTimeout(() => c.destroy(new Error("not cut within 15 s")), 15_000).unref();
  });
  assert.match(trickle, /^HTTP\/1\.1 408 /);
  const fast = await request(s.port, "/body", { method: "POST", body: "y".repeat(50_000) });
  assert.equal(fast.status, 200);
  assert.match(fast.body, /^50000:/);
});

test("the body rate counts only time spent waiting on the client", () => {
  const source = new PassThrough();
  const body = new StreamBody(source, 10_000, false, () => 0);
  const out = body.stream();
  // Nobody reads `out`: what arrived waits in our buffers, so the reader is behind, not the client.
  source.write(Buffer.alloc(64 * 1024));
  assert.equal(body.tooSlow(0, 1000, 1000), false);
  assert.equal(body.tooSlow(60_000, 1000, 1000), false, "a minute of our own slowness");
  out.resume();
  return new Promise<void>((resolve) => {
    setImmediate(() => {
      // Now drained: time waiting on the client counts. 64 KiB at 1000 B/s and the 1 s grace
      // buy 66.5 s.
      assert.equal(body.tooSlow(61_000, 1000, 1000), false);
      assert.equal(body.tooSlow(120_000, 1000, 1000), false);
      assert.equal(body.tooSlow(130_000, 1000, 1000), true);
      resolve();
    });
  });
});
