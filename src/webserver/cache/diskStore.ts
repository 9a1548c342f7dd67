/**
 * The disk tier: one file per record under a directory that every web worker (and every
 * restart) shares, so a response stored by one worker is a hit in the others.
 *
 * Layout (h = 32 hex of sha256(key), v = "0" or 16 hex of sha256(variant)):
 *
 *   DIR/ab/cd/<h>.<v>        a record (ab, cd: the first hex pairs of h, as nginx's levels=2:2)
 *   DIR/tags/ef/<t>/<h>.<v>  empty markers: record <h>.<v> carries tag t (t = 32 hex of the tag)
 *   DIR/tmp/                 records being written
 *   DIR/locks/<h>.<v>        a worker is fetching this slot (request collapsing across workers)
 *   DIR/sweep.lock           the worker currently sweeping
 *
 * A record file: a 32-byte header (magic `BRC1`; float64 invalidatedAt, written in place by an
 * invalidating purge and outside the checksum; uint32 meta length; uint32 body length; uint32
 * CRC-32 of meta and body), the metadata as JSON, then the body. Writes go to DIR/tmp and are
 * renamed into place, so a reader sees a whole record or none; a crash leaves at most a temp
 * file (swept later). A read checks magic, length and CRC, and drops a file that fails.
 *
 * Size bound across processes: no process knows the total, so a sweep measures it. Each worker
 * starts a sweep every `sweepInterval` and whenever it has itself written a tenth of `maxSize`
 * since its last one; `sweep.lock` (O_EXCL, taken over when older than a minute) lets one
 * worker sweep at a time. A sweep walks the records, drops those unused for `inactive`, and, when
 * the total exceeds `maxSize`, the least recently used (mtime, touched on use at most once a
 * minute) until the total is under 90% of it. So the bound holds at every sweep, and between
 * sweeps the directory can exceed it by what the workers wrote meanwhile (nginx's cache
 * manager behaves the same). Tag markers of records that are gone, and old temp files, go too.
 */
import { createHash } from "node:crypto";
import { closeSync, constants, mkdirSync, openSync, statSync, unlinkSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import type { CacheStore, StoreRecord } from "./store.ts";

const MAGIC = 0x31435242; // "BRC1" little-endian
const HEADER = 32;
const TOUCH_MS = 60_000;

export interface DiskStoreOptions {
  dir: string;
  /** Total bytes of records kept (bound enforced by sweeps). */
  maxSize: number;
  /** Seconds a record may go unused before a sweep removes it. */
  inactive: number;
  /** Milliseconds between sweeps. */
  sweepInterval?: number;
}

const hex = (s: string, n: number): string =>
  createHash("sha256").update(s).digest("hex").slice(0, n);

export function fileName(key: string, variant: string): string {
  return `${hex(key, 32)}.${variant === "" ? "0" : hex(variant, 16)}`;
}

export function encodeRecord(r: StoreRecord): Buffer[] {
  const { body, ...meta } =
    r.kind === "response" ? { ...r, freshness: { ...r.freshness } } : { ...r, body: undefined };
  const invalidatedAt =
    r.kind === "response" && r.freshness.invalidatedAt !== undefined
      ? r.freshness.invalidatedAt
      : 0;
  if (meta.kind === "response") delete (meta.freshness as { invalidatedAt?: number }).invalidatedAt;
  const metaBuf = Buffer.from(JSON.stringify(meta));
  const bodyBuf = body ?? Buffer.alloc(0);
  const header = Buffer.alloc(HEADER);
  header.writeUInt32LE(MAGIC, 0);
  header.writeDoubleLE(invalidatedAt, 4);
  header.writeUInt32LE(metaBuf.length, 12);
  header.writeUInt32LE(bodyBuf.length, 16);
  header.writeUInt32LE(crc32(bodyBuf, crc32(metaBuf)), 20);
  return [header, metaBuf, bodyBuf];
}

/** Decode a record file; undefined when it is not a whole, intact record. */
export function decodeRecord(buf: Buffer): StoreRecord | undefined {
  if (buf.length < HEADER || buf.readUInt32LE(0) !== MAGIC) return undefined;
  const metaLen = buf.readUInt32LE(12);
  const bodyLen = buf.readUInt32LE(16);
  if (buf.length !== HEADER + metaLen + bodyLen) return undefined;
  const metaBuf = buf.subarray(HEADER, HEADER + metaLen);
  const body = buf.subarray(HEADER + metaLen);
  if (crc32(body, crc32(metaBuf)) !== buf.readUInt32LE(20)) return undefined;
  let meta: StoreRecord;
  try {
    meta = JSON.parse(metaBuf.toString()) as StoreRecord;
  } catch {
    return undefined;
  }
  if (meta.kind === "vary") return meta;
  if (meta.kind !== "response") return undefined;
  const invalidatedAt = buf.readDoubleLE(4);
  const freshness = invalidatedAt > 0 ? { ...meta.freshness, invalidatedAt } : meta.freshness;
  return { ...meta, freshness, body: Buffer.from(body) };
}

export class DiskStore implements CacheStore {
  readonly dir: string;
  readonly maxSize: number;
  readonly inactive: number;
  readonly #dirsMade = new Set<string>();
  #written = 0;
  #seq = 0;
  #sweeping: Promise<void> | undefined;
  readonly #timer: NodeJS.Timeout;
  /** Bytes in the directory at the last sweep this worker made (for stats and tests). */
  lastSweepBytes = 0;

  constructor(options: DiskStoreOptions) {
    this.dir = options.dir;
    this.maxSize = options.maxSize;
    this.inactive = options.inactive;
    for (const d of ["tmp", "locks", "tags"]) mkdirSync(join(this.dir, d), { recursive: true });
    this.#timer = setInterval(() => this.#startSweep(), options.sweepInterval ?? 10_000);
    this.#timer.unref();
  }

  path(key: string, variant: string): string {
    const name = fileName(key, variant);
    return join(this.dir, name.slice(0, 2), name.slice(2, 4), name);
  }

  async get(key: string, variant: string): Promise<StoreRecord | undefined> {
    const path = this.path(key, variant);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(path, "r");
    } catch {
      return undefined;
    }
    let buf: Buffer;
    let mtimeMs: number;
    try {
      const st = await fh.stat();
      mtimeMs = st.mtimeMs;
      buf = Buffer.allocUnsafe(st.size);
      let off = 0;
      while (off < st.size) {
        const { bytesRead } = await fh.read(buf, off, st.size - off, off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      if (off !== st.size) buf = buf.subarray(0, off);
      if (Date.now() - mtimeMs > TOUCH_MS) {
        const now = new Date();
        await fh.utimes(now, now).catch(() => {});
      }
    } finally {
      await fh.close();
    }
    const record = decodeRecord(buf);
    if (record === undefined || record.key !== key || record.variant !== variant) {
      // Corrupt, or a hash collision: never served; a corrupt file goes.
      if (record === undefined) await fsp.unlink(path).catch(() => {});
      return undefined;
    }
    return record;
  }

  /** Mark a record used (a memory-tier hit), so the sweep's LRU order sees it. */
  touch(key: string, variant: string): void {
    const now = new Date();
    fsp.utimes(this.path(key, variant), now, now).catch(() => {});
  }

  async put(record: StoreRecord): Promise<void> {
    const final = this.path(record.key, record.variant);
    const parts = encodeRecord(record);
    const tmp = join(this.dir, "tmp", `${process.pid}-${++this.#seq}-${Date.now()}`);
    const fh = await fsp.open(tmp, "w", 0o644);
    try {
      await fh.writev(parts);
    } catch (e) {
      await fh.close();
      await fsp.unlink(tmp).catch(() => {});
      throw e;
    }
    await fh.close();
    await this.#mkdir(join(final, ".."));
    try {
      await fsp.rename(tmp, final);
    } catch {
      // The bucket went (a purge or sweep removed it): make it again, once.
      this.#dirsMade.delete(join(final, ".."));
      await this.#mkdir(join(final, ".."));
      await fsp.rename(tmp, final).catch(async () => {
        await fsp.unlink(tmp).catch(() => {});
      });
    }
    if (record.kind === "response") {
      const name = fileName(record.key, record.variant);
      for (const tag of record.tags) {
        const tdir = this.#tagDir(tag);
        await this.#mkdir(tdir);
        await fsp.writeFile(join(tdir, name), "").catch(() => {});
      }
    }
    this.#written += parts[0]!.length + parts[1]!.length + parts[2]!.length;
    if (this.#written > this.maxSize / 10) this.#startSweep();
  }

  async delete(key: string): Promise<number> {
    let n = 0;
    for (const p of await this.#variants(key)) {
      if (
        await fsp.unlink(p).then(
          () => true,
          () => false,
        )
      )
        n++;
    }
    return n;
  }

  async invalidate(key: string, at: number): Promise<number> {
    let n = 0;
    for (const p of await this.#variants(key)) if (await markInvalid(p, at)) n++;
    return n;
  }

  async deleteTag(tag: string): Promise<number> {
    return this.#eachTagged(
      tag,
      async (p) =>
        fsp.unlink(p).then(
          () => true,
          () => false,
        ),
      true,
    );
  }

  async invalidateTag(tag: string, at: number): Promise<number> {
    return this.#eachTagged(tag, (p) => markInvalid(p, at), false);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  /** Take the cross-worker fill lock of a slot; false when another worker holds a fresh one. */
  tryLock(key: string, variant: string, staleAfterMs: number): boolean {
    const path = join(this.dir, "locks", fileName(key, variant));
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        closeSync(openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY));
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") return true; // no lock dir: go on alone
        try {
          if (Date.now() - statSync(path).mtimeMs < staleAfterMs) return false;
          unlinkSync(path); // its holder died or hung: take over
        } catch {
          // gone meanwhile: try again
        }
      }
    }
    return false;
  }

  unlock(key: string, variant: string): void {
    try {
      unlinkSync(join(this.dir, "locks", fileName(key, variant)));
    } catch {
      // already gone (taken over as stale)
    }
  }

  isLocked(key: string, variant: string): boolean {
    try {
      statSync(join(this.dir, "locks", fileName(key, variant)));
      return true;
    } catch {
      return false;
    }
  }

  /** Sweep now (if no other worker is); resolves when done. */
  sweep(): Promise<void> {
    this.#startSweep();
    return this.#sweeping ?? Promise.resolve();
  }

  #startSweep(): void {
    if (this.#sweeping !== undefined) return;
    this.#written = 0;
    this.#sweeping = this.#sweep()
      .catch(() => {})
      .finally(() => {
        this.#sweeping = undefined;
      });
  }

  async #sweep(): Promise<void> {
    const lock = join(this.dir, "sweep.lock");
    try {
      closeSync(openSync(lock, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY));
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs < 60_000) return;
        unlinkSync(lock);
        closeSync(openSync(lock, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY));
      } catch {
        return;
      }
    }
    try {
      const now = Date.now();
      const files: { path: string; size: number; mtime: number; name: string }[] = [];
      for (const a of await readdirSafe(this.dir)) {
        if (!/^[0-9a-f]{2}$/.test(a)) continue;
        for (const b of await readdirSafe(join(this.dir, a))) {
          const bucket = join(this.dir, a, b);
          for (const name of await readdirSafe(bucket)) {
            const path = join(bucket, name);
            const st = await fsp.stat(path).catch(() => undefined);
            if (st?.isFile()) files.push({ path, size: st.size, mtime: st.mtimeMs, name });
          }
        }
      }
      let total = 0;
      const kept: typeof files = [];
      for (const f of files) {
        if (now - f.mtime > this.inactive * 1000) await fsp.unlink(f.path).catch(() => {});
        else {
          kept.push(f);
          total += f.size;
        }
      }
      if (total > this.maxSize) {
        kept.sort((x, y) => x.mtime - y.mtime);
        const target = this.maxSize * 0.9;
        while (total > target && kept.length > 0) {
          const f = kept.shift()!;
          await fsp.unlink(f.path).catch(() => {});
          total -= f.size;
        }
      }
      this.lastSweepBytes = total;
      const live = new Set(kept.map((f) => f.name));
      for (const a of await readdirSafe(join(this.dir, "tags"))) {
        for (const t of await readdirSafe(join(this.dir, "tags", a))) {
          const tdir = join(this.dir, "tags", a, t);
          const markers = await readdirSafe(tdir);
          let left = markers.length;
          for (const m of markers) {
            if (!live.has(m)) {
              await fsp.unlink(join(tdir, m)).catch(() => {});
              left--;
            }
          }
          if (left === 0) await fsp.rmdir(tdir).catch(() => {});
        }
      }
      for (const t of await readdirSafe(join(this.dir, "tmp"))) {
        const p = join(this.dir, "tmp", t);
        const st = await fsp.stat(p).catch(() => undefined);
        if (st && now - st.mtimeMs > 60_000) await fsp.unlink(p).catch(() => {});
      }
    } finally {
      await fsp.unlink(lock).catch(() => {});
    }
  }

  async #variants(key: string): Promise<string[]> {
    const h = hex(key, 32);
    const bucket = join(this.dir, h.slice(0, 2), h.slice(2, 4));
    return (await readdirSafe(bucket))
      .filter((n) => n.startsWith(`${h}.`))
      .map((n) => join(bucket, n));
  }

  #tagDir(tag: string): string {
    const t = hex(tag, 32);
    return join(this.dir, "tags", t.slice(0, 2), t);
  }

  async #eachTagged(
    tag: string,
    fn: (path: string) => Promise<boolean>,
    removeMarkers: boolean,
  ): Promise<number> {
    const tdir = this.#tagDir(tag);
    let n = 0;
    for (const name of await readdirSafe(tdir)) {
      if (await fn(join(this.dir, name.slice(0, 2), name.slice(2, 4), name))) n++;
      if (removeMarkers) await fsp.unlink(join(tdir, name)).catch(() => {});
    }
    if (removeMarkers) await fsp.rmdir(tdir).catch(() => {});
    return n;
  }

  async #mkdir(dir: string): Promise<void> {
    if (this.#dirsMade.has(dir)) return;
    await fsp.mkdir(dir, { recursive: true });
    this.#dirsMade.add(dir);
  }
}

async function readdirSafe(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch {
    return [];
  }
}

/** Write invalidatedAt into a record's header in place (8 bytes, outside the checksum). */
async function markInvalid(path: string, at: number): Promise<boolean> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, "r+");
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    if (head.readUInt32LE(0) !== MAGIC) return false;
    const b = Buffer.alloc(8);
    b.writeDoubleLE(at, 0);
    await fh.write(b, 0, 8, 4);
    return true;
  } finally {
    await fh.close();
  }
}
