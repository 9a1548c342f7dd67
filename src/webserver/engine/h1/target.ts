/**
 * From a request-target to `WebRequest.path` and `.query`: the path percent-decoded once (as
 * UTF-8), dot segments resolved, repeated slashes merged (nginx `merge_slashes`, a setting), and
 * refused (400) when it cannot be made safe: a `..` above the root, an encoded NUL, a bad
 * percent-escape, bytes that are not UTF-8.
 */
import { HttpError } from "../../exchange.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

function bad(why: string): never {
  throw new HttpError(400, `bad request path: ${why}`, { close: true });
}

/** Percent-decode `raw` once. */
function decode(raw: string): string {
  const bytes = Buffer.allocUnsafe(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0x25) {
      const h = hex(raw.charCodeAt(i + 1));
      const l = hex(raw.charCodeAt(i + 2));
      if (h < 0 || l < 0) bad("a malformed percent-escape");
      const b = h * 16 + l;
      if (b === 0) bad("an encoded NUL");
      bytes[n++] = b;
      i += 2;
    } else {
      bytes[n++] = c;
    }
  }
  try {
    return utf8.decode(bytes.subarray(0, n));
  } catch {
    return bad("bytes that are not UTF-8");
  }
}

/** Resolve `.` and `..`, merge `//` when asked; `path` starts with `/`. */
function normalise(path: string, mergeSlashes: boolean): string {
  const parts = path.split("/");
  const out: string[] = [];
  const last = parts.length - 1;
  for (let i = 1; i <= last; i++) {
    const seg = parts[i]!;
    if (seg === ".") {
      if (i === last) out.push("");
      continue;
    }
    if (seg === "..") {
      if (out.length === 0) bad("a `..` above the root");
      out.pop();
      if (i === last) out.push("");
      continue;
    }
    if (seg === "" && mergeSlashes && i !== last) continue;
    out.push(seg);
  }
  return `/${out.join("/")}`;
}

/** True when `p` needs no decoding or normalising (the common case, checked in one pass). */
function plain(p: string): boolean {
  let prev = 0;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 0x25) return false;
    if (c === 0x2f && prev === 0x2f) return false;
    if (c === 0x2e && prev === 0x2f) return false;
    prev = c;
  }
  return true;
}

export interface PathAndQuery {
  path: string;
  query: string;
}

/** Split and normalise a request-target of the given form; throws {@link HttpError} 400. */
export function pathAndQuery(
  target: string,
  form: "origin" | "absolute" | "authority" | "asterisk",
  mergeSlashes: boolean,
): PathAndQuery {
  let rest = target;
  if (form === "authority" || form === "asterisk") return { path: "/", query: "" };
  if (form === "absolute") {
    const start = target.indexOf("//") + 2;
    let i = start;
    while (i < target.length) {
      const c = target.charCodeAt(i);
      if (c === 0x2f || c === 0x3f) break;
      i++;
    }
    rest = target.slice(i);
    if (rest === "" || rest.charCodeAt(0) === 0x3f) rest = `/${rest}`;
  }
  const q = rest.indexOf("?");
  const rawPath = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? "" : rest.slice(q + 1);
  if (plain(rawPath)) return { path: rawPath, query };
  return { path: normalise(decode(rawPath), mergeSlashes), query };
}
