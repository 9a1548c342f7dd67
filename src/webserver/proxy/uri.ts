/**
 * The request URI sent upstream, by nginx's proxy_pass rules:
 *
 * - a target without a URI part (`http://app`): the request URI as the client sent it; after a
 *   rewrite (or an internal redirect) changed the URI, the current, normalised one, re-encoded,
 *   with the current arguments;
 * - a target with a URI part (`http://app/v1/`) in a prefix or exact location: the part of the
 *   normalised path that matched the location is replaced by that URI (`/api/` + `/v1/`:
 *   `/api/x` goes as `/v1/x`), the rest re-encoded, the arguments appended; after a rewrite the
 *   URI part is ignored and the changed URI is sent whole (nginx: "rewrite ... break");
 * - regex and named locations take no URI part (refused at setup, as nginx refuses it).
 */
import type { WebRequest } from "../exchange.ts";
import { normalizePath, splitTarget } from "../path.ts";

/** How a location matched, for the mapping. */
export type LocationKind = "prefix" | "exact" | "regex" | "named" | "root";

export interface LocationShape {
  kind: LocationKind;
  /** The prefix (or exact path) of a prefix/exact location; "/" for a server's root. */
  prefix: string;
}

/** `"^~ /a/"` -> prefix `/a/`; `"= /x"` -> exact; `"~ re"` -> regex; `"@n"` -> named; `""` -> root. */
export function locationShape(match: string): LocationShape {
  const m = match.trim();
  if (m === "") return { kind: "root", prefix: "/" };
  if (m.startsWith("@")) return { kind: "named", prefix: "" };
  if (m.startsWith("~")) return { kind: "regex", prefix: "" };
  if (m.startsWith("=")) return { kind: "exact", prefix: m.slice(1).trim() };
  if (m.startsWith("^~")) return { kind: "prefix", prefix: m.slice(2).trim() };
  return { kind: "prefix", prefix: m };
}

// Characters kept as they are in a path: unreserved, sub-delims, ":", "@", "/".
const plain = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;

/** Percent-encode a decoded path for the request line (nginx's ngx_escape_uri for URIs). */
export function encodePath(path: string): string {
  if (plain.test(path)) return path;
  let out = "";
  for (const byte of Buffer.from(path, "utf8")) {
    const c = String.fromCharCode(byte);
    out +=
      byte < 0x80 && plain.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** The request's path as received, normalised both ways a server may be configured. */
function isOriginal(req: WebRequest): boolean {
  // The common case, without splitting the target: sent plain (no query, nothing encoded).
  const target = req.target;
  if (req.query === "" && target === req.path && target.indexOf("?") < 0 && target.indexOf("#") < 0)
    return true;
  const parts = splitTarget(req.target);
  if (parts === undefined) return false;
  if (req.query !== parts.query) return false;
  const p = req.path;
  if (parts.path === p) return true;
  return normalizePath(parts.path, true) === p || normalizePath(parts.path, false) === p;
}

/** The origin-form of the target as the client sent it (absolute-form reduced to path and query). */
function rawOriginForm(target: string): string | undefined {
  const hash = target.indexOf("#");
  if (hash >= 0) return rawOriginForm(target.slice(0, hash));
  if (target.startsWith("/")) return target;
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(target);
  if (!m) return undefined;
  const rest = target.slice(m[0].length);
  return rest === "" ? "/" : rest.startsWith("?") ? `/${rest}` : rest;
}

function withArgs(path: string, query: string, hasQuery = false): string {
  if (query === "") return path;
  return `${path}${hasQuery ? "&" : "?"}${query}`;
}

/** The path and query to send upstream for `req`. */
export function upstreamPath(
  req: WebRequest,
  uri: string | undefined,
  shape: LocationShape,
): string {
  const original = isOriginal(req);
  if (uri === undefined || !original || shape.kind === "regex" || shape.kind === "named") {
    if (original) {
      const raw = rawOriginForm(req.target);
      if (raw !== undefined) return raw;
    }
    return withArgs(encodePath(req.path), req.query);
  }
  const p = req.path;
  const rest = p.startsWith(shape.prefix) ? p.slice(shape.prefix.length) : p;
  return withArgs(uri + encodePath(rest), req.query, uri.includes("?"));
}
