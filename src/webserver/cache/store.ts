/**
 * What a cache store holds, and the small interface every tier implements (undici's cache store
 * idea: a few methods, any backing).
 *
 * A stored response lives in a *slot*: its primary key (the location's key template, e.g.
 * `http://example.com/a?b`) and a variant id. A response without `Vary` sits in variant "".
 * A response with `Vary` leaves a *vary record* in variant "" naming the fields it varies on,
 * and sits in the variant computed from the request's values of those fields (nginx's secondary
 * key): a lookup reads variant "" first, and follows a vary record to the variant.
 */
import type { Freshness } from "./semantics.ts";

export interface ResponseRecord {
  readonly kind: "response";
  readonly key: string;
  readonly variant: string;
  readonly status: number;
  /** Response fields, `[name, value, ...]`, as stored (no hop-by-hop, no Set-Cookie). */
  readonly fields: string[];
  freshness: Freshness;
  /** Surrogate keys (Surrogate-Key / Cache-Tag), plus `url:<effective URL>` for purge by URL. */
  readonly tags: string[];
  readonly body: Buffer;
}

export interface VaryRecord {
  readonly kind: "vary";
  readonly key: string;
  readonly variant: "";
  /** The Vary field names, lowercase, sorted. */
  readonly names: string[];
}

export type StoreRecord = ResponseRecord | VaryRecord;

/** A tier of storage. Methods may be sync or async; the zone awaits them all. */
export interface CacheStore {
  get(key: string, variant: string): StoreRecord | undefined | Promise<StoreRecord | undefined>;
  put(record: StoreRecord): void | Promise<void>;
  /** Remove every variant of `key`; resolves to how many records went. */
  delete(key: string): number | Promise<number>;
  /** Mark every variant of `key` stale at `at` (ms); resolves to how many. */
  invalidate(key: string, at: number): number | Promise<number>;
  deleteTag(tag: string): number | Promise<number>;
  invalidateTag(tag: string, at: number): number | Promise<number>;
  close(): void | Promise<void>;
}

/** Bytes a record costs in memory, roughly. */
export function recordSize(r: StoreRecord): number {
  if (r.kind === "vary") return 64 + r.key.length + r.names.join().length;
  let n = 256 + r.key.length * 2 + r.body.length;
  for (const s of r.fields) n += s.length;
  for (const t of r.tags) n += t.length * 2 + 32;
  return n;
}

/** The tag every record gets from its effective URL, so purge by URL finds every key and variant. */
export function urlTag(url: string): string {
  return `url:${url}`;
}

/** A URL as the purge-by-URL tag spells it: `new URL`'s host (default port dropped), path, query. */
export function normalizeUrl(url: string, base?: string): string {
  try {
    const u = new URL(url, base);
    return `${u.protocol}//${u.host}${u.pathname}${u.search}`;
  } catch {
    return url;
  }
}
