/** The file buffers' pool: reuse, what it keeps, and the small chunks past the large budget. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { BufferPool, FileBuffers } from "../../../../src/webserver/engine/h1/bufferPool.ts";

test("a pool reuses what is given back and keeps at most `keep` idle buffers", () => {
  const p = new BufferPool(1024, 2);
  const a = p.acquire();
  const b = p.acquire();
  const c = p.acquire();
  assert.equal(p.inUse, 3);
  assert.equal(p.allocated, 3);
  p.release(a);
  p.release(b);
  p.release(c);
  assert.equal(p.inUse, 0);
  assert.equal(p.idle, 2, "the third is left to the GC");
  const again = p.acquire();
  assert.ok(again === a || again === b, "a buffer given back is handed out again");
  assert.equal(p.allocated, 3);
});

test("file buffers: 256 KiB chunks up to the budget, 32 KiB ones past it", () => {
  const f = new FileBuffers(2);
  const held = [f.acquire(), f.acquire(), f.acquire(), f.acquire()];
  assert.deepEqual(
    held.map((b) => b.length),
    [256 * 1024, 256 * 1024, 32 * 1024, 32 * 1024],
  );
  assert.equal(f.inUse, 4);
  f.release(held[0]!);
  assert.equal(f.acquire().length, 256 * 1024, "a large one is free again");
  for (const b of held.slice(1)) f.release(b);
  assert.equal(f.inUse, 1);
  assert.equal(f.small.idle, 2);
});
