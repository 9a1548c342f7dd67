/**
 * Fields of the limits module (src/webserver/limits/): request rate limits (nginx's limit_req)
 * and concurrency limits (limit_conn) per key, counted across all workers. Inherited: a block
 * that sets `limitReq` replaces the inherited list (nginx's rule).
 */
import {
  boolean,
  byShape,
  field,
  integer,
  list,
  object,
  optional,
  refine,
  string,
} from "../../types.ts";

/** A `limitReq` rule, normalised. */
export interface LimitReqRule {
  /** Shared by every rule naming it; unset: private to the rule's location. */
  zone: string | undefined;
  /** A template (`$remote_addr`, `$http_x_api_key`, `$remote_addr:$uri`); empty value: not limited. */
  key: string;
  /** Requests per second (`"30r/m"` is 0.5). */
  rate: number;
  /** As written, for messages. */
  rateText: string;
  burst: number;
  /** Excess requests passed without delay (`burst` with `nodelay`). */
  delay: number;
  /** Keys the zone keeps. */
  size: number | undefined;
}

/** A `limitConn` rule, normalised. */
export interface LimitConnRule {
  zone: string | undefined;
  key: string;
  max: number;
  size: number | undefined;
}

/** `"10r/s"`, `"30r/m"` (nginx's), `"1r/h"`; a bare number is per second. */
export function parseRate(value: unknown): number | undefined {
  if (typeof value === "number") return value > 0 && Number.isFinite(value) ? value : undefined;
  if (typeof value !== "string") return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*r\/(s|m|h)\s*$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  if (!(n > 0)) return undefined;
  return n / { s: 1, m: 60, h: 3600 }[m[2] as "s" | "m" | "h"];
}

const zoneName = optional(
  refine(string(), (z, problem) =>
    /^[\w.-]+$/.test(z) ? z : problem("a zone name is letters, digits, `_`, `.` or `-`"),
  ),
);
const keyTemplate = optional(string());
const zoneSize = optional(integer({ min: 1 }));

const rateText = (v: string | number, problem: (m: string) => never) => {
  const r = parseRate(v);
  return r === undefined
    ? problem(`expected a rate ("10r/s", "30r/m", "100r/h"), found ${JSON.stringify(v)}`)
    : { rate: r, text: String(v) };
};
const rate = byShape(
  {
    string: refine(string(), (v, problem) => rateText(v, problem as (m: string) => never)),
    number: refine(integer({ min: 1 }), (v, problem) =>
      rateText(v, problem as (m: string) => never),
    ),
  },
  { name: "rate", expected: 'a rate ("10r/s", "30r/m", "100r/h")', metavar: "RATE" },
);

const limitReqRule = refine(
  object(
    {
      zone: field({
        type: zoneName,
        doc: "A name: rules naming the same zone share their buckets (in any location; the first rule defines the key and rate, the others must agree). Unset: the rule's buckets are its location's own.",
      }),
      key: field({
        type: keyTemplate,
        doc: 'What is limited: a template of variables, default `"$remote_addr"` (the client address, after `realIpFrom`). `"$http_x_api_key"`, `"$remote_addr$uri"`... A request whose key is empty is not limited.',
      }),
      rate: field({ type: rate, doc: 'Requests per second or minute: `"10r/s"`, `"30r/m"`.' }),
      burst: field({
        type: optional(integer({ min: 0 })),
        doc: "Requests accepted beyond the rate, held back to it (or passed at once with `nodelay`); default 0. Past the burst: `limitReqStatus`.",
      }),
      nodelay: field({
        type: optional(boolean()),
        doc: "Pass requests within the burst at once instead of spacing them out at the rate.",
      }),
      delay: field({
        type: optional(integer({ min: 0 })),
        doc: "Pass this many requests of the burst at once, hold the rest (nginx's `delay=`; `nodelay` is `delay` = `burst`). Default 0.",
      }),
      size: field({
        type: zoneSize,
        doc: "Keys the zone remembers (default 100000); past it the least recently seen is forgotten.",
      }),
    },
    { name: "limitReq rule" },
  ),
  (v, problem) => {
    const r = v.rate;
    const burst = v.burst ?? 0;
    if (v.nodelay && v.delay !== undefined)
      return problem("`nodelay` and `delay` exclude each other");
    if (v.delay !== undefined && v.delay > burst) return problem("`delay` cannot exceed `burst`");
    return {
      zone: v.zone,
      key: v.key ?? "$remote_addr",
      rate: r.rate,
      rateText: r.text,
      burst,
      delay: v.nodelay ? burst : (v.delay ?? 0),
      size: v.size,
    } as LimitReqRule;
  },
);

const limitConnRule = refine(
  object(
    {
      zone: field({
        type: zoneName,
        doc: "A name: rules naming the same zone share their counters. Unset: the location's own.",
      }),
      key: field({
        type: keyTemplate,
        doc: 'Default `"$remote_addr"`; an empty key is not limited.',
      }),
      max: field({
        type: integer({ min: 1 }),
        doc: "Requests with the same key in progress at once, across all workers; one more gets `limitConnStatus`.",
      }),
      size: field({ type: zoneSize, doc: "Keys the zone holds (default 100000)." }),
    },
    { name: "limitConn rule" },
  ),
  (v) =>
    ({ zone: v.zone, key: v.key ?? "$remote_addr", max: v.max, size: v.size }) as LimitConnRule,
);

const status = optional(integer({ min: 400, max: 599 }));

export const limitsFields = {
  limitReq: field({
    type: optional(list(limitReqRule)),
    doc: 'Request rate limits (nginx\'s `limit_req`, a leaky bucket per key), counted across all workers: `[{ rate: "10r/s", burst: 20, nodelay: true }]`. Every rule must pass; the refused get `limitReqStatus` with `Retry-After`. A request over the rate but within the burst is held until its turn (unless `nodelay`, or within `delay`).',
    nginx: "limit_req_zone, limit_req",
  }),
  limitReqStatus: field({
    type: status,
    doc: "The status of a request refused by `limitReq`: 503 (nginx's default) or 429 (Too Many Requests).",
    nginx: "limit_req_status",
  }),
  limitReqDryRun: field({
    type: optional(boolean()),
    doc: "Count and log, but refuse and delay nothing (to try limits on live traffic); `$limit_req_status` tells what would have happened.",
    nginx: "limit_req_dry_run",
  }),
  limitConn: field({
    type: optional(list(limitConnRule)),
    doc: "Concurrency limits (nginx's `limit_conn`): requests in progress at once per key, across all workers: `[{ max: 10 }]` (per client address).",
    nginx: "limit_conn_zone, limit_conn",
  }),
  limitConnStatus: field({
    type: status,
    doc: "The status of a request refused by `limitConn`: 503 (the default) or 429.",
    nginx: "limit_conn_status",
  }),
};
