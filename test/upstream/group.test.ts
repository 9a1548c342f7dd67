/**
 * What decides whether a peer takes a request: passive health (maxFails within failTimeout),
 * active health checks, backups, slow start, marking down, draining and removing at runtime,
 * and unix-socket peers. Real in-process node:http peers; clocks injected where a window of
 * time is what is tested, so that nothing depends on how fast the machine is.
 */
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createLogger } from "../../src/core/logger.ts";
import type { PeerStateMessage } from "../../src/upstream/index.ts";
import { closeServer, get, group, manualClock, startPeers, tally, text, until } from "./helpers.ts";

function recordPeerEvents(t: { after(fn: () => void): void }): PeerStateMessage[] {
  const events: PeerStateMessage[] = [];
  const fn = (m: unknown) => events.push(m as PeerStateMessage);
  subscribe("brigade:upstream:peer", fn);
  t.after(() => unsubscribe("brigade:upstream:peer", fn));
  return events;
}

test("passive health: maxFails failures take a peer out for failTimeout, one probe brings it back", async (t) => {
  const broken = { on: true };
  const peers = await startPeers(t, 2, (_req, res, _p, i) => {
    if (i === 0 && broken.on) {
      res.statusCode = 502;
      res.end("bad gateway");
    } else res.end(`peer${i}`);
  });
  const clock = manualClock();
  const events = recordPeerEvents(t);
  const dir = mkdtempSync(join(tmpdir(), "brigade-upstream-log-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const logFile = join(dir, "error.log");
  const logger = createLogger({ file: logFile, format: "json", level: "info" });
  const g = await group(
    t,
    {
      peers: peers.map((p) => p.address),
      maxFails: 2,
      failTimeout: "10s",
      retry: { on: ["error", "timeout", "http502"] },
    },
    { clock: clock.now, logger },
    "passive",
  );
  // Every request succeeds: the 502s are retried on peer1.
  for (let i = 0; i < 6; i++) assert.equal((await get(g)).body, "peer1");
  assert.equal(peers[0]!.hits, 2, "two failures, then out");
  const failed = events.filter((e) => e.group === "passive" && e.state === "failed");
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.peer, peers[0]!.address);
  assert.equal(g.snapshot().peers[0]!.state, "failed");

  broken.on = false;
  for (let i = 0; i < 4; i++) await get(g);
  assert.equal(peers[0]!.hits, 2, "still out within failTimeout");
  clock.advance(10_001);
  await tally(g, 4);
  assert.ok(peers[0]!.hits > 2, "probed after failTimeout");
  assert.ok(
    events.some((e) => e.group === "passive" && e.state === "up" && e.previous === "failed"),
  );
  assert.deepEqual(await tally(g, 4), { peer0: 2, peer1: 2 }, "fully back: round-robin again");
  const lines = readFileSync(logFile, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const disabled = lines.find((l) => l.msg === "upstream peer temporarily disabled for 10s");
  assert.ok(disabled, JSON.stringify(lines));
  assert.equal(disabled.level, "warn");
  assert.equal(disabled.upstream, "passive");
  assert.equal(disabled.peer, peers[0]!.address);
  assert.ok(lines.some((l) => l.msg === "upstream peer up" && l.previous === "failed"));
});

test("a single peer is never taken out by passive health (nginx), an all-failed group is retried", async (t) => {
  const peers = await startPeers(t, 1, (_req, res) => {
    res.statusCode = 502;
    res.end();
  });
  const g = await group(t, { peers: [peers[0]!.address], maxFails: 1, retry: { on: ["http502"] } });
  for (let i = 0; i < 3; i++) assert.equal((await get(g)).status, 502, "the upstream's own 502");
  assert.equal(peers[0]!.hits, 3);
});

test("active health checks take a failing peer out and bring it back", async (t) => {
  const sick = { on: false };
  const peers = await startPeers(t, 2, (req, res, _p, i) => {
    if (req.url === "/healthz") {
      res.statusCode = i === 1 && sick.on ? 503 : 200;
      res.end(i === 1 && sick.on ? "sick" : "ok");
    } else res.end(`peer${i}`);
  });
  const events = recordPeerEvents(t);
  const g = await group(
    t,
    {
      peers: peers.map((p) => p.address),
      healthCheck: { path: "/healthz", interval: "30ms", fails: 2, passes: 2, timeout: "1s" },
    },
    {},
    "active",
  );
  assert.deepEqual(await tally(g, 4), { peer0: 2, peer1: 2 });
  sick.on = true;
  await until(() => g.snapshot().peers[1]!.state === "unhealthy", 5000, "peer1 unhealthy");
  assert.deepEqual(await tally(g, 4), { peer0: 4 });
  sick.on = false;
  await until(() => g.snapshot().peers[1]!.state === "up", 5000, "peer1 healthy again");
  assert.deepEqual(await tally(g, 4), { peer0: 2, peer1: 2 });
  const mine = events.filter((e) => e.group === "active").map((e) => e.state);
  assert.deepEqual(mine, ["unhealthy", "up"]);
});

test("active checks: expected status and body, and a dead peer", async (t) => {
  const peers = await startPeers(t, 2, (req, res, _p, i) => {
    if (req.url === "/status") res.end(i === 0 ? "status: ok" : "status: degraded");
    else res.end(`peer${i}`);
  });
  const g = await group(t, {
    peers: [...peers.map((p) => p.address), "127.0.0.1:1"],
    healthCheck: { path: "/status", expectBody: "ok$", expectStatus: [200], interval: "1h" },
  });
  await until(() => g.snapshot().peers.filter((p) => p.state === "unhealthy").length === 2);
  assert.deepEqual(
    g.snapshot().peers.map((p) => p.state),
    ["up", "unhealthy", "unhealthy"],
  );
  assert.deepEqual(await tally(g, 3), { peer0: 3 });
});

test("a backup takes requests only while every primary is down", async (t) => {
  const peers = await startPeers(t, 3);
  const g = await group(t, {
    peers: [peers[0]!.address, peers[1]!.address, { address: peers[2]!.address, backup: true }],
  });
  assert.deepEqual(await tally(g, 10), { peer0: 5, peer1: 5 });
  g.setDown(peers[0]!.address, true);
  assert.deepEqual(await tally(g, 4), { peer1: 4 }, "one primary left: still no backup");
  g.setDown(peers[1]!.address, true);
  assert.deepEqual(await tally(g, 4), { peer2: 4 }, "all primaries down: the backup");
  g.setDown(peers[0]!.address, false);
  assert.deepEqual(await tally(g, 4), { peer0: 4 }, "a primary back: the backup rests");

  // Primaries that fail (refused) fall over to the backup within the same request.
  const b = await startPeers(t, 1);
  const g2 = await group(t, {
    peers: ["127.0.0.1:1", "127.0.0.1:2", { address: b[0]!.address, backup: true }],
  });
  const r = await get(g2);
  assert.equal(r.body, "peer0");
  assert.equal(r.attempts.length, 3);
});

test("slow start ramps a returning peer's share up over slowStart", async (t) => {
  const peers = await startPeers(t, 2);
  const clock = manualClock();
  const g = await group(
    t,
    { peers: [peers[0]!.address, { address: peers[1]!.address, slowStart: "10s" }] },
    { clock: clock.now },
  );
  g.setDown(peers[1]!.address, true);
  g.setDown(peers[1]!.address, false);
  const start = await tally(g, 100);
  assert.ok((start.peer1 ?? 0) <= 3, `just back: ${start.peer1 ?? 0}/100`);
  clock.advance(5000);
  const half = await tally(g, 90);
  assert.ok(
    (half.peer1 ?? 0) >= 20 && (half.peer1 ?? 0) <= 40,
    `halfway: ${half.peer1}/90 (1/3 expected)`,
  );
  clock.advance(5000);
  const full = await tally(g, 100);
  assert.ok(Math.abs((full.peer1 ?? 0) - 50) <= 2, `ramped: ${full.peer1}/100`);
});

test("drain and remove at runtime: no new requests, open ones finish", async (t) => {
  const held: { end(b: string): void }[] = [];
  const peers = await startPeers(t, 2, (req, res, _p, i) => {
    if (req.url === "/hold") {
      res.flushHeaders();
      held.push(res);
    } else res.end(`peer${i}`);
  });
  const events = recordPeerEvents(t);
  const g = await group(t, { peers: peers.map((p) => p.address) }, {}, "runtime");
  const open = await g.request({ method: "GET", path: "/hold", headers: {} });
  assert.equal(open.peer, peers[0]!.address);
  let removed = false;
  const removal = g.removePeer(peers[0]!.address).then(() => {
    removed = true;
  });
  assert.deepEqual(await tally(g, 4), { peer1: 4 });
  assert.equal(removed, false, "waits for the open request");
  assert.equal(g.snapshot().peers[0]!.state, "draining");
  held[0]!.end("done");
  assert.equal(await text(open.body), "done");
  await removal;
  assert.deepEqual(
    g.snapshot().peers.map((p) => p.name),
    [peers[1]!.address],
  );
  assert.deepEqual(
    events.filter((e) => e.group === "runtime").map((e) => e.state),
    ["draining", "removed"],
  );
  await g.addPeer({ address: peers[0]!.address, weight: 1 });
  assert.deepEqual(await tally(g, 4), { peer0: 2, peer1: 2 });
  await assert.rejects(g.removePeer("127.0.0.1:9"), /no peer/);
  await assert.rejects(
    g.addPeer({ address: "nonsense:" }),
    /peer\.address: expected an upstream address/,
  );
});

test("unix socket peers", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "brigade-upstream-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "app.sock");
  const server = createServer((req, res) => res.end(`unix ${req.headers.host}`));
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => closeServer(server));
  const g = await group(t, { peers: [`unix:${path}`] });
  assert.equal((await get(g)).body, "unix test");
  const missing = await group(t, { peers: [`unix:${join(dir, "missing.sock")}`] });
  await assert.rejects(get(missing), (e: Error & { kind?: string; status?: number }) => {
    assert.equal(e.kind, "refused");
    assert.equal(e.status, 502);
    return true;
  });
});
