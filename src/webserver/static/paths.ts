/**
 * From a request path to a file path, safely: nginx's `root` and `alias`, checked so that no
 * request path can name anything outside the directory it maps into. Pure: no I/O (symbolic
 * links are the business of symlinks.ts).
 *
 * The core hands us `req.path` percent-decoded once and normalised (no `.`/`..` segments, no
 * `//`). We do not trust that alone: the checks here hold for any string.
 */
import { isAbsolute, normalize } from "node:path";

/** How a location maps request paths to files. */
export type Mapping =
  /** nginx `root`: the file is `dir + path`. */
  | { readonly kind: "root"; readonly dir: string }
  /**
   * nginx `alias` in a prefix (or exact) location: the location's prefix is replaced by `dir`.
   * A path that does not start with the prefix maps to nothing.
   */
  | {
      readonly kind: "alias";
      /** Clean (see {@link cleanDir}): what the result must stay inside. */
      readonly dir: string;
      /** As written (absolute), with or without its trailing slash: nginx concatenates. */
      readonly raw: string;
      readonly prefix: string;
    }
  /**
   * nginx `alias` in a regex location: `expand` renders its template (with the captures) into
   * the whole file path; `dir` is the template's part before the first variable, which the
   * result must stay inside.
   */
  | { readonly kind: "aliasRegex"; readonly expand: () => string; readonly dir: string };

/** Why a request path is refused before any file is looked at. */
export type PathRefusal =
  /** NUL byte or a `..` segment (also between backslashes): 400, as nginx does for `..`. */
  | "bad"
  /** Longer than a file path can be: nginx answers 404 for ENAMETOOLONG, so do we. */
  | "too long";

/** Linux's PATH_MAX. */
export const maxPathLength = 4096;

const dotDot = /(?:^|[/\\])\.\.(?:[/\\]|$)/;

/** Check a request path (or a piece of one) before mapping it. */
export function refusePath(path: string): PathRefusal | undefined {
  if (path.includes("\0")) return "bad";
  if (dotDot.test(path)) return "bad";
  if (path.length > maxPathLength) return "too long";
  return undefined;
}

/**
 * The directory a location's `root`/`alias` names, as an absolute path without a trailing slash
 * (except `/` itself).
 */
export function cleanDir(dir: string): string {
  const n = normalize(dir);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/**
 * The file a request path names under `mapping`, or undefined when it names nothing there (an
 * alias prefix that does not match, a result that would leave the directory). `path` must have
 * passed {@link refusePath}. The result is absolute and normalised, inside `mapping.dir`.
 *
 * Unlike nginx, an alias whose location prefix lacks the trailing slash its directory has
 * (`location /img { alias /data/img/; }`) cannot be walked out of with `/img../secret`.
 */
export function mapPath(path: string, mapping: Mapping): string | undefined {
  let file: string;
  if (mapping.kind === "root") {
    file = `${mapping.dir}/${path}`;
  } else if (mapping.kind === "alias") {
    if (!path.startsWith(mapping.prefix)) return undefined;
    const rest = path.slice(mapping.prefix.length);
    if (refusePath(rest) !== undefined) return undefined;
    // nginx's concatenation: `/img/` + alias `/data/img/` maps `/img/a` to `/data/img/a`. A
    // result that is not inside the directory (`location /img` with `alias /data/img` and
    // `/imgx`) is refused below instead of naming the sibling `/data/imgx`.
    file = mapping.raw + rest;
  } else {
    file = mapping.expand();
    if (refusePath(file) !== undefined || !isAbsolute(file)) return undefined;
  }
  const n = normalize(file);
  const inside = n === mapping.dir || n.startsWith(mapping.dir === "/" ? "/" : `${mapping.dir}/`);
  if (!inside) return undefined;
  // Keep a trailing slash: it says "a directory" to the caller.
  return n;
}

/**
 * True when a segment of `relative` (a path below the mapping's directory) starts with a dot,
 * other than `.well-known` (RFC 8615: ACME challenges, security.txt).
 */
export function hiddenSegment(relative: string): boolean {
  let start = 0;
  while (start < relative.length) {
    let end = relative.indexOf("/", start);
    if (end < 0) end = relative.length;
    if (relative.charCodeAt(start) === 46 /* . */) {
      const seg = relative.slice(start, end);
      if (seg !== ".well-known") return true;
    }
    start = end + 1;
  }
  return false;
}

/**
 * Percent-encode a path for a `Location` field: everything but unreserved characters, `/` and
 * the sub-delimiters that are safe in a path. A backslash is encoded, so `/\evil.example/` can
 * never read as a protocol-relative URL.
 */
export function encodePath(path: string): string {
  // encodeURI leaves `?` and `#` alone (they are URI syntax); in a path they are data.
  return encodeURI(path.toWellFormed()).replace(/[?#]/g, (c) => (c === "?" ? "%3F" : "%23"));
}
