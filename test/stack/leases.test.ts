/**
 * The master's side of the sync app worker leases (src/stack/leases.ts), without processes:
 * one holder per app worker, the longest idle lent first, first come first served over web
 * workers, exclusions, cancels, and a web worker's exit freeing what it held.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { WorkerInfo } from "../../src/process/master.ts";
import { AppLeases } from "../../src/stack/leases.ts";

const web = (id: number, pid: number) => ({ id, pid, threadId: undefined }) as WorkerInfo;

test("leases: one holder per app worker, FIFO over web workers, exclusions, exit frees", async () => {
  const peers = ["unix:/a", "unix:/b"];
  const sent: { slot: number; o: string; g: (number | string)[] }[] = [];
  const leases = new AppLeases(
    () => peers,
    (slot, body) => sent.push({ slot, ...body }),
  );
  const turn = () => new Promise((r) => setImmediate(r));
  const w1 = web(1, 101);
  const w2 = web(2, 102);
  // w1 takes two: both app workers; a third waits; w2's take waits behind it.
  leases.receive(w1, { o: "one", q: [0, 1, 0, 0, 2, 0, 0, 3, 0] });
  leases.receive(w2, { o: "two", q: [0, 1, 0] });
  await turn();
  assert.deepEqual(sent, [{ slot: 1, o: "one", g: [1, "unix:/a", 2, "unix:/b"] }]);
  assert.deepEqual(leases.stats(), { held: 2, waiting: 2 });
  // w1 cancels its third; b is released: w2's take gets it (it waited first now).
  sent.length = 0;
  leases.receive(w1, { o: "one", q: [1, 3, 2, 2] });
  await turn();
  assert.deepEqual(sent, [{ slot: 2, o: "two", g: [1, "unix:/b"] }]);
  // A take excluding a (w2 tried it): waits although a frees, until b frees.
  sent.length = 0;
  leases.receive(w2, { o: "two", q: [0, 2, 1, "unix:/a"] });
  leases.receive(w1, { o: "one", q: [2, 1] });
  await turn();
  assert.deepEqual(sent, []);
  assert.deepEqual(leases.stats(), { held: 1, waiting: 1 });
  // w2 exits holding b with a take waiting: both gone; a and b free for w1.
  leases.webExited(w2);
  assert.deepEqual(leases.stats(), { held: 0, waiting: 0 });
  leases.receive(w1, { o: "one", q: [0, 4, 0, 0, 5, 0] });
  await turn();
  // The longest idle first: b (last given back before a was).
  assert.deepEqual(sent, [{ slot: 1, o: "one", g: [4, "unix:/b", 5, "unix:/a"] }]);
});
