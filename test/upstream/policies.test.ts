/**
 * Each balancing policy's distribution, measured through real sockets: in-process node:http
 * peers answering their own index, requests sent through `UpstreamGroup.request`.
 */
import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { test } from "node:test";
import { ipv6Bytes } from "../../src/upstream/policies/ipHash.ts";
import {
  get,
  group,
  type Handler,
  namedHandler,
  startPeers,
  tally,
  text,
  until,
} from "./helpers.ts";

/** A handler that holds a request open while its path is /hold, until `release()`. */
function holding(): { handler: Handler; release(): void; held: ServerResponse[] } {
  const held: ServerResponse[] = [];
  return {
    held,
    handler: (req, res, peer, i) => {
      if (req.url === "/hold") {
        res.setHeader("x-peer", String(i));
        res.flushHeaders();
        held.push(res);
        return;
      }
      namedHandler(req, res, peer, i);
    },
    release() {
      for (const r of held.splice(0)) r.end("held");
    },
  };
}

/** A small seeded PRNG (mulberry32), so random policies are reproducible. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("round-robin is smooth and weighted: 5,1,1 gives a a b a c a a, exact per cycle", async (t) => {
  const peers = await startPeers(t, 3);
  const g = await group(t, {
    peers: [{ address: peers[0]!.address, weight: 5 }, peers[1]!.address, peers[2]!.address],
  });
  const seq: string[] = [];
  for (let i = 0; i < 14; i++) seq.push((await get(g)).body);
  const cycle = ["peer0", "peer0", "peer1", "peer0", "peer2", "peer0", "peer0"];
  assert.deepEqual(seq, [...cycle, ...cycle]);
});

test("round-robin with equal weights alternates", async (t) => {
  const peers = await startPeers(t, 3);
  const g = await group(t, { peers: peers.map((p) => p.address) });
  assert.deepEqual(await tally(g, 30), { peer0: 10, peer1: 10, peer2: 10 });
});

test("least connections avoids the peer with requests in flight, and honours weights", async (t) => {
  const h = holding();
  const peers = await startPeers(t, 2, h.handler);
  const g = await group(t, { peers: peers.map((p) => p.address), policy: "leastConnections" });
  const held = await g.request({ method: "GET", path: "/hold", headers: {} });
  const busy = held.headers["x-peer"];
  const other = busy === "0" ? "peer1" : "peer0";
  assert.deepEqual(await tally(g, 6), { [other]: 6 });
  h.release();
  assert.equal(await text(held.body), "held");
  // Idle again: ties rotate.
  assert.deepEqual(await tally(g, 4), { peer0: 2, peer1: 2 });

  const wh = holding();
  const wpeers = await startPeers(t, 2, wh.handler);
  const wg = await group(t, {
    peers: [wpeers[0]!.address, { address: wpeers[1]!.address, weight: 3 }],
    policy: "leastConnections",
  });
  const responses = [];
  for (let i = 0; i < 8; i++)
    responses.push(await wg.request({ method: "GET", path: "/hold", headers: {} }));
  assert.deepEqual([wpeers[0]!.inFlight, wpeers[1]!.inFlight], [2, 6]);
  wh.release();
  for (const r of responses) await text(r.body);
});

test("ip hash keeps a client (and its /24) on one peer; down moves only its own clients", async (t) => {
  const peers = await startPeers(t, 3);
  const g = await group(t, { peers: peers.map((p) => p.address), policy: "ipHash" });
  const first = (await get(g, { clientAddress: "10.1.2.3" })).body;
  for (const a of ["10.1.2.3", "10.1.2.200", "::ffff:10.1.2.9"]) {
    assert.equal((await get(g, { clientAddress: a })).body, first, a);
  }
  const map = new Map<string, string>();
  for (let i = 0; i < 40; i++) {
    const a = `10.${i}.${(i * 7) % 250}.1`;
    map.set(a, (await get(g, { clientAddress: a })).body);
  }
  const used = new Set(map.values());
  assert.ok(used.size >= 2, `40 networks spread over ${used.size} peer(s)`);
  const v6 = "2001:db8::1";
  const v6peer = (await get(g, { clientAddress: v6 })).body;
  assert.equal((await get(g, { clientAddress: "2001:0db8:0:0:0:0:0:1" })).body, v6peer);

  const victim = [...used][0]!;
  g.setDown(peers[Number(victim.slice(4))]!.address, true);
  for (const [a, before] of map) {
    const after = (await get(g, { clientAddress: a })).body;
    if (before === victim) assert.notEqual(after, victim);
    else assert.equal(after, before, `${a} stays on ${before}`);
  }
});

test("ipv6 bytes expand :: and embedded IPv4", () => {
  assert.deepEqual(ipv6Bytes("::1"), [...Array(15).fill(0), 1]);
  assert.deepEqual(ipv6Bytes("2001:db8::ff00:42:8329").slice(0, 4), [0x20, 0x01, 0x0d, 0xb8]);
  assert.deepEqual(ipv6Bytes("::ffff:1.2.3.4").slice(12), [1, 2, 3, 4]);
  assert.equal(ipv6Bytes("fe80::1%eth0").length, 16);
});

async function mapKeys(g: Awaited<ReturnType<typeof group>>, keys: string[]) {
  const out = new Map<string, string>();
  for (const k of keys) out.set(k, (await get(g, { hashKey: k })).body);
  return out;
}

test("consistent hash: keys stay put, and adding a peer moves only about 1/n, all to it", async (t) => {
  const peers = await startPeers(t, 5);
  const g = await group(t, {
    peers: peers.slice(0, 4).map((p) => p.address),
    policy: { type: "hash", key: "$request_uri", consistent: true },
  });
  const keys = Array.from({ length: 200 }, (_, i) => `/item/${i}`);
  const before = await mapKeys(g, keys);
  assert.deepEqual(await mapKeys(g, keys.slice(0, 20)), new Map([...before].slice(0, 20)));
  assert.equal(new Set(before.values()).size, 4);
  await g.addPeer(peers[4]!.address);
  const after = await mapKeys(g, keys);
  const moved = keys.filter((k) => before.get(k) !== after.get(k));
  for (const k of moved) assert.equal(after.get(k), "peer4", `${k} moved to the new peer only`);
  assert.ok(moved.length > 200 * 0.05 && moved.length < 200 * 0.4, `moved ${moved.length}/200`);

  // Taking a peer down sends its keys to its ring neighbours; the others stay.
  g.setDown(peers[0]!.address, true);
  const down = await mapKeys(g, keys);
  for (const k of keys) {
    if (after.get(k) !== "peer0") assert.equal(down.get(k), after.get(k));
    else assert.notEqual(down.get(k), "peer0");
  }
});

test("plain (modulo) hash is stable per key but remaps most keys when a peer is added", async (t) => {
  const peers = await startPeers(t, 5);
  const g = await group(t, {
    peers: peers.slice(0, 4).map((p) => p.address),
    policy: { type: "hash", key: "$request_uri" },
  });
  const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
  const before = await mapKeys(g, keys);
  assert.deepEqual(await mapKeys(g, keys), before);
  await g.addPeer(peers[4]!.address);
  const after = await mapKeys(g, keys);
  const moved = keys.filter((k) => before.get(k) !== after.get(k)).length;
  assert.ok(moved > 50, `modulo hashing moved ${moved}/100`);
  // No key: round-robin.
  assert.equal(Object.keys(await tally(g, 5)).length, 5);
});

test("random two: shares follow weights when idle, and the loaded peer loses the draw", async (t) => {
  const h = holding();
  const peers = await startPeers(t, 2, h.handler);
  const g = await group(
    t,
    { peers: [peers[0]!.address, { address: peers[1]!.address, weight: 3 }], policy: "randomTwo" },
    { random: seeded(42) },
  );
  // Idle peers tie, so the first draw (weighted) wins: about 1:3.
  const counts = await tally(g, 200);
  const share = (counts.peer1 ?? 0) / 200;
  assert.ok(share > 0.6 && share < 0.9, `weight-3 peer share ${share}`);
  const held = await g.request({ method: "GET", path: "/hold", headers: {} });
  const busy = held.headers["x-peer"];
  const counts2 = await tally(g, 20);
  assert.deepEqual(counts2, { [busy === "0" ? "peer1" : "peer0"]: 20 });
  h.release();
  await text(held.body);
});

test("sticky cookie binds a client to its first peer, also while draining", async (t) => {
  const h = holding();
  const peers = await startPeers(t, 3, h.handler);
  const g = await group(t, {
    peers: peers.map((p) => p.address),
    policy: { type: "sticky", cookie: "route", cookieMaxAge: "1h" },
  });
  const first = await get(g);
  assert.match(
    first.setCookie ?? "",
    /^route=[0-9a-f]{16}; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/,
  );
  const value = /^route=([0-9a-f]+)/.exec(first.setCookie!)![1]!;
  for (let i = 0; i < 6; i++) {
    const r = await get(g, { stickyCookie: value });
    assert.equal(r.body, first.body);
    assert.equal(r.setCookie, undefined);
  }
  const index = Number(first.body.slice(4));
  const draining = g.drainPeer(peers[index]!.address);
  assert.equal(
    (await get(g, { stickyCookie: value })).body,
    first.body,
    "draining keeps its sessions",
  );
  const fresh = await get(g);
  assert.notEqual(fresh.body, first.body, "no new clients for a draining peer");
  await draining;
  g.setDown(peers[index]!.address, true);
  const moved = await get(g, { stickyCookie: value });
  assert.notEqual(moved.body, first.body);
  assert.ok(moved.setCookie, "a new binding when the peer is gone");
  const unknown = await get(g, { stickyCookie: "0000000000000000" });
  assert.ok(unknown.setCookie);
  await until(() => h.held.length === 0);
});
