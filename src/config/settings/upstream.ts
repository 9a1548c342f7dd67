/**
 * The shape of an upstream group (nginx's `upstream {}` block with the proxy directives that
 * belong to the connection rather than to the request): peers and their options, the selection
 * policy, passive and active health, retries, keep-alive and timeouts.
 *
 * Declared as value types, not settings: the web server mounts them as
 * `web.upstreams: upstreams` (a record of named groups), and the upstream engine
 * (src/upstream/) reads the normalised output type, `UpstreamGroupConfig`. Every field's doc
 * is its user documentation (docs/settings.md is generated from it) and names the nginx
 * directive it stands for.
 *
 * @example
 * // brigade.config.ts
 * web: {
 *   upstreams: {
 *     app: {
 *       peers: ["127.0.0.1:8000", { address: "unix:/run/app.sock", weight: 2, maxConns: 1 }],
 *       policy: { type: "hash", key: "$request_uri", consistent: true },
 *       healthCheck: { path: "/healthz", interval: "5s" },
 *     },
 *   },
 * }
 */
import {
  boolean,
  duration,
  field,
  type InOf,
  type Issue,
  integer,
  invalid,
  list,
  type OutOf,
  object,
  oneOf,
  optional,
  peerAddress,
  record,
  string,
  type ValueType,
} from "../types.ts";

/**
 * A type whose `check` runs `extra` on the raw input (cross-field rules) and then the type's own
 * check, so that every problem is reported at once; invalid if either found one.
 */
function refine<In, Out>(
  type: ValueType<In, Out>,
  extra: (value: unknown, path: readonly (string | number)[], issues: Issue[]) => unknown,
): ValueType<In, Out> {
  return {
    ...type,
    check(value, path, issues) {
      const before = issues.length;
      const v = extra(value, path, issues);
      const out = type.check(v, path, issues);
      return issues.length > before ? invalid : out;
    },
  };
}

const peerFields = object(
  {
    address: field({
      type: peerAddress(),
      doc: 'Where the peer listens: "host:port" (a hostname is resolved, and re-resolved every `resolveInterval`; each address it resolves to becomes a peer), "host" (port 80), "[::1]:port", or "unix:/path/to.sock".',
      nginx: "server ADDRESS",
    }),
    weight: field({
      type: integer({ min: 1, max: 1000 }),
      default: 1,
      doc: "Relative share of requests: a peer of weight 3 gets three times the requests of a peer of weight 1 (round-robin, least connections and the hashes all honour it).",
      nginx: "weight=",
    }),
    maxConns: field({
      type: integer({ min: 0 }),
      default: 0,
      doc: "Most requests in flight to this peer at once; 0 is no limit. Set it to the number of workers of a sync app server (1 per worker) so each worker gets one request at a time; further requests wait in the group's `queue`, here at the front, not in a worker.",
      nginx: "max_conns=",
    }),
    maxFails: field({
      type: optional(integer({ min: 0 })),
      doc: "Overrides the group's `maxFails` for this peer.",
      nginx: "max_fails=",
    }),
    failTimeout: field({
      type: optional(duration()),
      doc: "Overrides the group's `failTimeout` for this peer.",
      nginx: "fail_timeout=",
    }),
    backup: field({
      type: boolean(),
      default: false,
      doc: "A backup peer gets requests only while every primary peer is down (failed, unhealthy, marked down or draining). Not allowed with the hash, ipHash and sticky policies.",
      nginx: "backup",
    }),
    down: field({
      type: boolean(),
      default: false,
      doc: "Marks the peer permanently unavailable (kept in the config, and in hash rings, so that taking it out does not remap the others' keys).",
      nginx: "down",
    }),
    slowStart: field({
      type: duration(),
      default: 0,
      doc: "When the peer comes back up (after a failure, an unhealthy check, or when it is added), its weight ramps from almost nothing to `weight` over this time, so that a cold app is not flooded. 0 disables. Applies to round-robin, least connections and random two.",
      nginx: "slow_start=",
    }),
  },
  { name: "upstream peer" },
);

/** One peer: an address string, or an object with options. */
export const upstreamPeer: ValueType<string | InOf<typeof peerFields>, OutOf<typeof peerFields>> = {
  ...(peerFields as unknown as ValueType<string, OutOf<typeof peerFields>>),
  name: "peer",
  expected: 'an upstream address ("host:port", "unix:/path") or a peer object ({ address, ... })',
  fromString: (text) => text,
  check(value, path, issues) {
    return peerFields.check(typeof value === "string" ? { address: value } : value, path, issues);
  },
};

export const policyNames = [
  "roundRobin",
  "leastConnections",
  "ipHash",
  "hash",
  "randomTwo",
  "sticky",
] as const;
export type PolicyName = (typeof policyNames)[number];

/** Which fields belong to which policy (all others are refused, to catch misplaced options). */
const policyOnly: Record<string, readonly PolicyName[]> = {
  key: ["hash"],
  consistent: ["hash"],
  cookie: ["sticky"],
  cookieMaxAge: ["sticky"],
  cookiePath: ["sticky"],
  cookieDomain: ["sticky"],
  cookieSecure: ["sticky"],
};

const policyFields = object(
  {
    type: field({
      type: oneOf(policyNames),
      default: "roundRobin",
      doc: "`roundRobin`: smooth weighted round-robin, nginx's default. `leastConnections`: the peer with the fewest requests in flight relative to its weight, ties by round-robin. `ipHash`: by client address (the first three octets of IPv4, the whole IPv6 address), so a client keeps its peer. `hash`: by `key`, optionally `consistent`. `randomTwo`: two peers drawn at random by weight, the less loaded one wins (good with several balancers). `sticky`: a cookie names the peer that served the client first (round-robin picks it); clients without a valid cookie get one.",
      nginx: "least_conn, ip_hash, hash, random two least_conn, sticky cookie",
    }),
    key: field({
      type: optional(string()),
      doc: 'hash only (required): what to hash, a template the proxy expands per request with nginx-style variables, for example "$request_uri", "$remote_addr", "$http_x_user", "$cookie_session", "$arg_id".',
      nginx: "hash KEY",
    }),
    consistent: field({
      type: boolean(),
      default: false,
      doc: "hash only: ketama consistent hashing (160 points per unit of weight on a ring), so adding or removing a peer remaps only about 1/n of the keys. Without it a key maps by modulo over the weights, and a change of peers remaps most keys.",
      nginx: "hash KEY consistent",
    }),
    cookie: field({
      type: string(),
      default: "srv_id",
      doc: "sticky only: the cookie's name.",
      nginx: "sticky cookie NAME",
    }),
    cookieMaxAge: field({
      type: optional(duration()),
      doc: "sticky only: the cookie's Max-Age; without it, a session cookie.",
      nginx: "sticky cookie expires=",
    }),
    cookiePath: field({
      type: string(),
      default: "/",
      doc: "sticky only: the cookie's Path.",
      nginx: "sticky cookie path=",
    }),
    cookieDomain: field({
      type: optional(string()),
      doc: "sticky only: the cookie's Domain; without it, the host only.",
      nginx: "sticky cookie domain=",
    }),
    cookieSecure: field({
      type: boolean(),
      default: false,
      doc: "sticky only: mark the cookie Secure (HttpOnly and SameSite=Lax are always set).",
      nginx: "sticky cookie secure",
    }),
  },
  { name: "balancing policy" },
);

/** The balancing policy: a name, or an object with `type` and that policy's options. */
export const upstreamPolicy: ValueType<
  PolicyName | InOf<typeof policyFields>,
  OutOf<typeof policyFields>
> = refine(
  {
    ...(policyFields as unknown as ValueType<PolicyName, OutOf<typeof policyFields>>),
    name: "policy name or policy object",
    expected: `a policy (${policyNames.map((n) => `"${n}"`).join(", ")}) or { type, ...options }`,
    fromString: (text) => text,
  },
  (value, path, issues) => {
    const v = typeof value === "string" ? { type: value } : value;
    if (typeof v !== "object" || v === null || Array.isArray(v)) return v;
    const input = v as Record<string, unknown>;
    const type = (input.type ?? "roundRobin") as PolicyName;
    if (!policyNames.includes(type)) return v;
    for (const [key, only] of Object.entries(policyOnly)) {
      // A default value is harmless anywhere (and keeps normalised output re-checkable).
      const fallback = (policyFields.fields as Record<string, { default?: unknown }>)[key]?.default;
      if (input[key] !== undefined && input[key] !== fallback && !only.includes(type)) {
        issues.push({
          path: [...path, key],
          message: `only for policy ${only.map((o) => `"${o}"`).join(", ")}, not "${type}"`,
        });
      }
    }
    if (type === "hash" && (input.key === undefined || input.key === null)) {
      issues.push({ path: [...path, "key"], message: 'required by policy "hash"' });
    }
    return v;
  },
);

export const healthCheck = object(
  {
    path: field({
      type: string(),
      default: "/",
      doc: "The path (and query) requested from every peer.",
      nginx: "health_check uri=",
    }),
    method: field({
      type: oneOf(["GET", "HEAD"]),
      default: "GET",
      doc: "The request method of a check.",
    }),
    host: field({
      type: optional(string()),
      doc: "The Host header of a check; by default the peer's address.",
    }),
    port: field({
      type: optional(integer({ min: 1, max: 65535 })),
      doc: "Check this port instead of the peer's (TCP peers only).",
      nginx: "health_check port=",
    }),
    interval: field({
      type: duration(),
      default: "5s",
      doc: "Time between two checks of a peer.",
      nginx: "health_check interval=",
    }),
    timeout: field({
      type: duration(),
      default: "2s",
      doc: "A check not answered (status, headers and body) within this time fails.",
    }),
    expectStatus: field({
      type: list(integer({ min: 100, max: 599 })),
      default: [],
      doc: "Statuses that pass; empty means any 2xx or 3xx.",
      nginx: "match { status ... }",
    }),
    expectBody: field({
      type: optional(string()),
      doc: "A regular expression the body (its first 64 KiB) must match to pass.",
      nginx: "match { body ~ ... }",
    }),
    passes: field({
      type: integer({ min: 1 }),
      default: 1,
      doc: "Consecutive passes that bring an unhealthy peer back.",
      nginx: "health_check passes=",
    }),
    fails: field({
      type: integer({ min: 1 }),
      default: 1,
      doc: "Consecutive failures that take a healthy peer out.",
      nginx: "health_check fails=",
    }),
  },
  { name: "active health check" },
);

/** What makes an attempt fail, and so count against the peer and move to the next one. */
export const retryConditions = [
  "error",
  "timeout",
  "invalidResponse",
  "http500",
  "http502",
  "http503",
  "http504",
  "http403",
  "http404",
  "http429",
] as const;
export type RetryCondition = (typeof retryConditions)[number];

export const retry = object(
  {
    on: field({
      type: list(oneOf(retryConditions)),
      default: ["error", "timeout"],
      doc: "Which failed attempts go to the next peer: `error` (refused, reset, unreachable), `timeout`, `invalidResponse` (a malformed response), `httpNNN` (that status). The same outcomes count as failures for `maxFails` (except 403, 404 and 429). An empty list never retries.",
      nginx: "proxy_next_upstream",
    }),
    tries: field({
      type: integer({ min: 0 }),
      default: 0,
      doc: "Most attempts per request, the first included; 0 is one per peer.",
      nginx: "proxy_next_upstream_tries",
    }),
    timeout: field({
      type: duration(),
      default: 0,
      doc: "No new attempt starts once this time has passed since the first; 0 is no limit.",
      nginx: "proxy_next_upstream_timeout",
    }),
    nonIdempotent: field({
      type: boolean(),
      default: false,
      doc: "Also retry methods that are not idempotent (POST, PATCH, LOCK) once the request may have reached the peer. Off by default: the peer may have acted on it already. A request that failed before anything was sent (connection refused) is always retried.",
      nginx: "proxy_next_upstream non_idempotent",
    }),
  },
  { name: "retry" },
);

export const keepalive = object(
  {
    idle: field({
      type: integer({ min: 0 }),
      default: 32,
      doc: "Most idle keep-alive connections kept per peer (per worker); more connections may be open while busy; those freed past it close at the end of the event-loop turn they were freed in, the oldest idle first, so that requests read in that same turn reuse them instead of opening new ones (nginx closes them at once). 0 closes every connection after its request.",
      nginx: "keepalive",
    }),
    timeout: field({
      type: duration(),
      default: "60s",
      doc: "An idle connection is closed after this time (nginx's upstream `keepalive_timeout`, 60 s by default). A `Keep-Alive: timeout=N` from the upstream shortens it to N − 1 s (node:http sends `timeout=5`), and an idle connection the upstream closes is dropped as soon as its FIN arrives; a GET that still meets one closing as it is reused is replayed on a fresh connection. Behind a server that closes idle connections quickly without saying so (gunicorn's async workers: 2 s), set it below that server's keep-alive time.",
      nginx: "keepalive_timeout",
    }),
    requests: field({
      type: integer({ min: 1 }),
      default: 1000,
      doc: "A connection is closed after this many requests.",
      nginx: "keepalive_requests",
    }),
  },
  { name: "keep-alive" },
);

export const timeouts = object(
  {
    connect: field({
      type: duration(),
      default: "5s",
      doc: "Time to establish a connection to a peer; past it the attempt fails as a timeout (504 if it was the last).",
      nginx: "proxy_connect_timeout",
    }),
    send: field({
      type: duration(),
      default: "60s",
      doc: "Longest pause while sending the request to the peer (between two successful writes, not the whole transfer).",
      nginx: "proxy_send_timeout",
    }),
    read: field({
      type: duration(),
      default: "60s",
      doc: "Longest wait for the response headers after the request was sent, and longest pause between two reads of the body. 0 disables (for long-lived streams).",
      nginx: "proxy_read_timeout",
    }),
  },
  { name: "timeouts" },
);

export const queue = object(
  {
    size: field({
      type: integer({ min: 0 }),
      default: 0,
      doc: "Requests that may wait, first come first served, when every live peer is at its `maxConns`; one more is refused at once with 503. 0: no queue (busy peers spill over to backups, then 503).",
      nginx: "queue (nginx plus)",
    }),
    timeout: field({
      type: duration(),
      default: "60s",
      doc: "Longest wait in the queue; past it the request is answered 503.",
      nginx: "queue timeout=",
    }),
  },
  { name: "queue" },
);

const groupFields = object(
  {
    peers: field({
      type: list(upstreamPeer),
      doc: 'The peers: addresses ("127.0.0.1:8000", "unix:/run/app.sock") or objects with per-peer options.',
      nginx: "server",
    }),
    policy: field({
      type: upstreamPolicy,
      default: "roundRobin",
      doc: 'How a peer is picked for a request: a policy name, or `{ type, ...options }` (`{ type: "hash", key: "$request_uri", consistent: true }`).',
    }),
    maxFails: field({
      type: integer({ min: 0 }),
      default: 1,
      doc: "Failed attempts (see `retry.on`) within `failTimeout` that take a peer out for `failTimeout` (passive health); after it, one request probes the peer, and a success brings it back. 0 disables.",
      nginx: "max_fails=",
    }),
    failTimeout: field({
      type: duration(),
      default: "10s",
      doc: "The window failures are counted in, and how long a failed peer stays out.",
      nginx: "fail_timeout=",
    }),
    healthCheck: field({
      type: optional(healthCheck),
      doc: "Active health checks: every peer is requested every `interval`; `fails` consecutive failures take it out, `passes` bring it back. Off unless given (`{}` checks `/` every 5 s).",
      nginx: "health_check (nginx plus)",
    }),
    retry: field({
      type: retry,
      default: {},
      doc: "Moving a failed request to the next peer.",
      nginx: "proxy_next_upstream",
    }),
    keepalive: field({
      type: keepalive,
      default: {},
      doc: "The per-peer keep-alive connection pool (HTTP/1.1).",
      nginx: "keepalive",
    }),
    timeouts: field({
      type: timeouts,
      default: {},
      doc: "Connection timeouts per attempt.",
    }),
    queue: field({
      type: queue,
      default: {},
      doc: "Waiting for a free peer when all are at `maxConns`.",
      nginx: "queue (nginx plus)",
    }),
    resolveInterval: field({
      type: duration(),
      default: "30s",
      doc: "How often peer hostnames are resolved again while running, so that a changed DNS record takes effect without a reload (new addresses join, vanished ones drain). 0 resolves once, at start.",
      nginx: "server ... resolve; resolver valid=",
    }),
  },
  { name: "upstream group" },
);

/** One upstream group: peers plus how to balance, check, retry and connect to them. */
export const upstreamGroup = refine(groupFields, (value, path, issues) => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const input = value as Record<string, unknown>;
  const peers = Array.isArray(input.peers) ? input.peers : input.peers ? [input.peers] : [];
  const policy = input.policy;
  const type = typeof policy === "string" ? policy : (policy as { type?: unknown })?.type;
  if (type === "hash" || type === "ipHash" || type === "sticky") {
    peers.forEach((p, i) => {
      if (typeof p === "object" && p !== null && (p as { backup?: unknown }).backup === true) {
        issues.push({
          path: [...path, "peers", Array.isArray(input.peers) ? i : 0, "backup"],
          message: `backup peers are not allowed with policy "${type}" (a key must keep its peer)`,
        });
      }
    });
  }
  if (Array.isArray(input.peers) && input.peers.length === 0) {
    issues.push({ path: [...path, "peers"], message: "at least one peer is required" });
  }
  return value;
});

/** Named upstream groups, mounted by the web server as `web.upstreams`. */
export const upstreams = record(upstreamGroup, { name: "upstream groups", keyName: "<name>" });

export type UpstreamGroupConfig = OutOf<typeof groupFields>;
export type UpstreamPeerConfig = OutOf<typeof peerFields>;
export type UpstreamPolicyConfig = OutOf<typeof policyFields>;
export type HealthCheckConfig = OutOf<typeof healthCheck>;
export type RetryConfig = OutOf<typeof retry>;
export type KeepaliveConfig = OutOf<typeof keepalive>;
export type TimeoutsConfig = OutOf<typeof timeouts>;
export type QueueConfig = OutOf<typeof queue>;
