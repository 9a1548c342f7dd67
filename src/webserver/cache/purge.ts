/**
 * The cache admin endpoint of a zone (a location with `cacheAdmin`): purge by URL, key or tag,
 * deleting or (with `mode=invalidate`) marking stale, and the zone's counters. Every worker's
 * memory tier is purged before the answer (zone.ts broadcasts and waits for acknowledgements).
 *
 *   POST|PURGE ?url=http://host/path[&mode=invalidate]   every key and variant stored for it
 *   POST|PURGE ?key=KEY                                   one key (the key template's result)
 *   POST|PURGE ?tag=T                                     everything tagged T (Surrogate-Key, Cache-Tag)
 *   POST       { "url" | "key" | "tag" | "tags": [...], "mode": "delete" | "invalidate" }
 *   GET                                                   {"zone", "hits", "misses", ...}
 *
 * Requests carry `Authorization: Bearer TOKEN`; anything else gets 401.
 */
import { timingSafeEqual } from "node:crypto";
import { channel } from "node:diagnostics_channel";
import { Fields, type WebRequest, type WebResponse } from "../exchange.ts";
import type { ContentHandler } from "../module.ts";
import { normalizeUrl, urlTag } from "./store.ts";
import type { Zone } from "./zone.ts";

export interface PurgeOrder {
  url?: string[];
  key?: string[];
  tag?: string[];
  mode: "delete" | "invalidate";
}

function json(status: number, value: unknown, extra: Record<string, string> = {}): WebResponse {
  return {
    status,
    fields: Fields.from({
      "content-type": "application/json",
      "cache-control": "no-store",
      ...extra,
    }),
    body: { kind: "bytes", data: `${JSON.stringify(value)}\n` },
  };
}

function authorized(req: WebRequest, token: Buffer): boolean {
  const h = req.fields.get("authorization");
  const m = h === undefined ? null : /^Bearer\s+(.+)$/i.exec(h.trim());
  if (m === null) return false;
  const given = Buffer.from(m[1]!);
  return given.length === token.length && timingSafeEqual(given, token);
}

async function orderOf(req: WebRequest): Promise<PurgeOrder | string> {
  const q = new URLSearchParams(req.query);
  const order: PurgeOrder = { mode: "delete" };
  const add = (k: "url" | "key" | "tag", v: unknown): void => {
    if (typeof v === "string" && v !== "") order[k] = [...(order[k] ?? []), v];
  };
  for (const k of ["url", "key", "tag"] as const) for (const v of q.getAll(k)) add(k, v);
  let mode = q.get("mode") ?? undefined;
  if (!req.body.empty) {
    let body: unknown;
    try {
      body = JSON.parse((await req.body.buffer()).toString() || "{}");
    } catch {
      return "the body is not JSON";
    }
    if (typeof body !== "object" || body === null) return "the body is not a JSON object";
    const b = body as Record<string, unknown>;
    for (const k of ["url", "key", "tag"] as const) {
      const v = b[k];
      for (const x of Array.isArray(v) ? v : [v]) add(k, x);
    }
    if (Array.isArray(b.tags)) for (const t of b.tags) add("tag", t);
    if (typeof b.mode === "string") mode = b.mode;
  }
  if (mode !== undefined && mode !== "delete" && mode !== "invalidate") {
    return `mode is "delete" or "invalidate", found ${JSON.stringify(mode)}`;
  }
  order.mode = (mode as PurgeOrder["mode"] | undefined) ?? "delete";
  if (!order.url && !order.key && !order.tag) return "name what to purge: url, key or tag";
  return order;
}

/** Carry out a purge order on a zone; resolves to how many records went (or were marked). */
export async function purge(zone: Zone, order: PurgeOrder): Promise<number> {
  const inv = order.mode === "invalidate";
  const at = Date.now();
  let n = 0;
  for (const url of order.url ?? []) {
    const tag = urlTag(normalizeUrl(url));
    n += inv ? await zone.invalidateTag(tag, at) : await zone.deleteTag(tag);
  }
  for (const key of order.key ?? []) {
    n += inv ? await zone.invalidateKey(key, at) : await zone.deleteKey(key);
  }
  for (const tag of order.tag ?? []) {
    n += inv ? await zone.invalidateTag(tag, at) : await zone.deleteTag(tag);
  }
  zone.stats.purged += n;
  const ch = channel("brigade.cache");
  if (ch.hasSubscribers) ch.publish({ zone: zone.name, purge: order, count: n });
  return n;
}

export function adminHandler(zone: Zone, token: string): ContentHandler {
  const secret = Buffer.from(token);
  return async (req) => {
    if (!authorized(req, secret)) {
      if (!req.body.empty) await req.body.discard().catch(() => {});
      return json(
        401,
        { error: "unauthorized" },
        { "www-authenticate": 'Bearer realm="brigade cache"' },
      );
    }
    if (req.method === "GET" || req.method === "HEAD") {
      return json(200, {
        zone: zone.name,
        ...zone.stats,
        memoryBytes: zone.memory.bytes,
        memoryRecords: zone.memory.size,
        disk: zone.disk?.dir ?? null,
      });
    }
    if (req.method !== "POST" && req.method !== "PURGE" && req.method !== "DELETE") {
      return json(
        405,
        { error: "use GET, POST or PURGE" },
        { allow: "GET, HEAD, POST, PURGE, DELETE" },
      );
    }
    const order = await orderOf(req);
    if (typeof order === "string") return json(400, { error: order });
    const purged = await purge(zone, order);
    return json(200, { purged, mode: order.mode });
  };
}
