/**
 * A master of several pools (test/fixtures/process/pools.ts): per-worker sockets, a pool that
 * starts after another, topic messages both ways, a stop announced before it is sent, rolling
 * reloads with a canary (passing, failing, a new version that cannot boot), and a graceful stop
 * that takes the front down before the back.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { httpGet, spawnNode, waitFor } from "../helpers/process.ts";
import { tempDir } from "./harness.ts";

const script = new URL("../fixtures/process/pools.ts", import.meta.url).pathname;

interface Peers {
  version: number;
  peers: string[];
}

test("two pools: own sockets, start order, messages, rolling reload with canary, rollback, stop order", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "pools.json");
  const write = (back: { worker: string; data?: unknown }) =>
    writeFileSync(
      file,
      JSON.stringify({ dir, back: { workers: 2, ...back }, front: { workers: 1 }, canaryMs: 600 }),
    );
  write({ worker: "back", data: { v: 1 } });
  const m = spawnNode(t, [script, file]);
  await m.waitForLine(/master ready/, { timeoutMs: 30_000 });
  const lines = () => m.lines;
  const idx = (re: RegExp, from = 0) => lines().findIndex((l, i) => i >= from && re.test(l));

  // The front started only once both back workers were ready.
  const backReady = lines().filter((l) => /worker ready pool=back/.test(l)).length;
  assert.equal(backReady, 2, m.output());
  const firstFront = idx(/worker spawned pool=front/);
  const lastBackReady = lines().findLastIndex((l) => /worker ready pool=back/.test(l));
  assert.ok(firstFront > lastBackReady, m.output());

  const port = Number(
    /listening address=127\.0\.0\.1:(\d+) pool=front/.exec(m.output())?.[1] ?? "0",
  );
  const front = async (): Promise<Peers> => JSON.parse((await httpGet({ port })).body) as Peers;

  // The front knows both back sockets (a message sent at spawn, before its handler existed),
  // acknowledged them, and each socket is one back worker's own.
  const peers = await waitFor(async () => {
    const p = await front();
    return p?.peers.length === 2 ? p : undefined;
  }, "the front to know two peers");
  await m.waitForLine(/message pool=front worker=1 topic=ack/);
  const answers = await Promise.all(
    peers.peers.map((a) => httpGet({ socketPath: a.replace(/^unix:/, "") })),
  );
  assert.deepEqual(answers.map((a) => a.body.split(" ")[1]).sort(), ["id=1", "id=2"]);
  assert.ok(answers.every((a) => a.body.includes('gen=1 data={"v":1}')));

  // A rolling reload: one slot at a time, the canary watched, each old worker announced (taken
  // out of the front's list) before it is stopped; never fewer than two back workers ready.
  let from = lines().length;
  write({ worker: "back", data: { v: 2 } });
  process.kill(m.pid, "SIGHUP");
  await m.waitForLine(/reload end pool=back ok=true/, { from, timeoutMs: 30_000 });
  const seq = lines().slice(from);
  const at = (re: RegExp) => seq.findIndex((l) => re.test(l));
  assert.ok(at(/canary look final=false incumbents=2 bad=0/) >= 0, m.output());
  assert.ok(at(/canary passed/) < at(/announce .*reason=replaced/), m.output());
  // Slot 2's new worker is spawned only after slot 1's old one was announced.
  const spawns = seq.filter((l) => /worker spawned pool=back/.test(l));
  assert.equal(spawns.length, 2, m.output());
  assert.ok(seq.indexOf(spawns[1]!) > at(/announce .*reason=replaced/), m.output());
  // Announced, then stopped (after the hook's 200 ms), then exited.
  const announce = seq.filter((l) => /announce /.test(l));
  assert.equal(announce.length, 2, m.output());
  let ready = 2;
  for (const l of seq) {
    if (/worker ready pool=back/.test(l)) ready++;
    if (/announce /.test(l)) ready--;
    assert.ok(ready >= 2, `fewer than 2 ready back workers at: ${l}\n${m.output()}`);
  }
  const after = await waitFor(async () => {
    const p = await front();
    return p.peers.length === 2 && !p.peers.some((x) => peers.peers.includes(x)) ? p : undefined;
  }, "the front to know the two new peers");
  for (const a of after.peers) {
    const r = await httpGet({ socketPath: a.replace(/^unix:/, "") });
    assert.match(r.body, /gen=2 data=\{"v":2\}/);
  }

  // A canary that is far worse: rolled back, the reason logged, the old workers untouched.
  from = lines().length;
  write({ worker: "back", data: { v: 3, bad: true } });
  process.kill(m.pid, "SIGHUP");
  await m.waitForLine(/reload end pool=back ok=false reason="the canary failed: 1 bad"/, {
    from,
    timeoutMs: 30_000,
  });
  await m.waitForLine(/worker exited .*generation=3 reason="reload abandoned"/, { from });
  const kept = await front();
  assert.deepEqual(kept.peers, after.peers);

  // A new version that cannot boot: rolled back, old workers untouched.
  from = lines().length;
  write({ worker: "boom" });
  process.kill(m.pid, "SIGHUP");
  await m.waitForLine(/reload end pool=back ok=false reason="a new worker did not boot/, {
    from,
    timeoutMs: 30_000,
  });
  assert.deepEqual((await front()).peers, after.peers);
  for (const a of after.peers) {
    assert.match((await httpGet({ socketPath: a.replace(/^unix:/, "") })).body, /gen=2/);
  }

  // TERM: the front pool stops first, the back only once the front is gone; exit 0.
  from = lines().length;
  process.kill(m.pid, "SIGTERM");
  const { code } = await m.exited;
  assert.equal(code, 0, m.output());
  const stop = lines().slice(from);
  const frontExit = stop.findIndex((l) => /worker exited pool=front/.test(l));
  const firstBackExit = stop.findIndex((l) => /worker exited pool=back/.test(l));
  assert.ok(frontExit >= 0 && firstBackExit > frontExit, m.output());
  assert.ok(stop.findIndex((l) => /stopping hook/.test(l)) < frontExit, m.output());
});
