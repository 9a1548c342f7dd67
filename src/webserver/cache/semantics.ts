/**
 * The RFC 9111 rules of a shared cache: may this response be stored, for how long is it fresh,
 * may this stored response answer this request, and how does a 304 update it.
 *
 * The storability and freshness-lifetime rules come from `http-cache-semantics` (shared-cache
 * mode): method and status, `no-store` (request and response), `private`, `Authorization` with
 * `public`/`s-maxage`/`must-revalidate`, `s-maxage` over `max-age` over `Expires`, invalid
 * `Expires` as already expired, heuristic freshness (10% of Date - Last-Modified) for statuses
 * cacheable by default, `Age`. What it gets wrong, or does not do, is handled here (each is
 * tested in test/webserver/cache/semantics.test.ts):
 *
 * 1. `Cache-Control` is parsed case-sensitively and split on every comma (see cacheControl.ts);
 *    we hand it a normalised field, and a repeated `max-age`/`s-maxage` with different values
 *    makes the response stale (§4.2.1).
 * 2. `must-revalidate` makes its `evaluateRequest` refuse the stored response even while fresh;
 *    the RFC (§5.2.2.2) only forbids serving it *stale*. We do not use `evaluateRequest`.
 * 3. `proxy-revalidate` gives a freshness lifetime of 0 in shared mode; it is `must-revalidate`
 *    for shared caches (§5.2.2.8), nothing more.
 * 4. `s-maxage` also means `proxy-revalidate` (§5.2.2.10): no stale serving, even with a
 *    request's `max-stale`.
 * 5. A `no-cache` response is served stale under a request's `max-stale` or its own
 *    `stale-while-revalidate` there; it must always be validated (§5.2.2.4).
 * 6. It does not look at the *presented* request's `Authorization`: a response stored for an
 *    anonymous request would answer an authenticated one. We answer a request carrying
 *    `Authorization` from the cache only when the stored response allows it (`public`,
 *    `s-maxage`, `must-revalidate`), the same directives that allow storing one (§3.5).
 * 7. `only-if-cached` is not handled (the module answers 504, §5.2.1.7).
 * 8. A 304's new header fields are dropped when the stored response lacks them (it only
 *    replaces fields already present); §3.2 says add them too. We merge ourselves.
 * 9. Its response headers replace `Date` with the current time and fold repeated fields into
 *    one; we keep the stored fields as received (a stored response keeps its Date, §5.6.7 of
 *    RFC 9110) and add `Age`.
 * 10. It does not know `Age` may not be replaced by a stale 304 value: on merge we take the 304's
 *    `Age` and `Date` (or none), never the old ones.
 * 11. A request's `max-age=0` compares `age > 0`, so a response stored in the same millisecond
 *    is served; we take `max-age=0` as "validate" always (a reload), as Squid and Varnish do.
 *
 * Operator rules beside the RFC (nginx's): per-status lifetimes when the upstream gives no
 * explicit freshness (`proxy_cache_valid`, which also makes statuses such as 302 or 500
 * storable), `X-Accel-Expires`, ignoring chosen upstream fields, and `Set-Cookie` responses not
 * stored unless `set-cookie` is ignored (then stored *without* the Set-Cookie field, so a cached
 * copy never hands one client's cookie to another).
 */
import CachePolicy from "http-cache-semantics";
import type { Fields } from "../exchange.ts";
import { type Directives, formatCacheControl, parseCacheControl, seconds } from "./cacheControl.ts";

/** Fields never stored with a response (hop-by-hop, or the cache's own). */
const notStored = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "proxy-authenticate",
  "proxy-authentication-info",
  "set-cookie",
  "x-accel-expires",
]);

/** Fields a 304 does not update (the stored body's own description; §3.2). */
const notUpdated = new Set(["content-length", "content-encoding", "content-range", "content-type"]);

/** Everything the request rules need to know about a stored response, fixed when stored. */
export interface Freshness {
  /** When the response was received (ms since the epoch): RFC 9111 `response_time`. */
  responseTime: number;
  /** The response's age when received, seconds (its `Age`). */
  initialAge: number;
  /** Freshness lifetime, seconds. */
  lifetime: number;
  /** Never serve stale: `must-revalidate`, `proxy-revalidate`, `s-maxage`. */
  mustRevalidate: boolean;
  /** Validate before each use: a `no-cache` response. */
  noCache: boolean;
  /** The response's `stale-while-revalidate`, seconds. */
  swr: number | undefined;
  /** The response's `stale-if-error`, seconds. */
  sie: number | undefined;
  /** A request with `Authorization` may be answered from this response. */
  authOk: boolean;
  /** Vary field names (lowercase), empty when the response does not vary. */
  vary: string[];
  /** Purged in invalidate mode at this time (ms): stale from then. */
  invalidatedAt?: number | undefined;
}

/** The request as the rules see it. */
export interface RuleRequest {
  readonly method: string;
  readonly fields: Fields;
  /** The effective URI, only used to tell the library which request a response is for. */
  readonly url: string;
}

export interface AnalyzeOptions {
  /** Upstream fields ignored for caching (lowercase): cache-control, expires, x-accel-expires, set-cookie, vary. */
  ignore?: ReadonlySet<string>;
  /** Lifetime (seconds) for a status when the response gives no explicit freshness. */
  defaultLifetime?: (status: number) => number | undefined;
  /** The operator serves stale responses (stale-while-revalidate/-if-error windows): keep those without freshness too. */
  keepStale?: boolean;
  now?: number;
}

export type Analysis =
  | {
      storable: true;
      freshness: Freshness;
      /** The fields to store (hop-by-hop and Set-Cookie removed). */
      fields: Fields;
    }
  | { storable: false; reason: string };

/** `name: value` record for the library: repeated fields joined with ", " (set-cookie left out). */
function record(fields: Fields, skip?: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of fields) {
    if (skip?.has(k)) continue;
    out[k] = out[k] === undefined ? v : `${out[k]}, ${v}`;
  }
  return out;
}

/** The `Vary` names of a response, lowercase; `["*"]` for `Vary: *`. */
export function varyNames(fields: Fields): string[] {
  const v = fields.joined("vary");
  if (v === undefined) return [];
  const names = v
    .toLowerCase()
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  return names.includes("*") ? ["*"] : [...new Set(names)].sort();
}

/** The values a request presents for the Vary names (normalised whitespace; "" when absent). */
export function varyValues(names: readonly string[], fields: Fields): string[] {
  return names.map((n) => (fields.joined(n) ?? "\u0000").replace(/\s+/g, " ").trim());
}

const dateOf = (v: string | undefined): number | undefined => {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  return Number.isFinite(t) ? t : undefined;
};

/**
 * May `res` (to `req`) be stored, and with what freshness. Understood methods: GET, HEAD, and
 * POST with explicit freshness (the library's rule). `status` is the upstream's.
 */
export function analyzeResponse(
  req: RuleRequest,
  status: number,
  resFields: Fields,
  options: AnalyzeOptions = {},
): Analysis {
  const ignore = options.ignore ?? new Set<string>();
  const now = options.now ?? Date.now();
  const reqCC = parseCacheControl(req.fields.joined("cache-control"));
  if (reqCC.map.has("no-store")) return { storable: false, reason: "request no-store" };
  if (status === 206 || status === 304 || status < 200) {
    return { storable: false, reason: `status ${status}` };
  }
  if (resFields.has("set-cookie") && !ignore.has("set-cookie")) {
    return { storable: false, reason: "set-cookie" };
  }
  const vary = ignore.has("vary") ? [] : varyNames(resFields);
  if (vary[0] === "*") return { storable: false, reason: "vary *" };

  let cc: Directives = ignore.has("cache-control")
    ? parseCacheControl(undefined)
    : parseCacheControl(resFields.joined("cache-control"));
  const libCC = new Map(cc.map);
  // (3): proxy-revalidate is our mustRevalidate, not a zero lifetime.
  libCC.delete("proxy-revalidate");
  // Qualified no-cache/private ("set-cookie, x"): taken as unqualified, as §5.2.2.4/7 allow
  // (and the library would split the quoted list).
  for (const [k, v] of libCC) if (v !== true && v.includes(",")) libCC.set(k, true);
  if (cc.conflicting) {
    libCC.delete("s-maxage");
    libCC.set("max-age", "0");
  }
  const skip = new Set(["cache-control", "set-cookie", "vary"]);
  if (ignore.has("expires")) skip.add("expires");
  const libFields = record(resFields, skip);
  if (libCC.size > 0) libFields["cache-control"] = formatCacheControl(libCC);

  const explicit = libCC.has("s-maxage") || libCC.has("max-age") || libFields.expires !== undefined;
  let libStatus = status;
  let operatorLifetime: number | undefined;

  // X-Accel-Expires (nginx): the app's word to its proxy, over Cache-Control and Expires.
  const xae = ignore.has("x-accel-expires") ? undefined : resFields.get("x-accel-expires");
  if (xae !== undefined) {
    const t = xae.trim();
    if (/^@\d+$/.test(t)) operatorLifetime = Math.max(0, Number(t.slice(1)) - now / 1000);
    else if (/^\d+$/.test(t)) operatorLifetime = Number(t);
    if (operatorLifetime === 0) return { storable: false, reason: "x-accel-expires 0" };
    if (operatorLifetime !== undefined) {
      // nginx: X-Accel-Expires replaces Cache-Control and Expires for the cache (the app
      // addressing its own accelerator); Authorization and Vary still count.
      libCC.clear();
      cc = parseCacheControl(undefined);
    }
  }
  if (operatorLifetime === undefined && !explicit) {
    operatorLifetime = options.defaultLifetime?.(status);
  }
  if (operatorLifetime !== undefined) {
    // The library only knows RFC statuses; an operator lifetime makes any final status storable.
    libStatus = 200;
    libCC.delete("max-age");
    libCC.delete("s-maxage");
    delete libFields.expires;
    libFields["cache-control"] = formatCacheControl(libCC);
    libFields.expires = new Date(now + operatorLifetime * 1000).toUTCString();
    libFields.date = new Date(now).toUTCString();
  }
  if (libFields["cache-control"] === "") delete libFields["cache-control"];

  const policy = new CachePolicy(
    { method: req.method, url: req.url, headers: record(req.fields) },
    { status: libStatus, headers: libFields },
    { shared: true },
  );
  if (!policy.storable()) {
    return { storable: false, reason: storableReason(req, cc, status) };
  }

  let lifetime = cc.conflicting ? 0 : policy.maxAge();
  if (operatorLifetime !== undefined && !cc.map.has("no-cache")) lifetime = operatorLifetime;
  const sMaxage = cc.map.has("s-maxage");
  const freshness: Freshness = {
    responseTime: now,
    initialAge: ageValue(resFields.get("age")),
    lifetime,
    mustRevalidate: cc.map.has("must-revalidate") || cc.map.has("proxy-revalidate") || sMaxage,
    noCache: cc.map.has("no-cache"),
    swr: seconds(cc, "stale-while-revalidate"),
    sie: seconds(cc, "stale-if-error"),
    authOk: cc.map.has("public") || cc.map.has("must-revalidate") || sMaxage,
    vary,
  };
  const hasValidator = resFields.has("etag") || resFields.has("last-modified");
  if (
    freshness.lifetime <= 0 &&
    !hasValidator &&
    (freshness.swr ?? 0) <= 0 &&
    (freshness.sie ?? 0) <= 0 &&
    !options.keepStale
  ) {
    return { storable: false, reason: "no freshness and no validator" };
  }
  return { storable: true, freshness, fields: storedFields(resFields) };
}

function ageValue(v: string | undefined): number {
  return v !== undefined && /^\s*\d+\s*$/.test(v) ? Math.min(Number(v), 2 ** 31) : 0;
}

function storableReason(req: RuleRequest, cc: Directives, status: number): string {
  if (cc.map.has("no-store")) return "no-store";
  if (cc.map.has("private")) return "private";
  if (req.fields.has("authorization")) return "authorization";
  if (req.method !== "GET" && req.method !== "HEAD") return `method ${req.method}`;
  return `status ${status}`;
}

/** The response fields as stored: without hop-by-hop fields (and those `Connection` names). */
export function storedFields(fields: Fields): Fields {
  const out = fields.clone();
  for (const name of notStored) out.delete(name);
  const conn = fields.joined("connection");
  if (conn) for (const n of conn.split(",")) out.delete(n.trim().toLowerCase());
  return out;
}

/** How a stored response may be used for a request. */
export type Decision =
  /** Fresh: serve it. */
  | { use: "fresh" }
  /** Stale, and the client accepts that (`max-stale`). */
  | { use: "stale" }
  /** Stale within stale-while-revalidate: serve it and refresh in the background. */
  | { use: "stale-while-revalidate" }
  /** Must be validated with the origin first (`why` for Cache-Status). */
  | { use: "revalidate"; why: "stale" | "request" | "no-cache" }
  /** Not usable for this request at all (it carries Authorization). */
  | { use: "no" };

export interface RequestRules {
  /** Operator's stale-while-revalidate window when the response states none, seconds. */
  staleWhileRevalidate?: number;
  now?: number;
}

/** The stored response's current age, seconds. */
export function currentAge(f: Freshness, now = Date.now()): number {
  return f.initialAge + Math.max(0, now - f.responseTime) / 1000;
}

/** Seconds of freshness left (negative: stale for that long). Invalidation makes it stale. */
export function timeToLive(f: Freshness, now = Date.now()): number {
  const ttl = f.lifetime - currentAge(f, now);
  if (f.invalidatedAt === undefined) return ttl;
  return Math.min(ttl, (f.invalidatedAt - now) / 1000);
}

/** The request's own cache directives (and `Pragma: no-cache` when it sends no Cache-Control). */
export function requestDirectives(fields: Fields): Directives {
  const cc = fields.joined("cache-control");
  if (cc === undefined && /no-cache/i.test(fields.joined("pragma") ?? "")) {
    return parseCacheControl("no-cache");
  }
  return parseCacheControl(cc);
}

/** May `f` (already matched by key and Vary) answer a request with `fields`? */
export function evaluateRequest(
  f: Freshness,
  fields: Fields,
  rules: RequestRules = {},
  reqCC: Directives = requestDirectives(fields),
): Decision {
  if (fields.has("authorization") && !f.authOk) return { use: "no" };
  const now = rules.now ?? Date.now();
  const age = currentAge(f, now);
  const ttl = timeToLive(f, now);
  if (reqCC.map.has("no-cache")) return { use: "revalidate", why: "request" };
  const maxAge = seconds(reqCC, "max-age");
  // max-age=0 always validates (a reload), even within the millisecond of a store.
  if (maxAge !== undefined && (maxAge === 0 || age > maxAge)) {
    return { use: "revalidate", why: "request" };
  }
  const minFresh = seconds(reqCC, "min-fresh");
  if (minFresh !== undefined && ttl < minFresh) return { use: "revalidate", why: "request" };
  if (f.noCache) return { use: "revalidate", why: "no-cache" };
  if (ttl > 0) return { use: "fresh" };
  if (!f.mustRevalidate) {
    const maxStale = reqCC.map.get("max-stale");
    if (maxStale === true) return { use: "stale" };
    if (maxStale !== undefined && /^\d+$/.test(maxStale) && -ttl <= Number(maxStale)) {
      return { use: "stale" };
    }
    const swr = f.swr ?? rules.staleWhileRevalidate ?? 0;
    if (swr > 0 && -ttl <= swr) return { use: "stale-while-revalidate" };
  }
  return { use: "revalidate", why: "stale" };
}

/** May `f` be served stale because the upstream failed (stale-if-error, RFC 5861 and §4.2.4)? */
export function staleIfErrorAllowed(f: Freshness, operatorWindow = 0, now = Date.now()): boolean {
  if (f.mustRevalidate || f.noCache) return false;
  const window = f.sie ?? operatorWindow;
  return window > 0 && -timeToLive(f, now) <= window;
}

/** The request fields for validating a stored response: the client's conditionals replaced by ours. */
export function revalidationFields(fields: Fields, stored: Fields): Fields {
  const out = fields.clone();
  for (const n of ["if-none-match", "if-modified-since", "if-match", "if-unmodified-since"]) {
    out.delete(n);
  }
  out.delete("if-range");
  out.delete("range");
  const etag = stored.get("etag");
  if (etag !== undefined) out.set("if-none-match", etag);
  const lm = stored.get("last-modified");
  if (lm !== undefined) out.set("if-modified-since", lm);
  return out;
}

const opaque = (tag: string): string => tag.trim().replace(/^W\//, "");

/**
 * Does a 304 select this stored response for update (§4.3.4)? A strong validator must match
 * exactly, a weak one weakly; else Last-Modified; else neither side may carry a validator.
 */
export function notModifiedMatches(stored: Fields, notModified: Fields): boolean {
  const newTag = notModified.get("etag");
  const oldTag = stored.get("etag");
  if (newTag !== undefined) {
    if (oldTag === undefined) return false;
    return newTag.trim().startsWith("W/")
      ? opaque(oldTag) === opaque(newTag)
      : oldTag.trim() === newTag.trim();
  }
  const oldLm = stored.get("last-modified");
  const newLm = notModified.get("last-modified");
  if (newLm !== undefined) return oldLm === newLm;
  if (oldLm !== undefined) return true; // a 304 to our If-Modified-Since, without its own copy
  return oldTag === undefined;
}

/** The stored fields updated with a 304's (§3.2): every field in it replaces or adds. */
export function mergeNotModified(stored: Fields, notModified: Fields): Fields {
  const out = stored.clone();
  const incoming = storedFields(notModified);
  out.delete("age");
  out.delete("date");
  const names = new Set<string>();
  for (const [k] of incoming) if (!notUpdated.has(k)) names.add(k);
  for (const n of names) out.delete(n);
  for (const [k, v] of incoming) if (names.has(k)) out.append(k, v);
  return out;
}

/**
 * Evaluate a client's own conditional request against a stored 200 (RFC 9110 §13.2.2): true when
 * it should be answered 304. `If-None-Match` (weak comparison) wins over `If-Modified-Since`.
 */
export function clientNotModified(reqFields: Fields, stored: Fields): boolean {
  const inm = reqFields.joined("if-none-match");
  if (inm !== undefined) {
    const etag = stored.get("etag");
    if (etag === undefined) return false;
    if (inm.trim() === "*") return true;
    return inm.split(",").some((t) => opaque(t) === opaque(etag));
  }
  const ims = dateOf(reqFields.get("if-modified-since"));
  const lm = dateOf(stored.get("last-modified"));
  return ims !== undefined && lm !== undefined && lm <= ims;
}

/** Methods after whose success a cache invalidates the target URI (§4.4): the unsafe ones. */
export function isUnsafe(method: string): boolean {
  return !(method === "GET" || method === "HEAD" || method === "OPTIONS" || method === "TRACE");
}
