/**
 * The cache module: an RFC 9111 shared cache around a location's content handler (normally the
 * proxy), through `wrapContent`, so it depends on no other module: whatever answers the
 * location is what it stores.
 *
 * For a request of a cached method it computes the key, finds the stored response (zone.ts:
 * memory, then disk, then the Vary variant), and decides with semantics.ts: fresh -> HIT;
 * stale but allowed (`max-stale`) -> STALE; within stale-while-revalidate -> UPDATING (served,
 * one background refresh per key); else a conditional request to the inner handler -> 304
 * merged -> REVALIDATED, or a new response -> EXPIRED; an upstream failure with stale-if-error
 * allowed -> STALE. Without a stored response it takes the key's fill lock (request
 * collapsing), fetches, stores when the rules allow -> MISS. Cache-Status (RFC 9211) says which,
 * and `$upstream_cache_status` / `X-Cache-Status` in nginx's words.
 *
 * The fill request is the client's with its conditionals and Range removed (the cache wants the
 * whole response, and answers Range and conditionals itself from it), HEAD turned into GET,
 * and a signal of its own: a client that goes away does not abort a fill others wait for.
 *
 * A successful unsafe request (POST, PUT, DELETE, PATCH...: status below 400) invalidates the
 * stored responses of its URI and of same-host `Location`/`Content-Location` (§4.4).
 *
 * A location with `cacheAdmin` is instead the admin endpoint of its zone (purge.ts).
 */
import { channel } from "node:diagnostics_channel";
import { accessSync, constants, statSync } from "node:fs";
import { dirname } from "node:path";
import { isMainThread } from "node:worker_threads";
import { type CacheValid, cacheFields } from "../../config/settings/web/cache.ts";
import { Fields, type RequestBody, type WebRequest, type WebResponse } from "../exchange.ts";
import type { ContentHandler, LocationScope, Reroute, WebModule } from "../module.ts";
import { discardBody, takeBody } from "./body.ts";
import { adminHandler } from "./purge.ts";
import {
  analyzeResponse,
  clientNotModified,
  currentAge,
  evaluateRequest,
  isUnsafe,
  mergeNotModified,
  notModifiedMatches,
  type RuleRequest,
  requestDirectives,
  revalidationFields,
  staleIfErrorAllowed,
  timeToLive,
} from "./semantics.ts";
import { normalizeUrl, type ResponseRecord, urlTag } from "./store.ts";
import {
  compileTemplate,
  sourceForUri,
  sourceOf,
  type Template,
  type TemplateSource,
  truthy,
} from "./template.ts";
import { type LockResult, type Lookup, variantOf, Zone } from "./zone.ts";

interface Settings {
  cache?: boolean;
  cacheZone?: string;
  cacheDir?: string;
  cacheMemorySize?: number;
  cacheMaxSize?: number;
  cacheMaxEntrySize?: number;
  cacheInactive?: number;
  cacheKey?: string;
  cacheMethods?: string[];
  cacheMinUses?: number;
  cacheBypass?: string[];
  cacheNoStore?: string[];
  cacheValid?: CacheValid;
  cacheIgnoreHeaders?: string[];
  cacheStaleWhileRevalidate?: number;
  cacheStaleIfError?: number;
  cacheLock?: boolean;
  cacheLockTimeout?: number;
  cacheLockAge?: number;
  cacheTagHeaders?: string[];
  cacheStatusHeader?: boolean;
  cacheXStatusHeader?: boolean;
  cacheAdmin?: { token: string };
}

/** nginx's `$upstream_cache_status` values. */
export type CacheStatus =
  | "HIT"
  | "MISS"
  | "EXPIRED"
  | "STALE"
  | "UPDATING"
  | "REVALIDATED"
  | "BYPASS";

interface LocationCache {
  zone: Zone;
  key: Template;
  methods: Set<string>;
  minUses: number;
  bypass: Template[];
  noStore: Template[];
  valid: CacheValid | undefined;
  ignore: Set<string>;
  swr: number;
  sie: number;
  lock: boolean;
  lockTimeoutMs: number;
  lockAgeMs: number;
  tagHeaders: string[];
  statusHeader: boolean;
  xStatusHeader: boolean;
  maxEntrySize: number;
  stats: Record<string, number> | undefined;
  /** Aborted when the pipeline closes: background refreshes and fills stop. */
  closing: AbortSignal;
  /** Keys with a background refresh running (one per key). */
  refreshing: Set<string>;
}

interface ZoneSpec {
  dir: string | undefined;
  memorySize: number;
  maxSize: number;
  inactive: number;
}

const DEFAULT_KEY = "$scheme://$host$request_uri";

/**
 * `brigade.cache` (node:diagnostics_channel): `{ zone, status, method, path, cacheStatus }` for
 * every response through a cached location (`status`: nginx's word, or undefined for a method
 * not cached); purges publish `{ zone, purge, count }` from purge.ts.
 */
export const cacheChannel = channel("brigade.cache");
const errorStatuses = new Set([500, 502, 503, 504]);

const isReroute = (r: WebResponse | Reroute): r is Reroute => "reroute" in r;

/** The zone of a location, shared by the locations of one pipeline that name it. */
async function zoneFor(
  scope: LocationScope<Settings>,
  name: string,
  spec: ZoneSpec,
): Promise<Zone | undefined> {
  const shared = scope.shared;
  const id = `zone:${name}`;
  const known = shared.get(`${id}:spec`) as ZoneSpec | undefined;
  if (known !== undefined) {
    for (const [k, setting] of [
      ["dir", "cacheDir"],
      ["memorySize", "cacheMemorySize"],
      ["maxSize", "cacheMaxSize"],
      ["inactive", "cacheInactive"],
    ] as const) {
      if (known[k] !== spec[k]) {
        throw new Error(
          `${setting}: cache zone "${name}" is used with ${JSON.stringify(known[k])} elsewhere and ${JSON.stringify(spec[k])} here; locations sharing a zone share its storage (set it once on the server, or name another cacheZone)`,
        );
      }
    }
  } else shared.set(`${id}:spec`, spec);
  if (!scope.serving) return undefined;
  let pending = shared.get(id) as Promise<Zone> | undefined;
  if (pending === undefined) {
    pending = (async () => {
      const zone = new Zone({
        name,
        memorySize: spec.memorySize,
        dir: spec.dir,
        maxSize: spec.maxSize,
        inactive: spec.inactive,
        groupId: "",
      });
      // Workers of one server share the zone: one master (the parent of process workers, the
      // process of thread workers), or one cache directory.
      const group = spec.dir ?? String(isMainThread ? process.ppid : process.pid);
      try {
        await zone.openBus(group);
      } catch (error) {
        scope.logger.warn("cache: cannot open the worker channel; purges reach this worker only", {
          zone: name,
          error,
        });
      }
      return zone;
    })();
    shared.set(id, pending);
    scope.onClose(async () => {
      await (await pending!).close();
    });
  }
  return pending;
}

export const cacheModule: WebModule<Settings> = {
  name: "cache",
  doc: "An RFC 9111 shared cache around the location's content handler: memory and disk tiers, request collapsing, stale-while-revalidate, stale-if-error, purge.",
  fields: cacheFields,
  variables: ["upstream_cache_status"],
  async setup(scope) {
    const s = scope.settings;
    const admin = scope.own.cacheAdmin as Settings["cacheAdmin"];
    // A disk directory turns the cache on (`--cache-dir DIR`), unless `cache: false`.
    const on = s.cache ?? s.cacheDir !== undefined;
    if (!on && admin === undefined) return undefined;
    const spec: ZoneSpec = {
      dir: s.cacheDir === undefined ? undefined : scope.resolvePath(s.cacheDir),
      memorySize: s.cacheMemorySize ?? 64 * 1024 * 1024,
      maxSize: s.cacheMaxSize ?? 1024 * 1024 * 1024,
      inactive: s.cacheInactive ?? 600,
    };
    // Unnamed, locations share storage exactly when their storage settings agree; a named zone
    // must be given the same settings wherever it is used.
    const zoneName =
      s.cacheZone ??
      (spec.dir === undefined && spec.memorySize === 64 * 1024 * 1024
        ? "default"
        : `default ${JSON.stringify(spec)}`);
    if (spec.dir !== undefined) {
      const bad = unwritable(spec.dir);
      if (bad !== undefined) throw new Error(`cacheDir: ${bad}`);
    }
    if (spec.memorySize === 0 && spec.dir === undefined) {
      throw new Error(
        "cacheMemorySize: 0 leaves the cache no storage; set cacheDir or a memory size",
      );
    }
    const compile = (t: string, setting: string): Template => {
      try {
        // Also through the pipeline's compiler, only so that it knows which module variables
        // are used ($upstream_status in cacheNoStore): modules skip those nobody reads.
        try {
          scope.template(t);
        } catch {
          // names only the cache's templates know
        }
        return compileTemplate(t);
      } catch (e) {
        throw new Error(`${setting}: ${(e as Error).message}`);
      }
    };
    const key = compile(s.cacheKey ?? DEFAULT_KEY, "cacheKey");
    const bypass = (s.cacheBypass ?? []).map((t) => compile(t, "cacheBypass"));
    const noStore = (s.cacheNoStore ?? []).map((t) => compile(t, "cacheNoStore"));
    const zone = await zoneFor(scope, zoneName, spec);
    if (admin !== undefined) {
      return zone === undefined ? {} : { content: adminHandler(zone, admin.token) };
    }
    if (zone === undefined) return {};
    const closing = new AbortController();
    scope.onClose(() => closing.abort());
    const cfg: LocationCache = {
      zone,
      key,
      methods: new Set(s.cacheMethods ?? ["GET", "HEAD"]),
      minUses: s.cacheMinUses ?? 1,
      bypass,
      noStore,
      valid: s.cacheValid,
      ignore: new Set(s.cacheIgnoreHeaders ?? []),
      swr: s.cacheStaleWhileRevalidate ?? 0,
      sie: s.cacheStaleIfError ?? 0,
      lock: s.cacheLock ?? true,
      lockTimeoutMs: (s.cacheLockTimeout ?? 5) * 1000,
      lockAgeMs: (s.cacheLockAge ?? 5) * 1000,
      tagHeaders: s.cacheTagHeaders ?? ["surrogate-key", "cache-tag"],
      statusHeader: s.cacheStatusHeader ?? true,
      xStatusHeader: s.cacheXStatusHeader ?? false,
      maxEntrySize: s.cacheMaxEntrySize ?? 8 * 1024 * 1024,
      stats: scope.services.get("stats") as Record<string, number> | undefined,
      closing: closing.signal,
      refreshing: new Set(),
    };
    return { wrapContent: (inner) => cached(cfg, inner) };
  },
};

export default cacheModule;

/** Why `dir` cannot hold the disk tier (checked without creating anything), or undefined. */
function unwritable(dir: string): string | undefined {
  let probe = dir;
  for (;;) {
    try {
      const st = statSync(probe);
      if (!st.isDirectory()) return `${probe} is not a directory`;
      accessSync(probe, constants.W_OK | constants.X_OK);
      return undefined;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") {
        return `cannot write ${probe} (${code ?? (e as Error).message})`;
      }
    }
    const parent = dirname(probe);
    if (parent === probe) return `no directory on the way to ${dir}`;
    probe = parent;
  }
}

/** A request like `req` for the inner handler (fields, method or signal changed). */
function derive(
  req: WebRequest,
  fields: Fields,
  method: string,
  signal: AbortSignal,
  detached: boolean,
): WebRequest {
  return {
    method,
    target: req.target,
    httpVersion: req.httpVersion,
    fields,
    host: req.host,
    scheme: req.scheme,
    connection: req.connection,
    path: req.path,
    query: req.query,
    body: detached ? emptyBody : req.body,
    signal,
    clientGone: signal,
    get aborted() {
      return signal.aborted;
    },
    startTime: req.startTime,
    id: req.id,
    vars: detached ? new Map(req.vars) : req.vars,
    canTakeover: false,
  };
}

const emptyBody: RequestBody = {
  length: 0,
  empty: true,
  consumed: false,
  stream: () => {
    throw new Error("no body");
  },
  buffer: async () => Buffer.alloc(0),
  discard: async () => {},
};

/** The request fields for a fill: without the client's conditionals and Range. */
function fillFields(fields: Fields): Fields {
  const out = fields.clone();
  for (const n of [
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "range",
  ]) {
    out.delete(n);
  }
  return out;
}

/** The request's URL, normalised as `new URL` does (default port dropped): the purge-by-URL tag. */
function effectiveUrl(src: TemplateSource): string {
  return normalizeUrl(src.requestUri, `${src.scheme}://${src.authority}`);
}

function tagsOf(cfg: LocationCache, fields: Fields): string[] {
  const tags: string[] = [];
  for (const h of cfg.tagHeaders) {
    for (const v of fields.getAll(h)) for (const t of v.split(/[\s,]+/)) if (t !== "") tags.push(t);
  }
  return [...new Set(tags)];
}

function count(cfg: LocationCache, status: CacheStatus): void {
  const z = cfg.zone.stats;
  switch (status) {
    case "HIT":
      z.hits++;
      break;
    case "MISS":
      z.misses++;
      break;
    case "EXPIRED":
      z.expired++;
      break;
    case "STALE":
      z.stale++;
      break;
    case "UPDATING":
      z.updating++;
      break;
    case "REVALIDATED":
      z.revalidated++;
      break;
    case "BYPASS":
      z.bypass++;
      break;
  }
  if (cfg.stats !== undefined) {
    const k =
      status === "HIT" || status === "STALE" || status === "UPDATING" || status === "REVALIDATED"
        ? "cacheHits"
        : "cacheMisses";
    cfg.stats[k] = (cfg.stats[k] ?? 0) + 1;
  }
}

/** Label the response: Cache-Status, X-Cache-Status, `$upstream_cache_status`, counters. */
function label(
  cfg: LocationCache,
  req: WebRequest,
  res: WebResponse,
  status: CacheStatus | undefined,
  detail: string,
): WebResponse {
  if (status !== undefined) {
    count(cfg, status);
    req.vars.set("upstream_cache_status", status);
    if (cfg.xStatusHeader) res.fields.set("x-cache-status", status);
  }
  if (cfg.statusHeader) res.fields.append("cache-status", `brigade; ${detail}`);
  if (cacheChannel.hasSubscribers) {
    cacheChannel.publish({
      zone: cfg.zone.name,
      status,
      method: req.method,
      path: req.path,
      cacheStatus: `brigade; ${detail}`,
    });
  }
  return res;
}

/** The response for a stored record: its fields, Age, our 304 to a client's conditional. */
function fromRecord(req: WebRequest, rec: ResponseRecord): WebResponse {
  // The stored fields with our Age in place of any stored one, in one pass (a hit's main cost).
  const stored = rec.fields;
  const list: string[] = [];
  for (let i = 0; i < stored.length; i += 2) {
    const name = stored[i]!;
    if (name !== "age") list.push(name, stored[i + 1]!);
  }
  list.push("age", String(Math.floor(currentAge(rec.freshness))));
  const fields = new Fields(list);
  if (rec.status === 200 && clientNotModified(req.fields, fields)) {
    const keep = new Fields();
    for (const [k, v] of fields) {
      if (
        [
          "cache-control",
          "content-location",
          "date",
          "etag",
          "expires",
          "vary",
          "age",
          "last-modified",
        ].includes(k)
      ) {
        keep.append(k, v);
      }
    }
    return { status: 304, fields: keep, body: { kind: "empty" } };
  }
  // A stored body is never changed (a new response is a new record): the engine may keep its
  // bytes with the head for the next hit (`shared`).
  return withRange(req, {
    status: rec.status,
    fields,
    body: { kind: "bytes", data: rec.body, shared: true },
  });
}

/**
 * A single byte range of a whole stored 200 (RFC 9110 §14): the cache fetched the whole
 * response, so it answers the client's Range itself (nginx's range filter does this for cached
 * responses). `If-Range` must match the ETag (strong) or the Last-Modified date exactly, else
 * the whole response goes; several ranges get the whole response too (allowed); a range past
 * the end gets 416.
 */
export function withRange(req: WebRequest, res: WebResponse): WebResponse {
  if (res.status !== 200 || res.body.kind !== "bytes") return res;
  if (!res.fields.has("accept-ranges")) res.fields.append("accept-ranges", "bytes");
  const range = req.fields.get("range");
  if (range === undefined || (req.method !== "GET" && req.method !== "HEAD")) return res;
  const ifRange = req.fields.get("if-range");
  if (ifRange !== undefined) {
    const etag = res.fields.get("etag");
    const lm = res.fields.get("last-modified");
    const ok =
      ifRange.trim().startsWith('"') || ifRange.trim().startsWith("W/")
        ? etag !== undefined && !etag.startsWith("W/") && etag === ifRange.trim()
        : lm !== undefined && lm === ifRange.trim();
    if (!ok) return res;
  }
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(range);
  if (m === null || (m[1] === "" && m[2] === "")) return res;
  const data = res.body.data;
  const size = typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
  let start: number;
  let end: number;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) {
    const fields = res.fields.clone();
    fields.set("content-range", `bytes */${size}`);
    fields.delete("content-type");
    return { status: 416, fields, body: { kind: "empty" } };
  }
  const buf =
    typeof data === "string"
      ? Buffer.from(data)
      : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  res.fields.set("content-range", `bytes ${start}-${end}/${size}`);
  return {
    status: 206,
    fields: res.fields,
    body: { kind: "bytes", data: buf.subarray(start, end + 1) },
  };
}

const ttlText = (rec: ResponseRecord): string => `ttl=${Math.round(timeToLive(rec.freshness))}`;

/**
 * The location's content handler. A fresh response in the memory tier (the common hit) is
 * answered synchronously: no promise, no microtask (the pipeline writes it in the read's turn);
 * everything else (a disk-tier lookup, a miss, a stale or uncached response) goes on in
 * {@link cachedAsync}, which decides the same way.
 */
function cached(cfg: LocationCache, inner: ContentHandler): ContentHandler {
  return (req) => {
    const method = req.method;
    if (!cfg.methods.has(method)) {
      if (!isUnsafe(method)) return inner(req);
      return unsafeRequest(cfg, inner, req);
    }
    const src = sourceOf(req);
    const key = method === "POST" ? `${cfg.key(src)}\u0000POST` : cfg.key(src);
    const reqCC = requestDirectives(req.fields);
    if (cfg.bypass.some((t) => truthy(t(src)))) return bypass(cfg, inner, req, src, key);
    const hit = cfg.zone.lookupMemory(key, req.fields);
    if (hit !== undefined) {
      const rec = hit.found;
      const decision = evaluateRequest(
        rec.freshness,
        req.fields,
        { staleWhileRevalidate: cfg.swr },
        reqCC,
      );
      if (decision.use === "fresh") {
        return label(cfg, req, fromRecord(req, rec), "HIT", `hit; ${ttlText(rec)}`);
      }
      return cachedAsync(cfg, inner, req, src, key, reqCC, hit);
    }
    return cachedAsync(cfg, inner, req, src, key, reqCC, undefined);
  };
}

async function unsafeRequest(
  cfg: LocationCache,
  inner: ContentHandler,
  req: WebRequest,
): Promise<WebResponse | Reroute> {
  const res = await inner(req);
  if (!isReroute(res)) {
    if (res.status < 400) await invalidateAfterUnsafe(cfg, req, res);
    label(cfg, req, res, undefined, "fwd=method");
  }
  return res;
}

async function bypass(
  cfg: LocationCache,
  inner: ContentHandler,
  req: WebRequest,
  src: TemplateSource,
  key: string,
): Promise<WebResponse | Reroute> {
  const out = await fill(cfg, inner, req, src, key, undefined, true);
  return isReroute(out.res)
    ? out.res
    : label(cfg, req, out.res, "BYPASS", `fwd=bypass${out.stored ? "; stored" : ""}`);
}

/** The cache's decision when the memory tier alone did not settle it (`first`: what it found). */
async function cachedAsync(
  cfg: LocationCache,
  inner: ContentHandler,
  req: WebRequest,
  src: TemplateSource,
  key: string,
  reqCC: ReturnType<typeof requestDirectives>,
  first: Lookup | undefined,
): Promise<WebResponse | Reroute> {
  let look = first ?? (await cfg.zone.lookup(key, req.fields));
  let collapsedTimeout = false;
  for (let round = 0; ; round++) {
    const rec = look.found;
    if (rec !== undefined) {
      const decision = evaluateRequest(
        rec.freshness,
        req.fields,
        { staleWhileRevalidate: cfg.swr },
        reqCC,
      );
      if (decision.use === "fresh") {
        return label(cfg, req, fromRecord(req, rec), "HIT", `hit; ${ttlText(rec)}`);
      }
      if (decision.use === "stale") {
        return label(
          cfg,
          req,
          fromRecord(req, rec),
          "STALE",
          `hit; ${ttlText(rec)}; detail=max-stale`,
        );
      }
      if (decision.use === "stale-while-revalidate") {
        backgroundRefresh(cfg, inner, req, src, key, rec);
        return label(
          cfg,
          req,
          fromRecord(req, rec),
          "UPDATING",
          `hit; ${ttlText(rec)}; detail=stale-while-revalidate`,
        );
      }
      if (decision.use === "revalidate") {
        if (reqCC.map.has("only-if-cached")) return onlyIfCachedMiss(cfg, req);
        const c = await collapse(cfg, key, look, req, cfg.lock && round === 0);
        if ("again" in c) {
          // Someone else validated meanwhile: use what they stored, if it is usable now.
          look = c.again;
          collapsedTimeout = c.timedOut ?? collapsedTimeout;
          continue;
        }
        const lock = c.lock;
        try {
          const out = await fill(cfg, inner, req, src, key, rec, !collapsedTimeout);
          if (isReroute(out.res)) return out.res;
          const why = decision.why === "request" ? "request" : "stale";
          const st = out.staleServed ? "STALE" : out.revalidated ? "REVALIDATED" : "EXPIRED";
          const detail = out.staleServed
            ? `fwd=${why}; fwd-status=${out.upstreamStatus}; ${ttlText(rec)}; detail=stale-if-error`
            : `fwd=${why}; fwd-status=${out.upstreamStatus}${out.stored ? "; stored" : ""}`;
          return label(cfg, req, out.res, st, detail);
        } finally {
          lock?.release();
        }
      }
      // "no": a request with Authorization the stored response may not answer.
      const out = await fill(cfg, inner, req, src, key, undefined, true);
      return isReroute(out.res)
        ? out.res
        : label(cfg, req, out.res, "MISS", `fwd=request${out.stored ? "; stored" : ""}`);
    }
    if (reqCC.map.has("only-if-cached")) return onlyIfCachedMiss(cfg, req);
    const c = await collapse(cfg, key, look, req, cfg.lock && round === 0 && !collapsedTimeout);
    if ("again" in c) {
      look = c.again;
      collapsedTimeout = c.timedOut ?? collapsedTimeout;
      continue;
    }
    const lock = c.lock;
    try {
      // A request that waited in vain (timed out) goes on its own and stores nothing (nginx).
      const out = await fill(cfg, inner, req, src, key, undefined, !collapsedTimeout);
      if (isReroute(out.res)) return out.res;
      const fwd =
        look.found === undefined && "varyKnown" in look && look.varyKnown
          ? "vary-miss"
          : "uri-miss";
      return label(
        cfg,
        req,
        out.res,
        "MISS",
        `fwd=${fwd}; fwd-status=${out.upstreamStatus}${out.stored ? "; stored" : ""}`,
      );
    } finally {
      lock?.release();
    }
  }
}

/**
 * nginx's cache lock, for a fill of `look` (what the lookup found, or nothing): when `wanted`,
 * wait for the key's lock. The leader fills (`lock`, released by the caller) unless another fill
 * finished between its lookup and the lock; a waiter, and that leader, look again (`again`;
 * `timedOut` when a waiter's wait ran out, so that it goes on its own and stores nothing).
 */
async function collapse(
  cfg: LocationCache,
  key: string,
  look: Lookup,
  req: WebRequest,
  wanted: boolean,
): Promise<
  { again: Lookup; timedOut?: boolean } | { lock: (LockResult & { leader: true }) | undefined }
> {
  if (!wanted) return { lock: undefined };
  const lock = await cfg.zone.lock(key, look.variant, cfg.lockTimeoutMs, cfg.lockAgeMs);
  if (!lock.leader) {
    return { again: await cfg.zone.lookup(key, req.fields), timedOut: lock.timedOut };
  }
  const again = await cfg.zone.lookup(key, req.fields);
  if (again.found !== look.found) {
    lock.release();
    return { again };
  }
  return { lock };
}

function onlyIfCachedMiss(cfg: LocationCache, req: WebRequest): WebResponse {
  const res: WebResponse = {
    status: 504,
    fields: Fields.from({ "content-type": "text/plain" }),
    body: { kind: "bytes", data: "not in cache (only-if-cached)\n" },
  };
  return label(cfg, req, res, "MISS", "detail=only-if-cached");
}

interface FillResult {
  res: WebResponse | Reroute;
  stored: boolean;
  revalidated: boolean;
  staleServed: boolean;
  upstreamStatus: number | string;
}

/**
 * Ask the inner handler (validating `stale` when given), store what may be stored, and return
 * what the client gets.
 */
async function fill(
  cfg: LocationCache,
  inner: ContentHandler,
  req: WebRequest,
  src: TemplateSource,
  key: string,
  stale: ResponseRecord | undefined,
  store: boolean,
  detached = false,
): Promise<FillResult> {
  const fields = stale
    ? revalidationFields(req.fields, new Fields([...stale.fields]))
    : fillFields(req.fields);
  const method = req.method === "HEAD" ? "GET" : req.method;
  const signal = cfg.closing;
  let res: WebResponse | Reroute | undefined;
  let error: unknown;
  try {
    res = await inner(derive(req, fields, method, signal, detached));
  } catch (e) {
    error = e;
  }
  if (res !== undefined && isReroute(res)) {
    return { res, stored: false, revalidated: false, staleServed: false, upstreamStatus: 0 };
  }
  const failed = res === undefined || errorStatuses.has(res.status);
  if (failed && stale !== undefined && staleIfErrorAllowed(stale.freshness, cfg.sie)) {
    if (res !== undefined) discardBody(res.body);
    const st = res?.status ?? (error as { status?: number } | undefined)?.status ?? "error";
    return {
      res: fromRecord(req, stale),
      stored: false,
      revalidated: false,
      staleServed: true,
      upstreamStatus: st,
    };
  }
  if (res === undefined) throw error;
  const ruleReq: RuleRequest = { method, fields: req.fields, url: src.requestUri };

  if (res.status === 304 && stale !== undefined) {
    if (notModifiedMatches(new Fields([...stale.fields]), res.fields)) {
      discardBody(res.body);
      const merged = mergeNotModified(new Fields([...stale.fields]), res.fields);
      const a = analyzeResponse(ruleReq, stale.status, merged, analyzeOptions(cfg));
      if (a.storable && store) {
        const rec: ResponseRecord = {
          ...stale,
          fields: [...a.fields.list],
          freshness: a.freshness,
        };
        await cfg.zone.update(rec);
        return {
          res: fromRecord(req, rec),
          stored: true,
          revalidated: true,
          staleServed: false,
          upstreamStatus: 304,
        };
      }
      await cfg.zone.deleteKey(key);
      const rec: ResponseRecord = {
        ...stale,
        fields: [...merged.list],
        freshness: { ...stale.freshness, initialAge: 0, responseTime: Date.now() },
      };
      return {
        res: fromRecord(req, rec),
        stored: false,
        revalidated: true,
        staleServed: false,
        upstreamStatus: 304,
      };
    }
    // A 304 for another representation: ask again, unconditionally.
    discardBody(res.body);
    return fill(cfg, inner, req, src, key, undefined, store, detached);
  }

  const upstreamStatus = res.status;
  const tags = tagsOf(cfg, res.fields);
  const a =
    store && !cfg.noStore.some((t) => truthy(t(src)))
      ? analyzeResponse(ruleReq, res.status, res.fields, analyzeOptions(cfg))
      : ({ storable: false, reason: "not stored here" } as const);
  // The client sees neither our tags nor the app's X-Accel-Expires (nginx hides it too).
  for (const h of cfg.tagHeaders) res.fields.delete(h);
  res.fields.delete("x-accel-expires");
  if (!a.storable || !cfg.zone.used(key, cfg.minUses)) {
    // A validation answered with a full response we may not store: the stored one is obsolete.
    if (stale !== undefined && store && !errorStatuses.has(res.status))
      await cfg.zone.deleteKey(key);
    return { res, stored: false, revalidated: false, staleServed: false, upstreamStatus };
  }
  const taken = await takeBody(res.body, cfg.maxEntrySize);
  if ("tooBig" in taken) {
    return {
      res: { ...res, body: taken.tooBig },
      stored: false,
      revalidated: false,
      staleServed: false,
      upstreamStatus,
    };
  }
  const variant = a.freshness.vary.length > 0 ? variantOf(a.freshness.vary, req.fields) : "";
  const rec: ResponseRecord = {
    kind: "response",
    key,
    variant,
    status: res.status,
    fields: withoutTags(cfg, a.fields),
    freshness: a.freshness,
    tags: [...tags, urlTag(effectiveUrl(src))],
    body: taken.bytes,
  };
  await cfg.zone.store(rec, a.freshness.vary);
  res.body = { kind: "bytes", data: taken.bytes };
  return {
    res: withRange(req, res),
    stored: true,
    revalidated: false,
    staleServed: false,
    upstreamStatus,
  };
}

function withoutTags(cfg: LocationCache, fields: Fields): string[] {
  for (const h of cfg.tagHeaders) fields.delete(h);
  return [...fields.list];
}

function analyzeOptions(cfg: LocationCache) {
  const valid = cfg.valid;
  return {
    ignore: cfg.ignore,
    keepStale: cfg.swr > 0 || cfg.sie > 0,
    defaultLifetime:
      valid === undefined ? undefined : (status: number) => valid[String(status)] ?? valid.any,
  };
}

/** Refresh a stale record in the background, once per key at a time (stale-while-revalidate). */
function backgroundRefresh(
  cfg: LocationCache,
  inner: ContentHandler,
  req: WebRequest,
  src: TemplateSource,
  key: string,
  rec: ResponseRecord,
): void {
  const id = `${key}\u0000${rec.variant}`;
  if (cfg.refreshing.has(id)) return;
  cfg.refreshing.add(id);
  const bg = derive(req, req.fields.clone(), req.method, cfg.closing, true);
  void (async () => {
    const lock = await cfg.zone.lock(key, rec.variant, 0, cfg.lockAgeMs);
    if (!lock.leader) return; // another worker refreshes it
    try {
      const out = await fill(cfg, inner, bg, src, key, rec, true, true);
      if (!isReroute(out.res)) discardBody(out.res.body);
    } finally {
      lock.release();
    }
  })()
    .catch(() => {})
    .finally(() => cfg.refreshing.delete(id));
}

/** §4.4: after a successful unsafe request, its URI and same-host Location/Content-Location go. */
async function invalidateAfterUnsafe(
  cfg: LocationCache,
  req: WebRequest,
  res: WebResponse,
): Promise<void> {
  const src = sourceOf(req);
  const targets: TemplateSource[] = [{ ...src, method: "GET" }];
  const base = effectiveUrl(src);
  for (const h of ["location", "content-location"]) {
    const v = res.fields.get(h);
    if (v === undefined) continue;
    try {
      const u = new URL(v, base);
      if (u.host === new URL(base).host) targets.push(sourceForUri(src, u));
    } catch {
      // not a URI
    }
  }
  for (const t of targets) {
    await cfg.zone.deleteKey(cfg.key(t));
    await cfg.zone.deleteTag(urlTag(effectiveUrl(t)));
  }
}
