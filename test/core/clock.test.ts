/** core/clock.ts: the wall time derived from the monotonic clock is the wall clock's. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { monoNow, wallAt } from "../../src/core/clock.ts";

test("wallAt(monoNow()) is Date.now(), and an earlier reading maps to an earlier time", async () => {
  for (let i = 0; i < 3; i++) {
    const before = Date.now();
    const mono = monoNow();
    const wall = wallAt(mono);
    const after = Date.now();
    // Date.now() is whole milliseconds: allow one on each side.
    assert.ok(wall >= before - 1 && wall <= after + 1, `${before} <= ${wall} <= ${after}`);
    await sleep(20);
    const later = wallAt(monoNow());
    assert.ok(later - wall >= 15, `${later - wall} ms passed`);
    // The reading taken before maps to the same time as before (within the offset's rounding).
    assert.ok(Math.abs(wallAt(mono) - wall) <= 2);
  }
});
