/**
 * The web server's own narrow request/response interface: what every module sees, instead of
 * node:http's objects, so the HTTP engine beneath (node:http and node:http2 today, an engine of
 * our own later) can be replaced without touching a module.
 *
 * An engine turns each request it parses into a {@link WebRequest}, hands it to the pipeline, and
 * writes the {@link WebResponse} the pipeline returns: its status, its fields (headers), and its
 * {@link Body}, whose kind tells the engine how to send it best (bytes in one write, a file range
 * by the fastest path the engine has, a stream with backpressure, or the raw connection handed
 * over for a tunnel). The engine owns framing: Content-Length or chunked, HEAD, 304/204 without
 * a body, keep-alive, `Date` and `Server`.
 *
 * Field names are lowercase everywhere in this interface.
 */
import type { Duplex, Readable } from "node:stream";
import type { AbortLike } from "../core/abort.ts";

/**
 * An ordered list of header fields with lowercase names, as a flat array
 * `[name0, value0, name1, value1, ...]` (cheap to build from a parser and to write out).
 * Repeated names stay separate entries (`set-cookie` is never folded).
 */
export class Fields {
  /** `[name, value, name, value, ...]`; names lowercase. Exposed for engines; modules use methods. */
  readonly list: string[];

  constructor(list: string[] = []) {
    this.list = list;
  }

  /** From `[name, value]` pairs or a record; names are lowercased. */
  static from(init: Iterable<readonly [string, string]> | Record<string, string>): Fields {
    const out = new Fields();
    const entries = Symbol.iterator in init ? init : Object.entries(init);
    for (const [k, v] of entries as Iterable<readonly [string, string]>) out.append(k, v);
    return out;
  }

  /** The first value of `name`, or undefined. */
  get(name: string): string | undefined {
    const l = this.list;
    for (let i = 0; i < l.length; i += 2) if (l[i] === name) return l[i + 1];
    return undefined;
  }

  /** Every value of `name`, in order. */
  getAll(name: string): string[] {
    const out: string[] = [];
    const l = this.list;
    for (let i = 0; i < l.length; i += 2) if (l[i] === name) out.push(l[i + 1]!);
    return out;
  }

  /** The values of `name` joined with ", " (how a list-valued field reads), or undefined. */
  joined(name: string): string | undefined {
    const all = this.getAll(name);
    return all.length === 0 ? undefined : all.join(", ");
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Add a field after the others. */
  append(name: string, value: string): void {
    this.list.push(name.toLowerCase(), value);
  }

  /** Replace every field `name` by one with `value`. */
  set(name: string, value: string): void {
    const n = name.toLowerCase();
    this.delete(n);
    this.list.push(n, value);
  }

  /** Remove every field `name`; returns whether there was one. */
  delete(name: string): boolean {
    const n = name.toLowerCase();
    const l = this.list;
    let w = 0;
    for (let r = 0; r < l.length; r += 2) {
      if (l[r] === n) continue;
      l[w] = l[r]!;
      l[w + 1] = l[r + 1]!;
      w += 2;
    }
    const removed = w !== l.length;
    l.length = w;
    return removed;
  }

  /** `[name, value]` pairs in order. */
  *[Symbol.iterator](): IterableIterator<[string, string]> {
    const l = this.list;
    for (let i = 0; i < l.length; i += 2) yield [l[i]!, l[i + 1]!];
  }

  clone(): Fields {
    return new Fields([...this.list]);
  }
}

/** TLS details of the client connection. */
export interface WebTls {
  /** The SNI name the client sent, if any. */
  readonly servername: string | undefined;
  /** e.g. `TLSv1.3`. */
  readonly protocol: string | undefined;
  readonly cipher: string | undefined;
  /** The ALPN protocol chosen (`h2`, `http/1.1`), if any. */
  readonly alpn: string | undefined;
}

/** The client connection a request came on. */
export interface WebConnection {
  /** Unique within the worker; requests on one keep-alive connection share it. */
  readonly id: number;
  /** The peer's IP address (`""` for a unix socket peer). nginx `$remote_addr` before realip. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** The listen address (as configured) this connection was accepted on: routes to servers. */
  readonly listener: string;
  readonly tls: WebTls | undefined;
  /** Requests served on this connection before the current one. */
  readonly requests: number;
}

/**
 * The request body, read at most once. The engine enforces the size limit (a declared length over
 * it is refused before the body is read; a chunked body growing over it fails the read with a
 * {@link HttpError} 413) and the body read timeout (408).
 */
export interface RequestBody {
  /** The declared `Content-Length`; undefined for a chunked (or HTTP/2 length-less) body. */
  readonly length: number | undefined;
  /** True when the request has no body at all (no length or length 0, not chunked). */
  readonly empty: boolean;
  /** Whether `stream()` / `buffer()` was called. */
  readonly consumed: boolean;
  /** The body as a stream of chunks, with backpressure. */
  stream(): Readable;
  /** The whole body in memory (bounded by the engine's limit). */
  buffer(): Promise<Buffer>;
  /** Read and drop the rest of the body (so the connection can be reused). */
  discard(): Promise<void>;
}

/**
 * One request as modules see it. Fixed facts about what arrived are read-only; `path` and `query`
 * may be changed by rewrites (nginx's `$uri` and `$args`), `vars` is for values modules pass on.
 */
export interface WebRequest {
  /** Uppercase method as received. */
  readonly method: string;
  /** The request-target exactly as received (nginx `$request_uri`): origin, absolute or authority form. */
  readonly target: string;
  /** `1.0`, `1.1` or `2`. */
  readonly httpVersion: "1.0" | "1.1" | "2";
  readonly fields: Fields;
  /** The Host (or `:authority`), lowercased, without the port; "" when absent. */
  readonly host: string;
  /** `https` when the connection is TLS. */
  readonly scheme: "http" | "https";
  readonly connection: WebConnection;
  /**
   * The current path, percent-decoded once and normalised (no `.`/`..` segments, no `//`), always
   * starting with `/` (nginx `$uri`). Rewrites change it; the original stays in `target`. A
   * CONNECT to an authority (`example.com:443`) has the path "/" and that authority's host.
   */
  path: string;
  /** The current query string without `?` ("" when none; nginx `$args`). */
  query: string;
  readonly body: RequestBody;
  /** Aborted when the client goes away (or the worker stops fast). */
  readonly signal: AbortSignal;
  /**
   * The same as `signal` (aborted when the client goes away), without an AbortController made
   * for the request: what the proxy hands the upstream engine. Use `signal` for APIs that need
   * a real AbortSignal.
   */
  readonly clientGone: AbortLike;
  /** Whether the client went away (`signal.aborted`, without making the signal). */
  readonly aborted: boolean;
  /** Milliseconds since the epoch when the request head was complete. */
  readonly startTime: number;
  /** A unique id (nginx `$request_id`): 32 hex chars. */
  readonly id: string;
  /**
   * Variables set by modules for others and for the log (regex captures `1`..`9` and named
   * captures from location/rewrite matches, `realip`, `upstream_addr`, `cache_status`, ...).
   */
  readonly vars: Map<string, string>;
  /**
   * For an `Upgrade` request or `CONNECT`: the engine can hand the raw connection over (see
   * {@link TakeoverBody}). False for an ordinary request and for HTTP/2.
   */
  readonly canTakeover: boolean;
}

/** What to send as the response body. The engine picks the best way to write each kind. */
export type Body = EmptyBody | BytesBody | FileBody | StreamBody | TakeoverBody;

/** No body (the engine sends `Content-Length: 0` where one is due). */
export interface EmptyBody {
  readonly kind: "empty";
}

/** A body already in memory: written with the head in one go. */
export interface BytesBody {
  readonly kind: "bytes";
  readonly data: Uint8Array | string;
  /**
   * `data` is never changed, now or later (a cache's copy of a file, served again and again):
   * the engine may keep its bytes with the head for the next response with the same head and
   * the same `data` (a string never changes anyway).
   */
  readonly shared?: boolean;
}

/**
 * A byte range of an open file, `[start, end)`. The engine owns and closes `fd` once the response
 * is written or abandoned (unless `keepOpen`: an open-file cache owns it then).
 */
export interface FileBody {
  readonly kind: "file";
  readonly fd: number;
  readonly start: number;
  readonly end: number;
  /** For logs and errors. */
  readonly path: string;
  readonly keepOpen?: boolean;
}

/** A body produced as it goes; `length` when known in advance (else chunked / close-delimited). */
export interface StreamBody {
  readonly kind: "stream";
  readonly stream: Readable;
  readonly length?: number | undefined;
}

/**
 * Hand the client connection over (WebSocket and other upgrades, CONNECT tunnels). The engine
 * writes the status line and fields (e.g. `101` with the upstream's fields, or `200` for CONNECT),
 * then calls `onSocket` with the raw connection and any bytes the client sent past the head; from
 * then on the connection is the callback's and the engine forgets it. The socket may be handed
 * over paused (so that no byte is read before the callback listens): call `resume()` (or
 * `pipe()`) once its listeners are attached.
 *
 * If `onSocket` returns a promise, the exchange completes (the log phase runs) when it settles,
 * not when the head is written: a tunnel is logged when it ends, with its duration, and with the
 * bytes that went over the connection after the head (`bodyBytesSent` to the client,
 * `bodyBytesReceived` from it, `head` included), so that vars set meanwhile are in the log.
 */
export interface TakeoverBody {
  readonly kind: "takeover";
  onSocket(socket: Duplex, head: Buffer): void | Promise<void>;
}

/**
 * A response: status, fields and body. Filters may replace any part.
 *
 * Framing is the engine's: it drops `content-length`, `transfer-encoding`, `connection` and
 * `keep-alive` from `fields` and writes its own from the body, except that a `content-length`
 * set on a response with an `empty` body to a HEAD request, or on a 304, is kept (it states the
 * length of the representation, as a proxied HEAD or a revalidation needs). The engine adds
 * `server` unless the response has one; a `server` field with an empty value means none at all.
 * Status 444 (nginx's) sends nothing: the engine closes the connection (HTTP/2: resets the
 * stream).
 */
export interface WebResponse {
  status: number;
  /** Reason phrase; default the standard one. */
  reason?: string;
  fields: Fields;
  body: Body;
}

/** Build a response; `fields` may be a `Fields`, pairs or a record. */
export function response(
  status: number,
  body: Body | string | Uint8Array = { kind: "empty" },
  fields: Fields | Record<string, string> | [string, string][] = new Fields(),
): WebResponse {
  const b: Body =
    typeof body === "string" || body instanceof Uint8Array ? { kind: "bytes", data: body } : body;
  return { status, fields: fields instanceof Fields ? fields : Fields.from(fields), body: b };
}

/**
 * An error with an HTTP status, thrown by a module (or by a body read) to answer with that status:
 * the pipeline turns it into the server's error response (custom error page if configured).
 * `close` asks the engine to close the connection after the response (malformed input).
 */
export class HttpError extends Error {
  readonly status: number;
  readonly close: boolean;
  readonly fields: Fields | undefined;
  constructor(
    status: number,
    message?: string,
    options: { close?: boolean; fields?: Fields; cause?: unknown } = {},
  ) {
    super(message ?? `HTTP ${status}`, options.cause === undefined ? {} : { cause: options.cause });
    this.name = "HttpError";
    this.status = status;
    this.close = options.close ?? false;
    this.fields = options.fields;
  }
}
