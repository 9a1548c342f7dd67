/**
 * A cache zone (nginx's `keys_zone` with its `proxy_cache_path`): the storage that locations
 * naming it share in one worker. A memory tier in front of an optional disk tier, Vary
 * resolution, request collapsing (nginx's cache lock), and purge, kept consistent across the
 * workers through the peer bus.
 *
 * Request collapsing: in a worker, the first miss for a slot takes its lock (a promise); later
 * misses wait on it, then look again. With a disk tier the lock is also a lock file, so the
 * first miss of *all* workers fetches: the others wait until the record is on disk (a `filled`
 * bus message wakes them, a 100 ms poll backs it up) or their wait times out, and a lock file
 * older than `lockAge` is taken over (its worker died or hung). Memory-only zones collapse
 * within each worker: one upstream request per worker at most.
 */
import { createHash } from "node:crypto";
import type { Fields } from "../exchange.ts";
import { type BusMessage, busDir, PeerBus } from "./bus.ts";
import { DiskStore } from "./diskStore.ts";
import { MemoryStore } from "./memoryStore.ts";
import { varyValues } from "./semantics.ts";
import type { ResponseRecord, StoreRecord } from "./store.ts";

export interface ZoneOptions {
  name: string;
  memorySize: number;
  dir?: string | undefined;
  maxSize: number;
  inactive: number;
  /** For memory-only zones: what identifies "the same server" across worker processes. */
  groupId: string;
}

export interface ZoneStats {
  hits: number;
  misses: number;
  stale: number;
  updating: number;
  revalidated: number;
  expired: number;
  bypass: number;
  stores: number;
  collapsed: number;
  purged: number;
}

/** The variant id for a request, from the vary names a response gave. */
export function variantOf(names: readonly string[], fields: Fields): string {
  if (names.length === 0) return "";
  const vals = varyValues(names, fields);
  return createHash("sha256")
    .update(names.map((n, i) => `${n}:${vals[i]}`).join("\n"))
    .digest("base64url")
    .slice(0, 22);
}

export type Lookup =
  | { found: ResponseRecord; variant: string }
  | { found: undefined; variant: string; varyKnown: boolean };

export type LockResult =
  /** This caller fetches; call `release` when the record is stored (or will not be). */
  | { leader: true; release: () => void }
  /** Another fetch finished (or the wait timed out: `timedOut`); look again. */
  | { leader: false; timedOut: boolean };

export class Zone {
  readonly name: string;
  readonly memory: MemoryStore;
  readonly disk: DiskStore | undefined;
  readonly stats: ZoneStats = {
    hits: 0,
    misses: 0,
    stale: 0,
    updating: 0,
    revalidated: 0,
    expired: 0,
    bypass: 0,
    stores: 0,
    collapsed: 0,
    purged: 0,
  };
  #bus: PeerBus | undefined;
  readonly #locks = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  readonly #wakers = new Map<string, Set<() => void>>();
  readonly #touched = new Map<string, number>();
  readonly #uses = new Map<string, number>();

  constructor(options: ZoneOptions) {
    this.name = options.name;
    this.memory = new MemoryStore(options.memorySize);
    if (options.dir !== undefined) {
      this.disk = new DiskStore({
        dir: options.dir,
        maxSize: options.maxSize,
        inactive: options.inactive,
      });
    }
  }

  /** Join the zone's other workers (in serving workers only). */
  async openBus(groupId: string): Promise<void> {
    const dir = busDir(`${groupId}\n${this.name}`, this.disk?.dir);
    this.#bus = await PeerBus.open(dir, (m) => this.#onMessage(m));
  }

  async close(): Promise<void> {
    this.#bus?.close();
    this.disk?.close();
    this.memory.close();
  }

  async #onMessage(m: BusMessage): Promise<void> {
    switch (m.t) {
      case "delete":
        this.memory.delete(m.key);
        break;
      case "invalidate":
        this.memory.invalidate(m.key, m.at);
        break;
      case "deleteTag":
        this.memory.deleteTag(m.tag);
        break;
      case "invalidateTag":
        this.memory.invalidateTag(m.tag, m.at);
        break;
      case "filled":
        // Another worker stored this slot on disk: drop our older copy, wake our waiters.
        if (this.disk) this.memory.delete(m.key);
        for (const wake of this.#wakers.get(`${m.key}\u0000${m.variant}`) ?? []) wake();
        break;
    }
  }

  /** A slot from the memory tier (a use: its LRU place, and the disk tier's access time). */
  #getMemory(key: string, variant: string): StoreRecord | undefined {
    const m = this.memory.get(key, variant);
    if (m !== undefined && this.disk !== undefined) {
      const id = `${key}\u0000${variant}`;
      const now = Date.now();
      if (now - (this.#touched.get(id) ?? 0) > 60_000) {
        this.#touched.set(id, now);
        if (this.#touched.size > 100_000) this.#touched.clear();
        this.disk.touch(key, variant);
      }
    }
    return m;
  }

  async #get(key: string, variant: string): Promise<StoreRecord | undefined> {
    const m = this.#getMemory(key, variant);
    if (m !== undefined) return m;
    if (this.disk === undefined) return undefined;
    const d = await this.disk.get(key, variant);
    if (d !== undefined) this.memory.put(d);
    return d;
  }

  /**
   * {@link lookup} answered from the memory tier alone, without a promise: the stored response
   * when memory holds it (and, for a Vary resource, its variant for this request); undefined
   * when only {@link lookup} can tell (a miss, or a slot only the disk tier may hold).
   */
  lookupMemory(
    key: string,
    fields: Fields,
  ): { found: ResponseRecord; variant: string } | undefined {
    const base = this.#getMemory(key, "");
    if (base === undefined) return undefined;
    if (base.kind === "response") return { found: base, variant: "" };
    const variant = variantOf(base.names, fields);
    const r = this.#getMemory(key, variant);
    return r?.kind === "response" ? { found: r, variant } : undefined;
  }

  /** Find the stored response for a request: variant "" first, then the one Vary points to. */
  async lookup(key: string, fields: Fields): Promise<Lookup> {
    const base = await this.#get(key, "");
    if (base === undefined) return { found: undefined, variant: "", varyKnown: false };
    if (base.kind === "response") return { found: base, variant: "" };
    const variant = variantOf(base.names, fields);
    const r = await this.#get(key, variant);
    if (r?.kind === "response") return { found: r, variant };
    return { found: undefined, variant, varyKnown: true };
  }

  /** Store a response (and its vary record); resolves once it is on disk too. */
  async store(record: ResponseRecord, varyNamesList: string[]): Promise<void> {
    this.stats.stores++;
    const records: StoreRecord[] = [record];
    if (varyNamesList.length > 0) {
      const current = await this.#get(record.key, "");
      if (current?.kind !== "vary" || current.names.join() !== varyNamesList.join()) {
        records.push({ kind: "vary", key: record.key, variant: "", names: varyNamesList });
        if (current?.kind === "response" || current?.kind === "vary") {
          // The resource changed how it varies: the old variants are unreachable now.
          await this.deleteKey(record.key, false);
        }
      }
    } else {
      const current = await this.#get(record.key, "");
      if (current?.kind === "vary") await this.deleteKey(record.key, false);
    }
    for (const r of records) this.memory.put(r);
    if (this.disk) for (const r of records) await this.disk.put(r).catch(() => {});
    if (this.disk)
      void this.#bus?.broadcast({ t: "filled", key: record.key, variant: record.variant });
  }

  /** Update a stored response's freshness and fields after a 304 (body unchanged). */
  async update(record: ResponseRecord): Promise<void> {
    this.memory.put(record);
    if (this.disk) {
      await this.disk.put(record).catch(() => {});
      void this.#bus?.broadcast({ t: "filled", key: record.key, variant: record.variant });
    }
  }

  /** Count one use of a key; true once it has been asked for `min` times (nginx's min_uses). */
  used(key: string, min: number): boolean {
    if (min <= 1) return true;
    const n = (this.#uses.get(key) ?? 0) + 1;
    if (this.#uses.size > 100_000) this.#uses.clear();
    this.#uses.set(key, n);
    return n >= min;
  }

  /**
   * Take the fill lock of a slot, or wait for the fill in progress (here or, with a disk tier,
   * in another worker) for at most `timeoutMs`.
   */
  async lock(
    key: string,
    variant: string,
    timeoutMs: number,
    lockAgeMs: number,
  ): Promise<LockResult> {
    const id = `${key}\u0000${variant}`;
    const local = this.#locks.get(id);
    if (local !== undefined) {
      this.stats.collapsed++;
      const timedOut = await withTimeout(local.promise, timeoutMs);
      return { leader: false, timedOut };
    }
    if (this.disk !== undefined && !this.disk.tryLock(key, variant, lockAgeMs)) {
      this.stats.collapsed++;
      return { leader: false, timedOut: await this.#waitForeign(key, variant, id, timeoutMs) };
    }
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.#locks.set(id, { promise, resolve });
    let released = false;
    return {
      leader: true,
      release: () => {
        if (released) return;
        released = true;
        this.#locks.delete(id);
        this.disk?.unlock(key, variant);
        resolve();
      },
    };
  }

  /** Wait for another worker's fill: its `filled` message, the lock file going, or the timeout. */
  async #waitForeign(
    key: string,
    variant: string,
    id: string,
    timeoutMs: number,
  ): Promise<boolean> {
    // Requests of this worker for the same slot wait behind this one.
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.#locks.set(id, { promise, resolve });
    const wakers = this.#wakers.get(id) ?? new Set<() => void>();
    this.#wakers.set(id, wakers);
    const deadline = Date.now() + timeoutMs;
    let timedOut = false;
    try {
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) {
          timedOut = true;
          break;
        }
        let wake!: () => void;
        const woken = new Promise<void>((r) => {
          wake = r;
        });
        wakers.add(wake);
        await withTimeout(woken, Math.min(100, left));
        wakers.delete(wake);
        if (!this.disk!.isLocked(key, variant)) break;
      }
    } finally {
      wakers.clear();
      this.#wakers.delete(id);
      this.#locks.delete(id);
      resolve();
    }
    return timedOut;
  }

  async deleteKey(key: string, broadcast = true): Promise<number> {
    let n = this.memory.delete(key);
    if (this.disk) n = Math.max(n, await this.disk.delete(key));
    if (broadcast) await this.#bus?.broadcast({ t: "delete", key }, true);
    return n;
  }

  async invalidateKey(key: string, at = Date.now()): Promise<number> {
    let n = this.memory.invalidate(key, at);
    if (this.disk) n = Math.max(n, await this.disk.invalidate(key, at));
    await this.#bus?.broadcast({ t: "invalidate", key, at }, true);
    return n;
  }

  async deleteTag(tag: string): Promise<number> {
    let n = this.memory.deleteTag(tag);
    if (this.disk) n = Math.max(n, await this.disk.deleteTag(tag));
    await this.#bus?.broadcast({ t: "deleteTag", tag }, true);
    return n;
  }

  async invalidateTag(tag: string, at = Date.now()): Promise<number> {
    let n = this.memory.invalidateTag(tag, at);
    if (this.disk) n = Math.max(n, await this.disk.invalidateTag(tag, at));
    await this.#bus?.broadcast({ t: "invalidateTag", tag, at }, true);
    return n;
  }
}

/** Resolve to true when `ms` passed before `p` settled. */
function withTimeout(p: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(true), ms);
    void p.then(() => {
      clearTimeout(t);
      resolve(false);
    });
  });
}
