/** The open-file cache: what it keeps, when it looks again, what it forgets. */
import assert from "node:assert/strict";
import { rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  type Found,
  OpenFileCache,
  type OpenFileCacheOptions,
} from "../../../src/webserver/static/openFileCache.ts";
import { tree } from "./harness.ts";

function cache(o: Partial<OpenFileCacheOptions> = {}): OpenFileCache {
  return new OpenFileCache({
    max: 10,
    inactiveMs: 60_000,
    validMs: 1000,
    maxFileSize: 1024,
    verify: async () => true,
    ...o,
  });
}

test("small files are held in memory, large ones are not", async (t) => {
  const dir = tree(t, { "s.txt": "small", "l.bin": Buffer.alloc(2048) });
  const c = cache();
  const s = (await c.lookup(join(dir, "s.txt"))) as Found;
  assert.equal(s.ok && s.data?.toString(), "small");
  const l = (await c.lookup(join(dir, "l.bin"))) as Found;
  assert.equal(l.ok && l.data, undefined);
  assert.equal(l.size, 2048);
  const d = (await c.lookup(dir)) as Found;
  assert.equal(d.directory, true);
  assert.equal(c.size, 3);
});

test("an entry is trusted for `valid`, then one stat notices an edit", async (t) => {
  const dir = tree(t, { "f.txt": "one" });
  const path = join(dir, "f.txt");
  const c = cache({ validMs: 1000 });
  const t0 = Date.now();
  assert.equal(((await c.lookup(path, t0)) as Found).data?.toString(), "one");
  writeFileSync(path, "two!");
  const past = new Date(t0 - 5000);
  utimesSync(path, past, past);
  assert.equal(
    ((await c.lookup(path, t0 + 500)) as Found).data?.toString(),
    "one",
    "within valid: cached",
  );
  assert.equal(
    ((await c.lookup(path, t0 + 1500)) as Found).data?.toString(),
    "two!",
    "revalidated",
  );
});

test("errors are cached like files (nginx's open_file_cache_errors on), and revalidated", async (t) => {
  const dir = tree(t, {});
  const path = join(dir, "late.txt");
  const c = cache();
  const t0 = Date.now();
  const miss = await c.lookup(path, t0);
  assert.equal(!miss.ok && miss.code, "ENOENT");
  writeFileSync(path, "here");
  assert.equal((await c.lookup(path, t0 + 10)).ok, false);
  assert.equal((await c.lookup(path, t0 + 2000)).ok, true);
  rmSync(path);
  const gone = await c.lookup(path, t0 + 4000);
  assert.equal(!gone.ok && gone.code, "ENOENT");
});

test("max entries, least recently used first; inactive entries are swept", async (t) => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 5; i++) files[`${i}.txt`] = String(i);
  const dir = tree(t, files);
  const c = cache({ max: 3, inactiveMs: 5000 });
  const t0 = Date.now();
  for (let i = 0; i < 3; i++) await c.lookup(join(dir, `${i}.txt`), t0);
  await c.lookup(join(dir, "0.txt"), t0 + 1200); // 0 is now the most recent
  await c.lookup(join(dir, "3.txt"), t0 + 1300); // evicts 1, the least recently used
  assert.equal(c.size, 3);
  assert.ok(c.has(join(dir, "0.txt")) && !c.has(join(dir, "1.txt")) && c.has(join(dir, "3.txt")));
  c.sweep(t0 + 4000);
  assert.equal(c.size, 3);
  c.sweep(t0 + 20000);
  assert.equal(c.size, 0);
  c.clear();
});

test("max 0: nothing is kept, every lookup reads again", async (t) => {
  const dir = tree(t, { "f.txt": "x" });
  const c = cache({ max: 0 });
  const f = (await c.lookup(join(dir, "f.txt"))) as Found;
  assert.equal(f.ok && f.data, undefined, "no content read when it would not be kept");
  assert.equal(c.size, 0);
});

test("concurrent lookups of one path share one load; open() gives the descriptor's facts", async (t) => {
  const dir = tree(t, { "f.txt": "abc" });
  const path = join(dir, "f.txt");
  let verified = 0;
  const c = cache({
    verify: async () => {
      verified++;
      return true;
    },
  });
  await Promise.all(Array.from({ length: 20 }, () => c.lookup(path)));
  assert.equal(verified, 1);
  writeFileSync(path, "abcdef");
  const opened = await c.open(path);
  assert.ok("fd" in opened);
  assert.equal(opened.found.size, 6, "fresh facts, whatever the cache held");
  const { closeSync } = await import("node:fs");
  closeSync(opened.fd);
  const missing = await c.open(join(dir, "nope"));
  assert.ok("code" in missing && missing.code === "ENOENT");
});

test("the symlink verdict is part of the facts", async (t) => {
  const dir = tree(t, { "f.txt": "x" });
  const c = cache({ verify: async () => false });
  const f = (await c.lookup(join(dir, "f.txt"))) as Found;
  assert.equal(f.allowed, false);
  assert.equal(f.data, undefined, "content of a refused file is not even read");
});

test("FIFOs and other special files are not served (and do not hang)", async (t) => {
  const dir = tree(t, {});
  const { execFileSync } = await import("node:child_process");
  execFileSync("mkfifo", [join(dir, "pipe")]);
  const c = cache();
  const r = await c.lookup(join(dir, "pipe"));
  assert.equal(!r.ok && r.code, "ESPECIAL");
});

test("the content held is bounded by maxBytes: least recently used content goes first", async (t) => {
  const dir = tree(t, {
    "a.bin": Buffer.alloc(600, "a"),
    "b.bin": Buffer.alloc(600, "b"),
    "c.bin": Buffer.alloc(600, "c"),
    "big.bin": Buffer.alloc(1000, "x"),
  });
  const c = cache({ maxBytes: 1300 });
  const t0 = 1_000_000;
  assert.equal(((await c.lookup(join(dir, "a.bin"), t0)) as Found).data?.length, 600);
  assert.equal(((await c.lookup(join(dir, "b.bin"), t0 + 1000)) as Found).data?.length, 600);
  assert.equal(c.bytes, 1200);
  // a used again (now the most recent), then c: b, the least recently used, goes
  await c.lookup(join(dir, "a.bin"), t0 + 2000);
  assert.equal(((await c.lookup(join(dir, "c.bin"), t0 + 3000)) as Found).data?.length, 600);
  assert.equal(c.bytes, 1200);
  assert.equal(c.has(join(dir, "a.bin")), true);
  assert.equal(c.has(join(dir, "b.bin")), false);
  // A file larger than the budget is never held (it would only push everything else out).
  const small = cache({ maxBytes: 900 });
  assert.equal(((await small.lookup(join(dir, "big.bin"), t0)) as Found).data, undefined);
  assert.equal(small.bytes, 0);
  c.clear();
  assert.equal(c.bytes, 0);
});
