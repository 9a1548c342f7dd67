/**
 * The memory tier: a size-bounded LRU of records in one worker, with key and tag indexes.
 * A `Map` keeps insertion order, so a hit re-inserts its slot and eviction takes from the front.
 */
import { type CacheStore, recordSize, type StoreRecord } from "./store.ts";

interface Slot {
  record: StoreRecord;
  size: number;
}

const slotId = (key: string, variant: string): string => `${key}\u0000${variant}`;

export class MemoryStore implements CacheStore {
  readonly maxBytes: number;
  #bytes = 0;
  readonly #slots = new Map<string, Slot>();
  readonly #byKey = new Map<string, Set<string>>();
  readonly #byTag = new Map<string, Set<string>>();

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get size(): number {
    return this.#slots.size;
  }

  get(key: string, variant: string): StoreRecord | undefined {
    const id = slotId(key, variant);
    const slot = this.#slots.get(id);
    if (slot === undefined) return undefined;
    this.#slots.delete(id);
    this.#slots.set(id, slot);
    return slot.record;
  }

  put(record: StoreRecord): void {
    const size = recordSize(record);
    if (size > this.maxBytes) return;
    const id = slotId(record.key, record.variant);
    this.#remove(id);
    this.#slots.set(id, { record, size });
    this.#bytes += size;
    const ids = this.#byKey.get(record.key) ?? new Set<string>();
    this.#byKey.set(record.key, ids);
    ids.add(id);
    if (record.kind === "response") {
      for (const t of record.tags) {
        const tagged = this.#byTag.get(t) ?? new Set<string>();
        this.#byTag.set(t, tagged);
        tagged.add(id);
      }
    }
    for (const [oldest] of this.#slots) {
      if (this.#bytes <= this.maxBytes) break;
      this.#remove(oldest);
    }
  }

  delete(key: string): number {
    const ids = this.#byKey.get(key);
    if (ids === undefined) return 0;
    let n = 0;
    for (const id of [...ids]) if (this.#remove(id)) n++;
    return n;
  }

  invalidate(key: string, at: number): number {
    let n = 0;
    for (const id of this.#byKey.get(key) ?? []) if (this.#mark(id, at)) n++;
    return n;
  }

  deleteTag(tag: string): number {
    let n = 0;
    for (const id of [...(this.#byTag.get(tag) ?? [])]) if (this.#remove(id)) n++;
    return n;
  }

  invalidateTag(tag: string, at: number): number {
    let n = 0;
    for (const id of this.#byTag.get(tag) ?? []) if (this.#mark(id, at)) n++;
    return n;
  }

  close(): void {
    this.#slots.clear();
    this.#byKey.clear();
    this.#byTag.clear();
    this.#bytes = 0;
  }

  #mark(id: string, at: number): boolean {
    const r = this.#slots.get(id)?.record;
    if (r?.kind !== "response") return false;
    r.freshness = { ...r.freshness, invalidatedAt: at };
    return true;
  }

  #remove(id: string): boolean {
    const slot = this.#slots.get(id);
    if (slot === undefined) return false;
    this.#slots.delete(id);
    this.#bytes -= slot.size;
    const r = slot.record;
    const ids = this.#byKey.get(r.key);
    ids?.delete(id);
    if (ids?.size === 0) this.#byKey.delete(r.key);
    if (r.kind === "response") {
      for (const t of r.tags) {
        const tagged = this.#byTag.get(t);
        tagged?.delete(id);
        if (tagged?.size === 0) this.#byTag.delete(t);
      }
    }
    return true;
  }
}
