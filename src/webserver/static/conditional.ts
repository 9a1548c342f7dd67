/**
 * Validators and conditional requests (RFC 9110 §8.8 and §13): the ETag and Last-Modified of a
 * file, HTTP-date parsing, and the evaluation of If-Match, If-Unmodified-Since, If-None-Match,
 * If-Modified-Since and If-Range in the RFC's order of precedence. Pure: no I/O.
 */
import type { Fields } from "../exchange.ts";

/** nginx's ETag: `"<mtime in hex seconds>-<size in hex>"`, strong. */
export function fileEtag(mtimeMs: number, size: number): string {
  return `"${Math.floor(mtimeMs / 1000).toString(16)}-${size.toString(16)}"`;
}

/** `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate) for a time in ms; sub-second part dropped. */
export function httpDate(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toUTCString();
}

const months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const imfFixdate = /^[A-Za-z]{3}, (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const rfc850 = /^[A-Za-z]{6,9}, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$/;
const asctime = /^[A-Za-z]{3} ([A-Za-z]{3}) ( \d|\d{2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/;

function utc(
  year: number,
  month: string,
  day: number,
  h: number,
  m: number,
  s: number,
): number | undefined {
  const mon = months.indexOf(month.toLowerCase());
  if (mon < 0 || day < 1 || day > 31 || h > 23 || m > 59 || s > 60) return undefined;
  return Date.UTC(year, mon, day, h, m, Math.min(s, 59));
}

/**
 * Parse an HTTP-date (RFC 9110 §5.6.7) to ms since the epoch: IMF-fixdate, and the obsolete
 * RFC 850 and asctime forms recipients must accept. Anything else is undefined (and the
 * condition using it is then ignored, as the RFC requires).
 */
export function parseHttpDate(value: string): number | undefined {
  const text = value.trim();
  let m = imfFixdate.exec(text);
  if (m) return utc(Number(m[3]), m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = rfc850.exec(text);
  if (m) {
    // Two-digit years more than 50 years in the future are in the past century (§5.6.7).
    const yy = Number(m[3]);
    const now = new Date().getUTCFullYear();
    let year = Math.floor(now / 100) * 100 + yy;
    if (year > now + 50) year -= 100;
    return utc(year, m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  m = asctime.exec(text);
  if (m) {
    return utc(Number(m[6]), m[1]!, Number(m[2]!.trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  }
  return undefined;
}

/** An entity-tag as received: weak flag and opaque-tag (with its quotes). */
interface EntityTag {
  readonly weak: boolean;
  readonly opaque: string;
}

/** `*` or the entity-tags of an If-Match / If-None-Match value; undefined if malformed. */
export function parseEtagList(value: string): "*" | EntityTag[] | undefined {
  const text = value.trim();
  if (text === "*") return "*";
  const out: EntityTag[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    // OWS and empty list elements (`"a", , "b"`) are allowed between members.
    if (c === " " || c === "\t" || c === ",") {
      i++;
      continue;
    }
    let weak = false;
    if (text.startsWith("W/", i)) {
      weak = true;
      i += 2;
    }
    if (text[i] !== '"') return undefined;
    const close = text.indexOf('"', i + 1);
    if (close < 0) return undefined;
    out.push({ weak, opaque: text.slice(i, close + 1) });
    i = close + 1;
    while (text[i] === " " || text[i] === "\t") i++;
    if (i < text.length && text[i] !== ",") return undefined;
  }
  return out.length === 0 ? undefined : out;
}

function splitTag(etag: string): EntityTag {
  return etag.startsWith("W/")
    ? { weak: true, opaque: etag.slice(2) }
    : { weak: false, opaque: etag };
}

/** Strong comparison: both strong, same opaque-tag. */
function strongMatch(a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && a.opaque === b.opaque;
}

/** The current representation's validators. */
export interface Validators {
  /** As sent in `ETag` (`"..."` or `W/"..."`), or undefined when ETags are off. */
  readonly etag: string | undefined;
  /** Last modification in ms, or undefined when unknown. */
  readonly lastModified: number | undefined;
}

export type IfModifiedSincePolicy = "off" | "exact" | "before";

export type Precondition =
  /** No condition stops the request: go on (and consider Range). */
  | "proceed"
  /** 304 Not Modified (GET/HEAD). */
  | "not-modified"
  /** 412 Precondition Failed. */
  | "failed";

/**
 * Evaluate the preconditions of a request on an existing representation, in RFC 9110 §13.2.2's
 * order:
 *   1. If-Match (strong comparison; `*` matches) false: 412.
 *   2. without If-Match, If-Unmodified-Since earlier than Last-Modified: 412.
 *   3. If-None-Match (weak comparison) matching: 304 for GET/HEAD, else 412.
 *   4. without If-None-Match, for GET/HEAD, If-Modified-Since not older than Last-Modified
 *      (`policy`: nginx's `if_modified_since`: `exact` needs the dates to be equal, `before` is
 *      the RFC's "not earlier", `off` ignores the field): 304.
 * An invalid date or entity-tag list makes that condition be ignored.
 */
export function evaluatePreconditions(
  method: string,
  fields: Fields,
  v: Validators,
  policy: IfModifiedSincePolicy,
): Precondition {
  const safe = method === "GET" || method === "HEAD";
  const current = v.etag === undefined ? undefined : splitTag(v.etag);
  const lastModifiedS =
    v.lastModified === undefined ? undefined : Math.floor(v.lastModified / 1000) * 1000;

  const ifMatch = fields.joined("if-match");
  if (ifMatch !== undefined) {
    const tags = parseEtagList(ifMatch);
    if (tags !== undefined) {
      const ok =
        tags === "*" || (current !== undefined && tags.some((t) => strongMatch(t, current)));
      if (!ok) return "failed";
    }
  } else {
    const ius = fields.get("if-unmodified-since");
    const date = ius === undefined ? undefined : parseHttpDate(ius);
    if (date !== undefined && lastModifiedS !== undefined && lastModifiedS > date) return "failed";
  }

  const ifNoneMatch = fields.joined("if-none-match");
  if (ifNoneMatch !== undefined) {
    const tags = parseEtagList(ifNoneMatch);
    if (tags !== undefined) {
      const matched =
        tags === "*" || (current !== undefined && tags.some((t) => t.opaque === current.opaque));
      if (matched) return safe ? "not-modified" : "failed";
      return "proceed";
    }
  }

  if (!safe || policy === "off" || lastModifiedS === undefined) return "proceed";
  const ims = fields.get("if-modified-since");
  const date = ims === undefined ? undefined : parseHttpDate(ims);
  if (date === undefined) return "proceed";
  if (policy === "exact" ? lastModifiedS === date : lastModifiedS <= date) return "not-modified";
  return "proceed";
}

/**
 * Whether a Range request may be honoured given its If-Range (RFC 9110 §13.1.5): true when there
 * is no If-Range, when it is an entity-tag strongly matching the current ETag, or an HTTP-date
 * equal to Last-Modified. False (send the whole representation) otherwise.
 */
export function ifRangeHolds(fields: Fields, v: Validators): boolean {
  const ifRange = fields.get("if-range");
  if (ifRange === undefined) return true;
  const text = ifRange.trim();
  if (text.startsWith('"') || text.startsWith("W/")) {
    if (v.etag === undefined) return false;
    const tags = parseEtagList(text);
    return (
      tags !== undefined &&
      tags !== "*" &&
      tags.length === 1 &&
      strongMatch(tags[0]!, splitTag(v.etag))
    );
  }
  const date = parseHttpDate(text);
  return (
    date !== undefined &&
    v.lastModified !== undefined &&
    Math.floor(v.lastModified / 1000) * 1000 === date
  );
}
