/**
 * maxConns with the queue: a sync app worker (maxConns 1) is given one request at a time and
 * the rest wait here, first come first served, bounded in length and in time.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { group, startPeers, text, until } from "./helpers.ts";

/** A peer that holds every request until `next()` answers the oldest one. */
function serialApp() {
  const pending: { end(b: string): void; url: string }[] = [];
  return {
    pending,
    handler: (req: { url?: string }, res: { end(b: string): void }) => {
      pending.push({ end: (b) => res.end(b), url: req.url ?? "" });
    },
    next() {
      const r = pending.shift();
      r?.end(`done ${r.url}`);
    },
  };
}

test("maxConns 1 with a queue: one request at a time reaches the worker, in arrival order", async (t) => {
  const app = serialApp();
  const [peer] = await startPeers(t, 1, app.handler);
  const g = await group(t, {
    peers: [{ address: peer!.address, maxConns: 1 }],
    queue: { size: 10, timeout: "30s" },
  });
  const results = [1, 2, 3, 4].map((i) =>
    g.request({ method: "GET", path: `/${i}`, headers: {} }).then((r) => text(r.body)),
  );
  await until(() => app.pending.length === 1, 5000, "the first request at the worker");
  assert.equal(g.snapshot().queue.waiting, 3);
  for (let served = 0; served < 4; served++) {
    await until(() => app.pending.length === 1, 5000, `request ${served + 1} at the worker`);
    assert.equal(peer!.inFlight, 1);
    app.next();
  }
  assert.deepEqual(await Promise.all(results), ["done /1", "done /2", "done /3", "done /4"]);
  assert.equal(peer!.maxInFlight, 1, "never two at once in the worker");
});

test("a full queue answers 503 at once, a queue timeout 503 later, an abort leaves the queue", async (t) => {
  const app = serialApp();
  const [peer] = await startPeers(t, 1, app.handler);
  const g = await group(t, {
    peers: [{ address: peer!.address, maxConns: 1 }],
    queue: { size: 1, timeout: "100ms" },
  });
  const first = g.request({ method: "GET", path: "/a", headers: {} });
  await until(() => app.pending.length === 1);
  const waiting = g.request({ method: "GET", path: "/b", headers: {} });
  await assert.rejects(
    g.request({ method: "GET", path: "/c", headers: {} }),
    (e: Error & { kind?: string; status?: number }) => {
      assert.equal(e.kind, "busy");
      assert.equal(e.status, 503);
      assert.match(e.message, /queue is full/);
      return true;
    },
  );
  await assert.rejects(waiting, /queue timeout/);
  const ac = new AbortController();
  const aborted = g.request({ method: "GET", path: "/d", headers: {}, signal: ac.signal });
  ac.abort();
  await assert.rejects(aborted, (e: Error & { kind?: string }) => e.kind === "aborted");
  assert.equal(g.snapshot().queue.waiting, 0);
  app.next();
  assert.equal(await text((await first).body), "done /a");
});

test("without a queue, busy primaries spill over to a backup, then 503", async (t) => {
  const app = serialApp();
  const peers = await startPeers(t, 2, app.handler);
  const g = await group(t, {
    peers: [
      { address: peers[0]!.address, maxConns: 1 },
      { address: peers[1]!.address, backup: true, maxConns: 1 },
    ],
  });
  const a = g.request({ method: "GET", path: "/a", headers: {} });
  await until(() => peers[0]!.inFlight === 1);
  const b = g.request({ method: "GET", path: "/b", headers: {} });
  await until(() => peers[1]!.inFlight === 1);
  await assert.rejects(
    g.request({ method: "GET", path: "/c", headers: {} }),
    (e: Error & { status?: number }) => e.status === 503,
  );
  app.next();
  app.next();
  assert.deepEqual(await Promise.all([a, b].map(async (r) => text((await r).body))), [
    "done /a",
    "done /b",
  ]);
});
