/**
 * The retry driver: a failed attempt moves to the next peer (connect error, timeout, listed
 * statuses), idempotent requests only unless configured, bounded by tries and total time; the
 * body is replayed from memory. And a bounded load of GETs surviving a peer process killed
 * mid-run.
 */
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import { startCommand } from "../../bench/lib/peers.ts";
import { benchFile } from "../../bench/lib/suite.ts";
import { UpstreamError, withRetries } from "../../src/upstream/index.ts";
import { get, group, manualClock, startPeers, text } from "./helpers.ts";

type Err = Error & { kind?: string; status?: number; attempts?: unknown[] };

test("a 502 moves to the next peer only when retry.on lists it; the last 502 is returned", async (t) => {
  const peers = await startPeers(t, 2, (_req, res, _p, i) => {
    res.statusCode = i === 0 ? 502 : 200;
    res.end(`peer${i}`);
  });
  const plain = await group(t, { peers: peers.map((p) => p.address), maxFails: 0 });
  assert.deepEqual((await get(plain)).status, 502, "not listed: the 502 is the answer");
  const retrying = await group(t, {
    peers: peers.map((p) => p.address),
    maxFails: 0,
    retry: { on: ["error", "http502"] },
  });
  for (let i = 0; i < 4; i++) {
    const r = await get(retrying);
    assert.equal(r.body, "peer1");
  }
  const [only] = await startPeers(t, 1, (_req, res) => {
    res.statusCode = 502;
    res.end("upstream says 502");
  });
  const last = await group(t, { peers: [only!.address], retry: { on: ["http502"] } });
  const r = await get(last);
  assert.equal(r.status, 502);
  assert.equal(r.body, "upstream says 502", "nginx passes the last upstream response on");
});

test("POST: not retried after it may have reached the peer, unless nonIdempotent; always when refused", async (t) => {
  const bodies: string[] = [];
  const peers = await startPeers(t, 2, async (req, res, _p, i) => {
    const body = await text(req);
    bodies.push(`${i}:${body}`);
    if (i === 0) {
      res.statusCode = 503;
      res.end();
    } else res.end(`peer${i} got ${body}`);
  });
  const post = {
    method: "POST",
    path: "/",
    headers: { "content-type": "text/plain" },
    body: Buffer.from("payload"),
  };
  const strict = await group(t, {
    peers: peers.map((p) => p.address),
    maxFails: 0,
    retry: { on: ["error", "http503"] },
  });
  const r1 = await strict.request(post);
  assert.equal(r1.status, 503, "the POST was sent: not replayed");
  await text(r1.body);
  const loose = await group(t, {
    peers: peers.map((p) => p.address),
    maxFails: 0,
    retry: { on: ["error", "http503"], nonIdempotent: true },
  });
  const r2 = await loose.request(post);
  assert.equal(await text(r2.body), "peer1 got payload", "replayed from the buffer");
  assert.deepEqual(
    r2.attempts.map((a) => a.status),
    [503, 200],
  );
  // Refused: nothing was sent, so even a POST goes on.
  const refused = await group(t, { peers: ["127.0.0.1:1", peers[1]!.address] });
  const r3 = await refused.request(post);
  assert.equal(await text(r3.body), "peer1 got payload");
  assert.equal(r3.attempts[0]!.error, "refused");
});

test("a reset after the request was sent: GET retried, POST not (unless configured)", async (t) => {
  const peers = await startPeers(t, 2, async (req, res, _p, i) => {
    await text(req);
    if (i === 0) res.socket?.destroy();
    else res.end(`peer${i}`);
  });
  const g = await group(t, { peers: peers.map((p) => p.address), maxFails: 0 });
  const r0 = await get(g);
  assert.equal(r0.body, "peer1");
  assert.deepEqual(
    r0.attempts.map((a) => (a as { error?: string }).error),
    ["reset", undefined],
  );
  // A fresh group, so that round-robin starts with peer0 again.
  const p = await group(t, { peers: peers.map((x) => x.address), maxFails: 0 });
  await assert.rejects(p.request({ method: "POST", path: "/", body: "x" }), (e: Err) => {
    assert.equal(e.kind, "reset");
    assert.equal(e.status, 502);
    assert.equal(e.attempts?.length, 1);
    return true;
  });
  // A streamed body cannot be sent twice: even an idempotent PUT is not replayed.
  const streamed = await group(t, { peers: peers.map((x) => x.address), maxFails: 0 });
  await assert.rejects(
    streamed.request({ method: "PUT", path: "/", body: Readable.from([Buffer.from("x")]) }),
    (e: Err) => e.kind === "reset" && e.attempts?.length === 1,
  );
  const g2 = await group(t, {
    peers: peers.map((p) => p.address),
    maxFails: 0,
    retry: { nonIdempotent: true },
  });
  const r = await g2.request({ method: "POST", path: "/", body: "x" });
  assert.equal(await text(r.body), "peer1");
});

test("read timeout: 504-class error, retried on the next peer", async (t) => {
  const peers = await startPeers(t, 2, (_req, res, _p, i) => {
    if (i === 1) res.end("peer1");
    // peer0 never answers
  });
  const g = await group(t, {
    peers: peers.map((p) => p.address),
    timeouts: { read: "100ms" },
    retry: { on: [] },
  });
  await assert.rejects(get(g), (e: Err) => {
    assert.equal(e.kind, "timeout");
    assert.equal(e.status, 504);
    assert.match(e.message, /timed out/);
    return true;
  });
  const g2 = await group(t, { peers: peers.map((p) => p.address), timeouts: { read: "100ms" } });
  assert.equal((await get(g2)).body, "peer1");
});

test("tries and the total time bound the attempts", async (t) => {
  const dead = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"];
  const g = await group(t, { peers: dead, retry: { tries: 2 } });
  await assert.rejects(get(g), (e: Err) => e.attempts?.length === 2 && e.kind === "refused");
  const all = await group(t, { peers: dead });
  await assert.rejects(get(all), (e: Err) => e.attempts?.length === 4);

  // The protocol-neutral driver with a clock: the first attempt uses up the budget.
  const clock = manualClock();
  const timed = await group(t, { peers: dead, retry: { timeout: "1s" } }, { clock: clock.now });
  let calls = 0;
  await assert.rejects(
    withRetries(timed, { method: "GET" }, async (lease) => {
      calls++;
      clock.advance(1500);
      throw new UpstreamError("refused", "connect", { peer: lease.peer.name, sent: false });
    }),
    (e: Err) => e.kind === "refused",
  );
  assert.equal(calls, 1);
});

test("a bounded load of GETs survives one of three upstream processes killed mid-run", async (t) => {
  const procs = await Promise.all(
    [0, 1, 2].map(() =>
      startCommand({
        name: "hello upstream",
        command: process.execPath,
        args: [benchFile("bench/servers/nodeHttp.ts"), "{port}"],
      }),
    ),
  );
  t.after(() => Promise.all(procs.map((p) => p.stop())));
  const g = await group(t, { peers: procs.map((p) => `127.0.0.1:${p.port}`) });
  const total = 300;
  let next = 0;
  let done = 0;
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  const worker = async () => {
    while (next < total) {
      next++;
      try {
        const r = await get(g);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      } catch (err) {
        failures.push((err as Error).message);
      }
      done++;
      if (done === 100) process.kill(procs[1]!.pid, "SIGKILL");
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  assert.deepEqual(failures, []);
  assert.deepEqual([...statuses], [[200, total]]);
  const killed = g.snapshot().peers[1]!;
  assert.equal(killed.state, "failed", "the killed peer is out");
});
