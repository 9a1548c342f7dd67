/**
 * The static content handler: from a request to a file, a directory listing, a redirect, an
 * internal redirect (index, try_files fallback) or an error, in nginx's order:
 *
 *   try_files (if set) -> map the path (root/alias) -> dotfiles -> look up ->
 *   directory: 301 to add the slash, index (internal redirect), autoindex, else 403 ->
 *   file: method (405) -> precompressed sibling -> preconditions (304/412) -> Range (206/416) -> 200
 */
import { close as closeFd, read } from "node:fs";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { type Coding, codingSuffix, negotiateEncoding } from "../contentCoding.ts";
import { type Body, Fields, HttpError, type WebRequest, type WebResponse } from "../exchange.ts";
import type { Reroute } from "../module.ts";
import { listDirectory, prefersJson, renderHtml, renderJson } from "./autoindex.ts";
import {
  evaluatePreconditions,
  type IfModifiedSincePolicy,
  ifRangeHolds,
  type Validators,
} from "./conditional.ts";
import type { TypeNamer } from "./mime.ts";
import type { Found, Lookup, OpenFileCache } from "./openFileCache.ts";
import { encodePath, hiddenSegment, type Mapping, mapPath, refusePath } from "./paths.ts";
import { type ByteRange, contentRange, multipart, parseRange } from "./range.ts";
import type { SymlinkPolicy } from "./symlinks.ts";

const readAsync = promisify(read);
const closeAsync = promisify(closeFd);

/** `tryFiles`, compiled: each entry a template of the request. */
export interface CompiledTryFiles {
  readonly tests: readonly { readonly render: Render; readonly directory: boolean }[];
  readonly fallback:
    | { readonly kind: "uri"; readonly render: Render }
    | { readonly kind: "named"; readonly name: string }
    | { readonly kind: "status"; readonly status: number };
}

/** A compiled setting text with `$variables`. */
export type Render = (req: WebRequest) => string;

/** How the location maps paths: a mapping, or for a regex alias, one rendered per request. */
export type MappingOf =
  | Exclude<Mapping, { kind: "aliasRegex" }>
  | { readonly kind: "aliasRegex"; readonly render: Render; readonly dir: string };

/** Everything the handler needs for one location, compiled by `setup`. */
export interface StaticConfig {
  readonly mapping: MappingOf;
  readonly index: readonly string[];
  readonly autoindex: boolean;
  readonly autoindexFormat: "html" | "json";
  readonly tryFiles: CompiledTryFiles | undefined;
  readonly types: TypeNamer;
  readonly etag: boolean;
  readonly ifModifiedSince: IfModifiedSincePolicy;
  readonly symlinks: SymlinkPolicy;
  readonly dotfiles: "ignore" | "deny" | "allow";
  readonly precompressed: readonly Coding[];
  readonly maxRanges: number;
  readonly files: OpenFileCache;
  /** Entries an autoindex lists at most. */
  readonly listLimit: number;
}

const allow = Fields.from({ allow: "GET, HEAD" });

/** Where a request path leads, before the file system is asked. */
type Located =
  /** `key`: the file, without a trailing slash, as the open-file cache names it. */
  { readonly ok: true; readonly key: string } | { readonly ok: false; readonly status: number };

function notFound(): HttpError {
  return new HttpError(404);
}

/**
 * The answer to a failed lookup (nginx's mapping of open() errors): 404 or 403, else a plain
 * Error (EMFILE, EIO...) that the pipeline logs and answers with 500.
 */
function lookupError(missing: { readonly code: string; readonly path: string }): Error {
  switch (missing.code) {
    case "ENOENT":
    case "ENOTDIR":
    case "ENAMETOOLONG":
    case "ESPECIAL":
      return new HttpError(404);
    case "EACCES":
    case "EPERM":
    case "ELOOP":
      return new HttpError(403);
    default:
      return new Error(`static: cannot open ${missing.path}: ${missing.code}`);
  }
}

/** The path a `tryFiles` test names for this request. */
function tryUri(req: WebRequest, test: CompiledTryFiles["tests"][number]): string {
  // `$uri/` of "/d/" is "/d//": merged, as the core merges a request's slashes.
  let uri = test.render(req);
  if (uri.includes("//")) uri = uri.replace(/\/{2,}/g, "/");
  if (test.directory && !uri.endsWith("/")) uri += "/";
  if (!uri.startsWith("/")) uri = `/${uri}`;
  return uri;
}

/** What `tryFiles` does when no test matched: its fallback. */
function tryFallback(req: WebRequest, t: CompiledTryFiles): WebResponse | Reroute {
  const f = t.fallback;
  if (f.kind === "named") return { reroute: f.name };
  if (f.kind === "uri") {
    // As nginx: the fallback's query is what it says, none if it says none (a reroute without
    // "?" would keep the client's).
    const uri = f.render(req);
    return { reroute: uri.includes("?") ? uri : `${uri}?` };
  }
  if (f.status >= 400) throw new HttpError(f.status);
  return { status: f.status, fields: new Fields(), body: { kind: "empty" } };
}

/** Request paths whose mapping {@link StaticHandler} remembers, at most (then it starts over). */
const LOCATED_MAX = 1024;
/** Longer paths are mapped every time (the memory stays within 1024 × 256 characters). */
const LOCATED_PATH_MAX = 256;

export class StaticHandler {
  readonly #c: StaticConfig;
  /**
   * Where request paths led (a pure function of the path for `root` and prefix `alias`: no file
   * system in it), so that a hot path is checked and normalised once, not per request.
   */
  readonly #located = new Map<string, Located>();
  /**
   * The header fields of the whole-file 200 for a file held in memory, per open-file-cache entry
   * (a changed file is a new entry), for requests with no precondition or range: copied into
   * each answer (filters and the cache may change an answer's fields), not worked out again.
   */
  readonly #whole = new WeakMap<Found, { type: string; list: readonly string[] }>();

  constructor(config: StaticConfig) {
    this.#c = config;
  }

  /**
   * The content handler. A small file found fresh in the cache is answered synchronously (no
   * promise: the hot path of a static server); everything else goes the asynchronous way.
   */
  handle = (req: WebRequest): WebResponse | Reroute | Promise<WebResponse | Reroute> => {
    const c = this.#c;
    if (c.tryFiles !== undefined) return this.#tryFiles(req, c.tryFiles);
    const at = this.#locate(req, req.path);
    if (!at.ok) throw new HttpError(at.status);
    const key = at.key;
    const hit = c.files.peek(key);
    if (
      hit?.ok &&
      hit.allowed &&
      !hit.directory &&
      hit.data !== undefined &&
      c.precompressed.length === 0 &&
      (req.method === "GET" || req.method === "HEAD") &&
      !req.path.endsWith("/")
    ) {
      return this.#respond(req, hit, undefined, c.types.forPath(hit.path), undefined, false);
    }
    return c.files.lookup(key).then((lookup) => this.#serve(req, req.path, lookup));
  };

  /** Map a request path to a file, refusing unsafe and hidden paths. */
  #locate(req: WebRequest, path: string): Located {
    if (this.#c.mapping.kind === "aliasRegex" || path.length > LOCATED_PATH_MAX) {
      return this.#map(req, path);
    }
    const known = this.#located.get(path);
    if (known !== undefined) return known;
    const at = this.#map(req, path);
    if (this.#located.size >= LOCATED_MAX) this.#located.clear();
    this.#located.set(path, at);
    return at;
  }

  #map(req: WebRequest, path: string): Located {
    const refusal = refusePath(path);
    if (refusal === "bad") return { ok: false, status: 400 };
    if (refusal === "too long") return { ok: false, status: 404 };
    const c = this.#c.mapping;
    const m: Mapping =
      c.kind === "aliasRegex" ? { kind: "aliasRegex", dir: c.dir, expand: () => c.render(req) } : c;
    const file = mapPath(path, m);
    if (file === undefined) return { ok: false, status: 404 };
    if (this.#c.dotfiles !== "allow" && hiddenSegment(file.slice(m.dir.length))) {
      return { ok: false, status: this.#c.dotfiles === "deny" ? 403 : 404 };
    }
    return { ok: true, key: stripSlash(file) };
  }

  /**
   * `tryFiles`: the first test that names an existing file (or directory), else the fallback.
   * While every test's answer is fresh in the open-file cache (the steady state: `brigade up`'s
   * embedded default tries `$uri` and `$uri/index.html` before each app request), it decides
   * synchronously, without a promise per test; from the first test the cache cannot answer
   * without a system call, it goes on asynchronously (`#tryFilesFrom`).
   */
  #tryFiles(
    req: WebRequest,
    t: CompiledTryFiles,
  ): WebResponse | Reroute | Promise<WebResponse | Reroute> {
    const c = this.#c;
    const now = Date.now();
    for (let i = 0; i < t.tests.length; i++) {
      const test = t.tests[i]!;
      const uri = tryUri(req, test);
      const at = this.#locate(req, uri);
      if (!at.ok) continue;
      const lookup = c.files.peek(at.key, now);
      if (lookup === undefined) return this.#tryFilesFrom(req, t, i);
      if (!lookup.ok || !lookup.allowed || lookup.directory !== test.directory) continue;
      // nginx changes $uri to the entry that matched.
      req.path = uri;
      if (
        lookup.data !== undefined &&
        !lookup.directory &&
        c.precompressed.length === 0 &&
        (req.method === "GET" || req.method === "HEAD") &&
        !uri.endsWith("/")
      ) {
        // A small file held in memory: as `handle`'s synchronous path.
        return this.#respond(
          req,
          lookup,
          undefined,
          c.types.forPath(lookup.path),
          undefined,
          false,
        );
      }
      return this.#serve(req, uri, lookup);
    }
    return tryFallback(req, t);
  }

  /** `tryFiles` from test `from` on, asking the cache (and the file system) asynchronously. */
  async #tryFilesFrom(
    req: WebRequest,
    t: CompiledTryFiles,
    from: number,
  ): Promise<WebResponse | Reroute> {
    const c = this.#c;
    for (let i = from; i < t.tests.length; i++) {
      const test = t.tests[i]!;
      const uri = tryUri(req, test);
      const at = this.#locate(req, uri);
      if (!at.ok) continue;
      const lookup = await c.files.lookup(at.key);
      if (!lookup.ok || !lookup.allowed || lookup.directory !== test.directory) continue;
      // nginx changes $uri to the entry that matched.
      req.path = uri;
      return this.#serve(req, uri, lookup);
    }
    return tryFallback(req, t);
  }

  async #serve(req: WebRequest, uri: string, lookup: Lookup): Promise<WebResponse | Reroute> {
    if (!lookup.ok) throw lookupError(lookup);
    if (!lookup.allowed) throw new HttpError(403);
    const get = req.method === "GET" || req.method === "HEAD";
    if (!get) throw new HttpError(405, undefined, { fields: allow.clone() });
    if (lookup.directory) return this.#directory(req, uri, lookup);
    if (uri.endsWith("/")) throw notFound();
    return this.#file(req, lookup);
  }

  async #directory(req: WebRequest, uri: string, dir: Found): Promise<WebResponse | Reroute> {
    const c = this.#c;
    if (!uri.endsWith("/")) {
      const location = encodePath(`${uri}/`) + (req.query === "" ? "" : `?${req.query}`);
      return redirect(301, location);
    }
    for (const name of c.index) {
      if (name.startsWith("/")) return { reroute: name };
      const found = await c.files.lookup(`${stripSlash(dir.path)}/${name}`);
      if (found.ok && !found.directory && found.allowed) {
        return { reroute: uri + name + (req.query === "" ? "" : `?${req.query}`) };
      }
    }
    if (!c.autoindex) throw new HttpError(403);
    const entries = await listDirectory(dir.path, {
      showHidden: c.dotfiles === "allow",
      symlinks: c.symlinks,
      limit: c.listLimit,
    });
    const fields = new Fields();
    let text: string;
    if (c.autoindexFormat === "json" || prefersJson(req.fields.get("accept"))) {
      fields.append("content-type", c.types.withCharset("application/json"));
      text = renderJson(entries);
    } else {
      fields.append("content-type", "text/html; charset=utf-8");
      text = renderHtml(uri, entries);
    }
    if (c.autoindexFormat === "html") fields.append("vary", "Accept");
    return { status: 200, fields, body: { kind: "bytes", data: Buffer.from(text) } };
  }

  async #file(req: WebRequest, original: Found): Promise<WebResponse> {
    const c = this.#c;
    const type = c.types.forPath(original.path);
    let file = original;
    let encoding: Coding | undefined;
    let vary = false;
    if (c.precompressed.length > 0) {
      const available: Coding[] = [];
      const siblings = new Map<Coding, Found>();
      for (const coding of c.precompressed) {
        const s = await c.files.lookup(original.path + codingSuffix[coding]);
        if (s.ok && !s.directory && s.allowed) {
          available.push(coding);
          siblings.set(coding, s);
        }
      }
      if (available.length > 0) {
        vary = true;
        encoding = negotiateEncoding(req.fields.joined("accept-encoding"), available);
        if (encoding !== undefined) file = siblings.get(encoding)!;
      }
    }

    // A file not held in memory is opened now: its descriptor's facts are the truth for the
    // headers (the cached ones may be up to `valid` old).
    let fd: number | undefined;
    if (file.data === undefined) {
      const opened = await c.files.open(file.path);
      if ("code" in opened) throw lookupError(opened);
      fd = opened.fd;
      file = opened.found;
      if (!file.allowed || file.directory) {
        await closeAsync(fd).catch(() => {});
        throw new HttpError(file.directory ? 404 : 403);
      }
    }

    try {
      return this.#respond(req, file, fd, type, encoding, vary);
    } catch (err) {
      if (fd !== undefined) await closeAsync(fd).catch(() => {});
      throw err;
    }
  }

  /** Headers, preconditions and ranges for a file (from memory or from `fd`, which we then own). */
  #respond(
    req: WebRequest,
    file: Found,
    fd: number | undefined,
    type: string,
    encoding: Coding | undefined,
    vary: boolean,
  ): WebResponse {
    const c = this.#c;
    const memo = fd === undefined && encoding === undefined && !vary && plain(req.fields);
    if (memo) {
      const m = this.#whole.get(file);
      if (m !== undefined && m.type === type) {
        return { status: 200, fields: new Fields(m.list.slice()), body: whole(file) };
      }
    }
    const validators: Validators = {
      etag: c.etag ? file.etag : undefined,
      lastModified: file.mtimeMs,
    };
    const fields = new Fields();
    fields.list.push("last-modified", file.lastModified);
    if (validators.etag !== undefined) fields.list.push("etag", validators.etag);
    if (vary) fields.list.push("vary", "Accept-Encoding");

    const pre = evaluatePreconditions(req.method, req.fields, validators, c.ifModifiedSince);
    if (pre === "failed") throw new HttpError(412);
    if (pre === "not-modified") {
      if (fd !== undefined) closeFd(fd, () => {});
      return { status: 304, fields, body: { kind: "empty" } };
    }

    fields.list.push("content-type", type);
    if (encoding !== undefined) fields.list.push("content-encoding", encoding);
    if (c.maxRanges > 0) fields.list.push("accept-ranges", "bytes");

    const rangeField = req.method === "GET" ? req.fields.get("range") : undefined;
    if (rangeField !== undefined && ifRangeHolds(req.fields, validators)) {
      const r = parseRange(rangeField, file.size, c.maxRanges);
      if (r.kind === "unsatisfiable") {
        throw new HttpError(416, undefined, {
          fields: Fields.from({ "content-range": `bytes */${file.size}` }),
        });
      }
      if (r.kind === "ranges") {
        if (r.ranges.length === 1) {
          const range = r.ranges[0]!;
          fields.list.push("content-range", contentRange(range, file.size));
          return { status: 206, fields, body: slice(file, fd, range) };
        }
        const mp = multipart(r.ranges, file.size, type);
        fields.set("content-type", mp.contentType);
        return {
          status: 206,
          fields,
          body: multipartBody(file, fd, r.ranges, mp.heads, mp.tail, mp.length),
        };
      }
    }
    if (memo) this.#whole.set(file, { type, list: fields.list.slice() });
    return { status: 200, fields, body: slice(file, fd, { start: 0, end: file.size }) };
  }
}

/**
 * The body of a file held in memory, whole: the open-file cache's copy, which never changes (a
 * changed file is loaded anew), so `shared`.
 */
function whole(file: Found): Body {
  return { kind: "bytes", data: file.data!, shared: true };
}

/** No precondition and no range (no `If-*`, no `Range`): the answer depends on the file alone. */
function plain(fields: WebRequest["fields"]): boolean {
  const l = fields.list;
  for (let i = 0; i < l.length; i += 2) {
    const n = l[i]!;
    if ((n.charCodeAt(0) === 105 && n.startsWith("if-")) || n === "range") return false;
  }
  return true;
}

function stripSlash(path: string): string {
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

function redirect(status: number, location: string): WebResponse {
  const fields = Fields.from({ location, "content-type": "text/html" });
  const body = `<html>\r\n<head><title>${status} Moved Permanently</title></head>\r\n<body>\r\n<center><h1>${status} Moved Permanently</h1></center>\r\n</body>\r\n</html>\r\n`;
  return { status, fields, body: { kind: "bytes", data: body } };
}

function slice(file: Found, fd: number | undefined, range: ByteRange): Body {
  if (file.data !== undefined) {
    if (range.start === 0 && range.end === file.data.length) return whole(file);
    return { kind: "bytes", data: file.data.subarray(range.start, range.end) };
  }
  return { kind: "file", fd: fd!, start: range.start, end: range.end, path: file.path };
}

const chunkSize = 64 * 1024;

function multipartBody(
  file: Found,
  fd: number | undefined,
  ranges: readonly ByteRange[],
  heads: readonly Buffer[],
  tail: Buffer,
  length: number,
): Body {
  if (file.data !== undefined) {
    const parts: Buffer[] = [];
    ranges.forEach((r, i) => {
      parts.push(heads[i]!, file.data!.subarray(r.start, r.end));
    });
    parts.push(tail);
    return { kind: "bytes", data: Buffer.concat(parts, length) };
  }
  const descriptor = fd!;
  let open = true;
  const release = () => {
    if (open) closeFd(descriptor, () => {});
    open = false;
  };
  async function* produce(): AsyncGenerator<Buffer> {
    try {
      for (let i = 0; i < ranges.length; i++) {
        yield heads[i]!;
        const r = ranges[i]!;
        for (let pos = r.start; pos < r.end; ) {
          const n = Math.min(chunkSize, r.end - pos);
          const buf = Buffer.allocUnsafe(n);
          const { bytesRead } = await readAsync(descriptor, buf, 0, n, pos);
          if (bytesRead === 0) throw new Error(`${file.path} shrank while being sent`);
          yield bytesRead === n ? buf : buf.subarray(0, bytesRead);
          pos += bytesRead;
        }
      }
      yield tail;
    } finally {
      release();
    }
  }
  const stream = Readable.from(produce(), { objectMode: false });
  // Destroyed before the first read, the generator never runs its `finally`.
  stream.once("close", release);
  return { kind: "stream", stream, length };
}
