/**
 * Fields of the cache module (src/webserver/cache/): an RFC 9111 shared cache wrapping a
 * location's content handler (normally the proxy). Inherited like nginx's `proxy_cache_*`
 * directives, each field on its own: a location sets what differs from its server.
 *
 * Zones: locations with the same storage fields (`cacheDir`, `cacheMemorySize`, `cacheMaxSize`,
 * `cacheInactive`) share one storage; a `cacheZone` name shares it explicitly, and then the
 * storage fields must agree wherever the name is used.
 */
import {
  boolean,
  byShape,
  duration,
  field,
  integer,
  list,
  object,
  oneOf,
  optional,
  parseDuration,
  record,
  refine,
  size,
  string,
} from "../../types.ts";

/** Per-status lifetimes, normalised: status code (or "any") -> seconds. */
export type CacheValid = Record<string, number>;

const statusList = (text: string): string[] | string => {
  const parts = text.trim().split(/\s+/);
  for (const p of parts) {
    if (p !== "any" && !/^[1-5]\d\d$/.test(p)) {
      return `expected status codes (200, 404) or "any", found ${JSON.stringify(p)}`;
    }
  }
  return parts;
};

/** nginx's `proxy_cache_valid 10m` (no statuses): 200, 301 and 302. */
const defaultValidStatuses = ["200", "301", "302"];

function parseValidLine(line: string): { statuses: string[]; seconds: number } | string {
  const parts = line.trim().split(/\s+/);
  const last = parts.pop();
  const seconds = parseDuration(last);
  if (seconds === undefined) {
    return `expected "[status ...] duration" ("200 302 10m", "404 1m", "any 30s", "10m"), found ${JSON.stringify(line)}`;
  }
  if (parts.length === 0) return { statuses: defaultValidStatuses, seconds };
  const statuses = statusList(parts.join(" "));
  return typeof statuses === "string" ? statuses : { statuses, seconds };
}

const validLine = refine(string(), (line, problem) => {
  const r = parseValidLine(line);
  return typeof r === "string" ? problem(r) : r;
});

const cacheValidType = byShape(
  {
    string: refine(validLine, (r) => Object.fromEntries(r.statuses.map((s) => [s, r.seconds]))),
    list: refine(list(validLine), (rs) => {
      const out: CacheValid = {};
      for (const r of rs) for (const s of r.statuses) out[s] = r.seconds;
      return out;
    }),
    object: refine(
      record(duration(), {
        name: "status: duration",
        key: (k) => {
          const r = statusList(k);
          return typeof r === "string" ? r : undefined;
        },
      }),
      (rec) => {
        const out: CacheValid = {};
        for (const [k, v] of Object.entries(rec)) for (const s of k.trim().split(/\s+/)) out[s] = v;
        return out;
      },
    ),
  },
  {
    name: "per-status lifetimes",
    expected:
      '{ "200 302": "10m", "404": "1m", "any": "30s" }, a list of "200 302 10m" lines, or "10m" (200, 301, 302)',
  },
);

const templateList = refine(list(string()), (ts, problem) => {
  const bad = ts.find((t) => !t.includes("$"));
  return bad === undefined
    ? ts
    : problem(
        `a condition is a template with $variables ("$cookie_nocache"), found ${JSON.stringify(bad)}`,
      );
});

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export const cacheIgnorable = [
  "cache-control",
  "expires",
  "x-accel-expires",
  "set-cookie",
  "vary",
] as const;

export const cacheFields = {
  cache: field({
    type: optional(boolean()),
    doc: "Cache the responses of this location's content handler (normally `proxy`) as an RFC 9111 shared cache. Default off, or on where a `cacheDir` is set; `brigade web --proxy URL --cache` turns it on everywhere.",
    nginx: "proxy_cache",
  }),
  cacheZone: field({
    type: optional(string()),
    doc: "A name for the storage this location uses: locations naming the same zone share it, and must then agree on its storage fields (`cacheDir`, `cacheMemorySize`, `cacheMaxSize`, `cacheInactive`). Unset: locations whose storage fields agree share one zone.",
    nginx: "proxy_cache (zone name)",
  }),
  cacheDir: field({
    type: optional(string({ metavar: "DIR" })),
    doc: "A directory for the zone's disk tier, shared by every worker (a response stored by one is a hit in the others) and kept across restarts; it also turns `cache` on unless that is `false`. Relative to the config file's directory. Unset: memory only.",
    nginx: "proxy_cache_path",
  }),
  cacheMemorySize: field({
    type: optional(size()),
    doc: 'Bytes of responses each worker keeps in memory (least recently used go first). Default "64m".',
    nginx: "keys_zone (size)",
  }),
  cacheMaxSize: field({
    type: optional(size()),
    doc: 'Bytes the disk tier may hold; the least recently used records go first. Enforced by periodic sweeps, so it may be exceeded by what was written since the last one. Default "1g".',
    nginx: "proxy_cache_path max_size",
  }),
  cacheMaxEntrySize: field({
    type: optional(size()),
    doc: 'The largest response body stored; larger ones are passed through uncached. Default "8m".',
  }),
  cacheInactive: field({
    type: optional(duration()),
    doc: 'Records not used for this long are removed, fresh or not. Default "10m".',
    nginx: "proxy_cache_path inactive",
  }),
  cacheKey: field({
    type: optional(
      refine(string(), (t, problem) =>
        t.includes("$") ? t : problem("a cache key is a template with $variables"),
      ),
    ),
    doc: 'The key a response is stored under: a template of variables (`$scheme`, `$host`, `$request_uri`, `$uri`, `$args`, `$arg_NAME`, `$http_NAME`, `$cookie_NAME`, `$request_method`, `$server_port`). Default "$scheme://$host$request_uri".',
    nginx: "proxy_cache_key",
  }),
  cacheMethods: field({
    type: optional(list(oneOf(["GET", "HEAD", "POST"]))),
    doc: 'The methods answered from the cache. HEAD is answered from the GET response (a HEAD miss fetches with GET). POST responses are stored only with explicit freshness, under their own key (the request body is not part of it). Default ["GET", "HEAD"].',
    nginx: "proxy_cache_methods",
  }),
  cacheMinUses: field({
    type: optional(integer({ min: 1 })),
    doc: "Store a response only once its key has been asked for this many times (counted per worker). Default 1.",
    nginx: "proxy_cache_min_uses",
  }),
  cacheBypass: field({
    type: optional(templateList),
    doc: 'Conditions (templates) under which the response is taken from the upstream, not the cache (it may still be stored): any that is non-empty and not "0", e.g. `["$cookie_nocache", "$arg_nocache"]`.',
    nginx: "proxy_cache_bypass",
  }),
  cacheNoStore: field({
    type: optional(templateList),
    doc: 'Conditions (templates) under which the response is not stored: any that is non-empty and not "0".',
    nginx: "proxy_no_cache",
  }),
  cacheValid: field({
    type: optional(cacheValidType),
    doc: 'Lifetimes for responses that give no explicit freshness (no `Cache-Control` max-age/s-maxage, no `Expires`), by status: `{ "200 302": "10m", "404": "1m", "any": "30s" }`. This also makes statuses storable that are not by default (302, 500...). Unset: only the RFC\'s heuristic (10% of the age of `Last-Modified`).',
    nginx: "proxy_cache_valid",
  }),
  cacheIgnoreHeaders: field({
    type: optional(list(oneOf(cacheIgnorable))),
    doc: "Upstream response fields not obeyed for caching (still sent to the client): `cache-control`, `expires`, `x-accel-expires`, `vary`, and `set-cookie` (then such responses are stored, without their Set-Cookie: a cached copy never hands one client's cookie to another). By default responses with Set-Cookie are not stored.",
    nginx: "proxy_ignore_headers",
  }),
  cacheStaleWhileRevalidate: field({
    type: optional(duration()),
    doc: "For responses without their own `stale-while-revalidate`: how long past freshness a stored response is still served while one background request refreshes it. Default 0.",
    nginx: "proxy_cache_use_stale updating + proxy_cache_background_update",
  }),
  cacheStaleIfError: field({
    type: optional(duration()),
    doc: "For responses without their own `stale-if-error`: how long past freshness a stored response is served when the upstream fails (error, timeout, 500, 502, 503, 504). Default 0. Neither applies to `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache` responses.",
    nginx: "proxy_cache_use_stale error timeout http_500 http_502 http_503 http_504",
  }),
  cacheLock: field({
    type: optional(boolean()),
    doc: "Collapse concurrent misses for one key into one upstream request, the others waiting for it (in a worker; across workers too with `cacheDir`). Default true.",
    nginx: "proxy_cache_lock",
  }),
  cacheLockTimeout: field({
    type: optional(duration()),
    doc: 'How long a collapsed request waits; then it goes to the upstream itself (and its response is not stored). Default "5s".',
    nginx: "proxy_cache_lock_timeout",
  }),
  cacheLockAge: field({
    type: optional(duration()),
    doc: 'A fill still running after this long no longer holds the others back: one more request may go. Default "5s".',
    nginx: "proxy_cache_lock_age",
  }),
  cacheTagHeaders: field({
    type: optional(
      refine(list(string()), (ns, problem) => {
        const bad = ns.find((n) => !headerName.test(n));
        return bad === undefined
          ? ns.map((n) => n.toLowerCase())
          : problem(`not a header name: ${JSON.stringify(bad)}`);
      }),
    ),
    doc: 'Response fields whose values tag a stored response for purge by tag (space- or comma-separated); they are removed from the response sent to clients. Default ["surrogate-key", "cache-tag"].',
  }),
  cacheStatusHeader: field({
    type: optional(boolean()),
    doc: "Add a `Cache-Status` field (RFC 9211) to responses: `brigade; hit; ttl=52`, `brigade; fwd=miss; stored`. Default true.",
  }),
  cacheXStatusHeader: field({
    type: optional(boolean()),
    doc: "Add `X-Cache-Status: HIT` (MISS, EXPIRED, STALE, UPDATING, REVALIDATED, BYPASS), nginx's `$upstream_cache_status`, which is also a variable. Default false.",
    nginx: "add_header X-Cache-Status $upstream_cache_status",
  }),
  cacheAdmin: field({
    type: optional(
      object(
        {
          token: field({
            type: refine(string(), (t, problem) =>
              t.length >= 16 ? t : problem("the admin token must be at least 16 characters"),
            ),
            doc: "The bearer token a purge request must carry (`Authorization: Bearer TOKEN`).",
          }),
        },
        { name: "cache admin" },
      ),
    ),
    doc: 'Make this location the cache admin endpoint of its `cacheZone`: `POST` (or `PURGE`) with `?url=`, `?key=` or `?tag=` (or a JSON body `{ "url" | "key" | "tag" | "tags", "mode" }`), `mode=invalidate` to mark stale instead of deleting; `GET` answers the zone\'s counters. Requests need `Authorization: Bearer TOKEN`. Not inherited. `brigade purge` talks to it.',
    nginx: "proxy_cache_purge (nginx Plus)",
  }),
};
