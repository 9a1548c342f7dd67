/**
 * The storage tiers: the memory LRU's bound and indexes, the disk tier's file format (a torn or
 * corrupt file is never served), sharing between two store instances (two workers), tags,
 * invalidation in place, and the size bound held by sweeps when several writers fill it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { DiskStore, decodeRecord, encodeRecord } from "../../../src/webserver/cache/diskStore.ts";
import { MemoryStore } from "../../../src/webserver/cache/memoryStore.ts";
import type { ResponseRecord } from "../../../src/webserver/cache/store.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), "brigade-cache-test-"));
  dirs.push(d);
  return d;
};

function rec(key: string, bodySize = 10, tags: string[] = [], variant = ""): ResponseRecord {
  return {
    kind: "response",
    key,
    variant,
    status: 200,
    fields: ["content-type", "text/plain", "etag", '"x"'],
    freshness: {
      responseTime: Date.now(),
      initialAge: 0,
      lifetime: 60,
      mustRevalidate: false,
      noCache: false,
      swr: undefined,
      sie: undefined,
      authOk: false,
      vary: [],
    },
    tags,
    body: Buffer.alloc(bodySize, key.length % 256),
  };
}

describe("memory tier", () => {
  test("LRU within its byte bound: a recently used record outlives older ones", () => {
    const m = new MemoryStore(3000);
    m.put(rec("a", 400));
    m.put(rec("b", 400));
    m.put(rec("c", 400));
    assert.ok(m.get("a", ""));
    m.put(rec("d", 400));
    m.put(rec("e", 400));
    assert.ok(m.bytes <= 3000);
    assert.ok(m.get("a", ""), "a was used, so it stays");
    assert.equal(m.get("b", ""), undefined, "b is the least recently used");
  });
  test("delete by key takes every variant; tags; invalidation marks stale", () => {
    const m = new MemoryStore(1 << 20);
    m.put(rec("k", 10, ["t1"], "v1"));
    m.put(rec("k", 10, ["t1"], "v2"));
    m.put(rec("other", 10, ["t2"]));
    assert.equal(m.invalidateTag("t2", 123), 1);
    const o = m.get("other", "");
    assert.equal(o?.kind === "response" && o.freshness.invalidatedAt, 123);
    assert.equal(m.deleteTag("t1"), 2);
    assert.equal(m.get("k", "v1"), undefined);
    assert.equal(m.delete("other"), 1);
    assert.equal(m.size, 0);
  });
});

describe("disk tier", () => {
  test("a record written by one store is read by another (another worker, a restart)", async () => {
    const dir = tmp();
    const a = new DiskStore({ dir, maxSize: 1 << 20, inactive: 600 });
    const b = new DiskStore({ dir, maxSize: 1 << 20, inactive: 600 });
    await a.put(rec("http://x/1", 100, ["blue"]));
    const got = await b.get("http://x/1", "");
    assert.equal(got?.kind, "response");
    assert.deepEqual(got?.kind === "response" && got.body, rec("http://x/1", 100).body);
    assert.equal(await b.invalidateTag("blue", 42), 1);
    const again = await a.get("http://x/1", "");
    assert.equal(again?.kind === "response" && again.freshness.invalidatedAt, 42);
    assert.equal(await b.deleteTag("blue"), 1);
    assert.equal(await a.get("http://x/1", ""), undefined);
    a.close();
    b.close();
  });
  test("a truncated or corrupted file is never served, and is removed", async () => {
    const dir = tmp();
    const s = new DiskStore({ dir, maxSize: 1 << 20, inactive: 600 });
    const whole = Buffer.concat(encodeRecord(rec("k", 1000)));
    assert.ok(decodeRecord(whole));
    assert.equal(decodeRecord(whole.subarray(0, whole.length - 1)), undefined);
    const flipped = Buffer.from(whole);
    flipped[flipped.length - 10]! ^= 0xff;
    assert.equal(decodeRecord(flipped), undefined);
    await s.put(rec("k", 1000));
    const path = s.path("k", "");
    writeFileSync(path, whole.subarray(0, 500));
    assert.equal(await s.get("k", ""), undefined);
    assert.throws(() => statSync(path));
    s.close();
  });
  test("writes are atomic: only whole files appear at the final path", async () => {
    const dir = tmp();
    const s = new DiskStore({ dir, maxSize: 1 << 24, inactive: 600 });
    const big = rec("big", 4 << 20);
    const writing = s.put(big);
    // While the write is in progress, the record is either absent or whole.
    const during = await s.get("big", "");
    assert.ok(
      during === undefined || (during.kind === "response" && during.body.length === 4 << 20),
    );
    await writing;
    assert.equal(readdirSync(join(dir, "tmp")).length, 0);
    s.close();
  });
  test("the size bound holds after a sweep when two writers overfill it", async () => {
    const dir = tmp();
    const max = 64 * 1024;
    const a = new DiskStore({ dir, maxSize: max, inactive: 600, sweepInterval: 3_600_000 });
    const b = new DiskStore({ dir, maxSize: max, inactive: 600, sweepInterval: 3_600_000 });
    for (let i = 0; i < 40; i++) await (i % 2 ? a : b).put(rec(`k${i}`, 4000));
    await a.sweep();
    await b.sweep();
    await a.sweep();
    let total = 0;
    let files = 0;
    for (const x of readdirSync(dir)) {
      if (!/^[0-9a-f]{2}$/.test(x)) continue;
      for (const y of readdirSync(join(dir, x))) {
        for (const f of readdirSync(join(dir, x, y))) {
          total += statSync(join(dir, x, y, f)).size;
          files++;
        }
      }
    }
    assert.ok(total <= max, `total ${total} > ${max}`);
    assert.ok(files > 0 && files < 40);
    // The most recent writes survive (least recently used went first).
    assert.ok(await a.get("k39", ""));
    a.close();
    b.close();
  });
  test("cross-worker fill lock: one holder; a stale lock is taken over", () => {
    const dir = tmp();
    const a = new DiskStore({ dir, maxSize: 1 << 20, inactive: 600 });
    const b = new DiskStore({ dir, maxSize: 1 << 20, inactive: 600 });
    assert.equal(a.tryLock("k", "", 5000), true);
    assert.equal(b.tryLock("k", "", 5000), false);
    assert.equal(b.tryLock("k", "", 0), true, "older than lockAge: taken over");
    b.unlock("k", "");
    assert.equal(a.isLocked("k", ""), false);
    a.close();
    b.close();
  });
});
