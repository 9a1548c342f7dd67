/**
 * Brigade's own upstream HTTP/1.1 client: a per-peer keep-alive pool of `net` sockets whose
 * responses are read by the engine's parser in response mode (src/core/http1/parser.ts), the
 * same strict parser that reads requests. The proxy's transport (undici's is the fallback:
 * `BRIGADE_UPSTREAM_CLIENT=undici`).
 *
 * - Strict: a response that could be framed two ways (Content-Length and Transfer-Encoding,
 *   disagreeing lengths, a coding other than chunked), a bad status line, bare LFs, a field
 *   the grammar refuses: a `badResponse` (502), and the connection is closed. A body cut short
 *   (the peer closed, reset, or sent bytes the framing refuses) fails the body stream: the
 *   consumer aborts its client rather than pass on a truncated or corrupted response.
 * - Reuse only when it is safe: the response was framed by its length or by chunked and read to
 *   its end, the request was sent whole, the peer did not say `Connection: close` (or HTTP/1.0
 *   without keep-alive), and no byte arrived that no request asked for. Anything else closes it;
 *   a connection is never reused after an error.
 * - The request head is one string written in one `write` (with an in-memory body, one corked
 *   `writev`); a streamed body is written as it comes with backpressure, with its
 *   Content-Length when it has one (checked), else chunked. Response body pieces are views into
 *   the socket's buffers (no copies); when the consumer stops reading, the parser keeps the rest
 *   and the socket is paused.
 * - 1xx interim responses (100 Continue, 103 Early Hints) are skipped; a 101 answers an upgrade
 *   (the socket is handed over, paused, with the bytes after the head); HEAD, 204, 304 have no
 *   body whatever their fields say.
 * - Timeouts: connect (the connector's), send (no write progress while bytes wait in the
 *   socket), read (the response head; then between two reads of the body), idle (a kept
 *   connection; shortened by the peer's `Keep-Alive: timeout=N`). Deadlines, looked at when
 *   the connection's timer fires (about once per timeout period), not a timer touched per
 *   request.
 * - Answers go to the caller's callbacks (`ResponseHandler`), synchronously from the socket's
 *   events: no promise between the exchange and the group's retry driver.
 */

import type { Socket } from "node:net";
import { Readable } from "node:stream";
import type { AbortLike } from "../core/abort.ts";
import {
  BODY,
  defaultLimits,
  END,
  H1Parser,
  HEAD,
  type Head,
  NEED_MORE,
  type ParseError,
  type ParserLimits,
} from "../core/http1/parser.ts";
import { detached, READ_BUFFER, readView } from "../core/http1/readBuffer.ts";
import { sameStrings } from "../core/lists.ts";
import { classifyError, UpstreamError } from "./errors.ts";
import { type PeerTarget, targetName } from "./peer.ts";
import {
  dial,
  dropHeaders,
  idempotent,
  isReplayable,
  type PoolOptions,
  type PoolStats,
  type RequestHeaders,
  type ResponseHandler,
  type UpgradeResponse,
  type UpstreamRequest,
  type UpstreamResponse,
} from "./transport.ts";

const EMPTY = Buffer.alloc(0);

/** Response heads: a little roomier than requests' (applications set many cookies). */
const responseLimits: ParserLimits = { ...defaultLimits, maxHeaderCount: 256 };

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE_RE = /[\0\r\n]/;
const BAD_TARGET_RE = /[\0-\x20\x7f]/;
const KEEP_ALIVE_TIMEOUT_RE = /(?:^|[,;\s])timeout=(\d+)/i;

/** A field that cannot be sent: classified `invalidRequest` (500, not the peer's, not retried). */
function headerError(message: string): Error {
  return Object.assign(new TypeError(message), { code: "ERR_INVALID_HTTP_TOKEN" });
}

/**
 * The request head: request line, the caller's fields without the framing ones, Host when the
 * caller gave none, and the framing (`bodyLength` >= 0: Content-Length; -1: chunked; -2: none).
 * Returns the head and the Content-Length a streamed body declared (-1 if none).
 */
function requestHead(
  method: string,
  path: string,
  headers: RequestHeaders | undefined,
  bodyKind: "none" | "memory" | "stream",
  memoryLength: number,
  defaultHost: string,
  upgrade: boolean,
): LastRequestHead | { head: string; declared: number; bytes: undefined } {
  const memo = Array.isArray(headers);
  if (
    memo &&
    lastRequest.matches(method, path, headers, bodyKind, memoryLength, defaultHost, upgrade)
  ) {
    return lastRequest;
  }
  if (!validMethods.has(method)) {
    if (!TOKEN_RE.test(method)) throw headerError(`invalid method ${JSON.stringify(method)}`);
    if (validMethods.size < 64) validMethods.add(method);
  }
  if (path === "" || BAD_TARGET_RE.test(path))
    throw headerError(`invalid request target ${JSON.stringify(path)}`);
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let host = false;
  let declared = -1;
  const list = Array.isArray(headers) ? headers : headers ? pairsOf(headers) : [];
  for (let i = 0; i + 1 < list.length; i += 2) {
    const name = list[i]!;
    const value = list[i + 1]!;
    let kind = nameKinds.get(name);
    if (kind === undefined) kind = nameKind(name);
    if (kind !== K_SEND) {
      if (kind === K_DROP) continue;
      if (kind === K_HOP) {
        if (!upgrade) continue;
      } else if (kind === K_LENGTH) {
        if (bodyKind !== "stream") continue;
        declared = Number(value);
      } else if (kind === K_HOST) host = true;
    }
    if (BAD_VALUE_RE.test(value))
      throw headerError(`invalid value for header "${name}" (a CR, LF or NUL)`);
    head += `${name}: ${value}\r\n`;
  }
  if (!host) head = `${head}host: ${defaultHost}\r\n`;
  if (bodyKind === "memory") head += `content-length: ${memoryLength}\r\n`;
  else if (bodyKind === "stream") {
    if (!(declared >= 0 && Number.isSafeInteger(declared))) {
      declared = -1;
      head += "transfer-encoding: chunked\r\n";
    }
  } else if (method === "POST" || method === "PUT" || method === "PATCH") {
    head += "content-length: 0\r\n";
  }
  head += "\r\n";
  if (memo) {
    lastRequest.store(method, path, headers, bodyKind, memoryLength, defaultHost, upgrade, head);
    lastRequest.declared = declared;
  }
  return { head, declared, bytes: undefined };
}

/**
 * The last request head the thread made, for the next request that would make the same one: a
 * proxy sends the same fields request after request (the client's Host and the forwarding
 * headers, the same strings from the parser's memo), and a head is a pure function of its
 * method, path, field list, body kind and length, default Host and upgrade (the checks it runs
 * passed when it was made: the same input passes them again). So when all of them are the same
 * as last time, the head is too: no concatenation, no field checks, and its bytes, made on the
 * second use, are written as they are (no string to flatten and encode per write). Compared by
 * value (the strings are usually the same ones, so mostly by identity). One entry, field lists
 * only (a header record is not compared); a miss costs the comparisons and a copy of the list.
 */
class LastRequestHead {
  private method = "";
  private path = "";
  private fields: string[] = [];
  private bodyKind: "none" | "memory" | "stream" = "none";
  private memoryLength = -1;
  private defaultHost = "";
  private upgrade = false;
  /** The head, once a key is stored ("" before). */
  head = "";
  declared = -1;
  private encoded: Buffer | undefined = undefined;

  matches(
    method: string,
    path: string,
    fields: readonly string[],
    bodyKind: "none" | "memory" | "stream",
    memoryLength: number,
    defaultHost: string,
    upgrade: boolean,
  ): boolean {
    if (
      this.head === "" ||
      path !== this.path ||
      method !== this.method ||
      bodyKind !== this.bodyKind ||
      memoryLength !== this.memoryLength ||
      defaultHost !== this.defaultHost ||
      upgrade !== this.upgrade
    ) {
      return false;
    }
    return sameStrings(fields, this.fields);
  }

  store(
    method: string,
    path: string,
    fields: readonly string[],
    bodyKind: "none" | "memory" | "stream",
    memoryLength: number,
    defaultHost: string,
    upgrade: boolean,
    head: string,
  ): void {
    this.method = method;
    this.path = path;
    // (copied: the caller's list may change afterwards)
    this.fields = fields.slice();
    this.bodyKind = bodyKind;
    this.memoryLength = memoryLength;
    this.defaultHost = defaultHost;
    this.upgrade = upgrade;
    this.head = head;
    this.encoded = undefined;
  }

  /** The head's bytes (latin1), made at its second use; shared, never to be changed. */
  get bytes(): Buffer {
    this.encoded ??= Buffer.from(this.head, "latin1");
    return this.encoded;
  }
}

const lastRequest = new LastRequestHead();

/** What `requestHead` does with a field, by its name. */
const K_SEND = 0;
/** Framing and hop-by-hop fields the transport owns. */
const K_DROP = 1;
/** Upgrade and Connection: sent only with an upgrade. */
const K_HOP = 2;
const K_LENGTH = 3;
const K_HOST = 4;

/** Methods seen valid (a bounded set: names from clients cannot grow it for ever). */
const validMethods = new Set<string>(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);

/** Field names seen (as given), and their kind: checked and lowercased once, within a bound. */
const nameKinds = new Map<string, number>();

/** The kind of a field name not seen yet; throws for one that is not a token. */
function nameKind(name: string): number {
  const lower = name.toLowerCase();
  let kind = K_SEND;
  if (lower === "upgrade" || lower === "connection") kind = K_HOP;
  else if (dropHeaders.has(lower)) kind = K_DROP;
  else if (lower === "content-length") kind = K_LENGTH;
  else if (lower === "host") kind = K_HOST;
  // A dropped field is not sent: its name need not be valid (as before: dropped first).
  if (kind !== K_DROP && !TOKEN_RE.test(name))
    throw headerError(`invalid header name ${JSON.stringify(name)}`);
  if (nameKinds.size < 2000) nameKinds.set(name, kind);
  return kind;
}

/** A header record as `[name, value, ...]` (arrays of values as repeated fields). */
function pairsOf(headers: Record<string, string | string[] | undefined>): string[] {
  const out: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}

interface Prepared {
  head: string;
  /** The head's bytes when it is the thread's last request head again (LastRequestHead). */
  headBytes: Buffer | undefined;
  data: Buffer | undefined;
  bodyKind: "none" | "memory" | "stream";
  declared: number;
}

/** The request's head and body as they go on the wire (throws on a field that cannot be sent). */
function prepare(req: UpstreamRequest, defaultHost: string, upgrade: boolean): Prepared {
  const body = req.body;
  let bodyKind: Prepared["bodyKind"] = "none";
  let data: Buffer | undefined;
  if (body !== undefined && body !== null) {
    if (typeof body === "string") {
      data = Buffer.from(body);
      bodyKind = "memory";
    } else if (body instanceof Uint8Array) {
      data = Buffer.isBuffer(body)
        ? body
        : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
      bodyKind = "memory";
    } else bodyKind = "stream";
  }
  const made = requestHead(
    req.method,
    req.path,
    req.headers,
    bodyKind,
    data?.length ?? 0,
    defaultHost,
    upgrade,
  );
  return { head: made.head, headBytes: made.bytes, data, bodyKind, declared: made.declared };
}

/** Lower-case names; a repeated field becomes an array (as undici gives them). */
function headerRecord(fields: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (typeof prev === "string") out[name] = [prev, value];
    else prev.push(value);
  }
  return out;
}

/**
 * A pooled connection's `onread` hook, made before the socket exists (dial), pointed at its
 * connection once there is one.
 */
class ReadPort {
  conn: H1Connection | undefined = undefined;
  // The thread's read buffer (core/http1/readBuffer.ts): a fixed one, no call per read for it.
  readonly buffer = READ_BUFFER;
  readonly callback = (n: number, buf: Buffer): boolean => {
    const conn = this.conn;
    if (conn === undefined) return false;
    conn.onRead(buf === READ_BUFFER ? readView(n) : buf.subarray(0, n));
    return true;
  };
}

/**
 * Request heads wait for the end of the event-loop turn (the check phase) and go out together,
 * peer by peer (in order within each): the requests a turn read from many clients are written
 * back to back, so that a peer woken by the first finds the others already there and serves them
 * in one wakeup instead of one each. Behind `brigade up`'s front on a busy 2-core machine, an app
 * worker's requests per wakeup (reads per epoll_wait) went from about 3 to 3.75 (10 straight
 * from wrk) and the stack's CPU per request down by 10-20 %. Streamed bodies are written at once
 * (their head with them).
 */
let deferred: { conn: H1Connection; ex: Exchange }[] = [];
let deferredQueued = false;

const byPool = (a: { conn: H1Connection }, b: { conn: H1Connection }): number =>
  a.conn.pool.id - b.conn.pool.id;

function writeDeferred(): void {
  deferredQueued = false;
  // (a write's synchronous failure may defer another: it waits for the next turn)
  const batch = deferred;
  deferred = [];
  if (batch.length > 1) batch.sort(byPool); // stable: each peer's requests stay in order
  for (let i = 0; i < batch.length; i++) batch[i]!.conn.writeRequest(batch[i]!.ex);
}

function deferWrite(conn: H1Connection, ex: Exchange): void {
  deferred.push({ conn, ex });
  if (!deferredQueued) {
    deferredQueued = true;
    setImmediate(writeDeferred);
  }
}

/** Largest body taken whole when it arrived with its head (see `UpstreamResponse.complete`). */
const COMPLETE_MAX = 256 * 1024;

/**
 * A response: its header record made only if someone asks (the proxy reads `fields`), and, when
 * it was read whole with its head (`complete`), no stream unless someone asks for one.
 */
class H1Response implements UpstreamResponse {
  readonly status: number;
  readonly fields: readonly string[];
  readonly complete: Buffer | undefined;
  readonly peer: string;
  readonly reused: boolean;
  private stream: Readable | undefined;
  private record: Record<string, string | string[]> | undefined = undefined;
  constructor(
    status: number,
    fields: readonly string[],
    complete: Buffer | undefined,
    stream: Readable | undefined,
    peer: string,
    reused: boolean,
  ) {
    this.status = status;
    this.fields = fields;
    this.complete = complete;
    this.stream = stream;
    this.peer = peer;
    this.reused = reused;
  }
  get headers(): Record<string, string | string[]> {
    this.record ??= headerRecord(this.fields);
    return this.record;
  }
  get body(): Readable {
    this.stream ??= Readable.from(
      this.complete !== undefined && this.complete.length > 0 ? [this.complete] : [],
      { objectMode: false },
    );
    return this.stream;
  }
}

/** The response body: pulled from the connection's parser as the consumer reads. */
class ResponseBody extends Readable {
  /** The connection while the body is still arriving; undefined once it has all arrived. */
  conn: H1Connection | undefined;
  constructor(conn: H1Connection) {
    super();
    this.conn = conn;
  }
  override _read(): void {
    this.conn?.pull();
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const conn = this.conn;
    this.conn = undefined;
    // Given up before its end: the rest of the response is still on the wire.
    if (conn !== undefined) conn.abandon();
    cb(err);
  }
}

interface Exchange {
  method: string;
  reused: boolean;
  upgrade: boolean;
  /** Told the outcome, once (undefined once it was told, or once a streamed body took over). */
  handler: ResponseHandler<UpstreamResponse | UpgradeResponse> | undefined;
  /** For a replay on a fresh connection (a kept one the peer had closed). */
  req: UpstreamRequest;
  prep: Prepared;
  signal: AbortLike | undefined;
  /** The connection's `onAbort` is on `signal` (until the exchange settles). */
  listening: boolean;
  readTimeout: number;
  bodyTimeout: number;
  sendTimeout: number;
  /** The whole request is in the socket. */
  sent: boolean;
  /** Some response byte arrived. */
  started: boolean;
  head: Head | undefined;
  body: ResponseBody | undefined;
  /** Inside a 1xx interim response. */
  interim: boolean;
  /** The body is all here with the head: gathered, and the response resolved at its end. */
  whole: boolean;
  data: Buffer | undefined;
  /** For the send watchdog: bytes flushed at its last tick. */
  flushed: number;
  stalled: boolean;
  /** Stops writing a streamed request body (the exchange ended before it was sent whole). */
  stopBody: (() => void) | undefined;
}

const PHASE_IDLE = 0;
const PHASE_HEAD = 1;
const PHASE_BODY = 2;

/** One connection to the peer, carrying one exchange at a time. */
class H1Connection {
  readonly pool: H1Pool;
  readonly socket: Socket;
  readonly parser = new H1Parser("response", responseLimits);
  requests = 0;
  closed = false;
  /** Kept no longer than this when idle (the peer's Keep-Alive hint shortens it). */
  idleTimeout: number;
  private ex: Exchange | undefined = undefined;
  /** The body's consumer asked for more (false: it is full, the socket is paused). */
  private flowing = true;
  /** Inside `drive`. */
  private driving = false;
  // Two timers (read/body, idle), each touched once per timeout period rather than per request:
  // a phase only sets its deadline (performance.now() ms; 0: none), and the timer, when it
  // fires, looks at it: past it, the timeout happens; before it, the timer is set again for the
  // rest; none, it lapses (the next phase that needs one makes a new timer). A busy keep-alive
  // connection so costs a few clock reads a request, not a timer refresh at every move.
  private ioTimer: NodeJS.Timeout | undefined = undefined;
  /** When `ioTimer` fires. */
  private ioAt = 0;
  private ioDeadline = 0;
  private ioMs = 0;
  private idleTimer: NodeJS.Timeout | undefined = undefined;
  private idleAt = 0;
  private idleDeadline = 0;
  /** The peer closed its side (the rest of what it sent may still be in the parser). */
  private peerEnded = false;
  /** The clock read of the read being parsed (0 outside `onData`). */
  private readAt = 0;
  private phase = PHASE_IDLE;
  private sendTimer: NodeJS.Timeout | undefined = undefined;
  private readonly onIoTimer = (): void => {
    this.ioTimer = undefined;
    const d = this.ioDeadline;
    if (d === 0) return;
    const now = performance.now();
    // (a timer may fire a fraction of a millisecond before its time by this clock)
    if (d - now <= 1) this.timedOut();
    else this.setIoTimer(now);
  };
  /** The `abort` listener of every exchange on this connection (removed when it settles). */
  private readonly onAbort = (): void => {
    const ex = this.ex;
    if (ex !== undefined) this.aborted(ex);
  };
  private readonly onIdleTimer = (): void => {
    this.idleTimer = undefined;
    const d = this.idleDeadline;
    if (d === 0 || this.phase !== PHASE_IDLE) return;
    const now = performance.now();
    if (d - now <= 1) this.close();
    else this.setIdleTimer(now);
  };

  constructor(pool: H1Pool, socket: Socket, port: ReadPort | undefined) {
    this.pool = pool;
    this.socket = socket;
    this.idleTimeout = pool.options.idleTimeout;
    if (port !== undefined) port.conn = this;
    else socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => this.onEnd());
    socket.on("error", (err) => this.fail(err));
    // After the peer's FIN, what it sent is parsed before the connection counts as cut (a
    // close-delimited body, or a consumer that is not reading yet).
    socket.on("close", () => {
      if (!this.peerEnded || this.ex === undefined) this.fail(undefined);
    });
  }

  /** The peer closed its side (its FIN was read): not to be reused. */
  get ended(): boolean {
    return this.peerEnded;
  }

  get busy(): boolean {
    return this.ex !== undefined;
  }

  /** Arm the read (or body) timeout for `ms` (0: none). */
  private arm(ms: number): void {
    this.idleDeadline = 0;
    this.ioMs = ms;
    if (ms <= 0) {
      this.ioDeadline = 0;
      return;
    }
    const now = performance.now();
    this.ioDeadline = now + ms;
    // A timer that fires no later than the deadline looks again then.
    if (this.ioTimer === undefined || this.ioAt > this.ioDeadline) this.setIoTimer(now);
  }

  private setIoTimer(now: number): void {
    if (this.ioTimer !== undefined) clearTimeout(this.ioTimer);
    this.ioAt = this.ioDeadline;
    this.ioTimer = setTimeout(this.onIoTimer, Math.max(1, this.ioDeadline - now));
    this.ioTimer.unref();
  }

  private setIdleTimer(now: number): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleAt = this.idleDeadline;
    this.idleTimer = setTimeout(this.onIdleTimer, Math.max(1, this.idleDeadline - now));
    this.idleTimer.unref();
  }

  private stopTimer(): void {
    this.ioDeadline = 0;
    this.idleDeadline = 0;
    if (this.ioTimer !== undefined) clearTimeout(this.ioTimer);
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.ioTimer = undefined;
    this.idleTimer = undefined;
  }

  /** The pool keeps the connection: time its idleness. */
  idle(): void {
    this.phase = PHASE_IDLE;
    this.ioDeadline = 0;
    // (the clock read of the read that ended the response, if that is where we are)
    const now = this.readAt !== 0 ? this.readAt : performance.now();
    this.idleDeadline = now + this.idleTimeout;
    if (this.idleTimer === undefined || this.idleAt > this.idleDeadline) this.setIdleTimer(now);
  }

  /** Send `req` on this connection; `handler` is told the outcome. */
  start(
    req: UpstreamRequest,
    prep: Prepared,
    reused: boolean,
    upgrade: boolean,
    handler: ResponseHandler<UpstreamResponse | UpgradeResponse>,
  ): void {
    const options = this.pool.options;
    const { head, bodyKind, declared } = prep;
    const body = req.body;
    {
      const readTimeout = req.readTimeout ?? options.readTimeout;
      const ex: Exchange = {
        method: req.method,
        reused,
        upgrade,
        handler,
        req,
        prep,
        signal: req.signal,
        listening: false,
        readTimeout,
        bodyTimeout: req.bodyTimeout ?? readTimeout,
        sendTimeout: req.sendTimeout ?? options.sendTimeout,
        sent: bodyKind !== "stream",
        started: false,
        head: undefined,
        body: undefined,
        interim: false,
        whole: false,
        data: undefined,
        flushed: -1,
        stalled: false,
        stopBody: undefined,
      };
      this.ex = ex;
      this.flowing = true;
      this.requests++;
      const signal = req.signal;
      if (signal !== undefined) {
        if (signal.aborted) {
          this.ex = undefined;
          this.pool.release(this, true);
          handler.onError(this.abortError(false));
          return;
        }
        signal.addEventListener("abort", this.onAbort);
        ex.listening = true;
      }
      this.parser.requestMethod = req.method;
      this.phase = PHASE_HEAD;
      this.arm(readTimeout);
      if (bodyKind === "stream") {
        this.socket.write(head, "latin1");
        this.stream(ex, body as Readable, declared);
        if (ex.sendTimeout > 0) this.watchSend(ex);
        return;
      }
      deferWrite(this, ex);
    }
  }

  /**
   * @internal Write `ex`'s head (and body in memory), deferred by `start` to the end of the
   * turn: unless the exchange is over by then (aborted, or the connection failed).
   */
  writeRequest(ex: Exchange): void {
    if (this.ex !== ex || this.closed) return;
    const socket = this.socket;
    if (socket.destroyed || this.peerEnded) {
      // Closed by the peer meanwhile (a kept connection it dropped as it was taken): a write
      // would fail silently, so the exchange fails now (replayed on a fresh connection if it
      // may be: nothing of it was sent).
      this.fail(undefined);
      return;
    }
    const { head, headBytes, data } = ex.prep;
    try {
      if (data !== undefined && data.length > 0) {
        socket.cork();
        if (headBytes !== undefined) socket.write(headBytes);
        else socket.write(head, "latin1");
        socket.write(data);
        socket.uncork();
      } else if (headBytes !== undefined) {
        socket.write(headBytes);
      } else {
        socket.write(head, "latin1");
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    if (ex.sendTimeout > 0 && socket.writableLength > 0) this.watchSend(ex);
  }

  /** Write a streamed body, with backpressure both ways; chunked unless it declared a length. */
  private stream(ex: Exchange, body: Readable, declared: number): void {
    const socket = this.socket;
    const chunked = declared < 0;
    let written = 0;
    const onData = (c: Buffer | string): void => {
      if (this.ex !== ex) return;
      const chunk = typeof c === "string" ? Buffer.from(c) : c;
      if (chunk.length === 0) return;
      written += chunk.length;
      let ok: boolean;
      if (chunked) {
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, "latin1");
        socket.write(chunk);
        ok = socket.write("\r\n", "latin1");
        socket.uncork();
      } else {
        if (written > declared) {
          cleanup();
          body.destroy();
          this.fail(new Error(`the request body is longer than its Content-Length (${declared})`));
          return;
        }
        ok = socket.write(chunk);
      }
      if (!ok) {
        body.pause();
        socket.once("drain", onDrain);
      }
    };
    const onDrain = (): void => {
      if (this.ex === ex) body.resume();
    };
    const onEnd = (): void => {
      cleanup();
      if (this.ex !== ex) return;
      if (!chunked && written !== declared) {
        this.fail(new Error(`the request body is shorter than its Content-Length (${declared})`));
        return;
      }
      if (chunked) socket.write("0\r\n\r\n", "latin1");
      ex.sent = true;
    };
    const onError = (err: Error): void => {
      cleanup();
      if (this.ex === ex) this.fail(err);
    };
    const cleanup = (): void => {
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
      socket.off("drain", onDrain);
    };
    ex.stopBody = cleanup;
    body.on("data", onData);
    body.once("end", onEnd);
    body.once("error", onError);
  }

  /**
   * nginx's proxy_send_timeout: fail when bytes wait in the socket and none was written for
   * `sendTimeout`. Runs until the request is sent whole and flushed, or the response head.
   */
  private watchSend(ex: Exchange): void {
    const socket = this.socket;
    const tick = (): void => {
      this.sendTimer = undefined;
      if (this.ex !== ex || ex.head !== undefined) return;
      const flushed = socket.bytesWritten - socket.writableLength;
      if (socket.writableLength > 0 && flushed === ex.flushed) {
        ex.stalled = true;
        this.fail(
          new UpstreamError("timeout", "send", {
            message: `upstream timed out sending the request (no progress for ${ex.sendTimeout} ms)`,
            peer: this.pool.peer,
            code: "ETIMEDOUT",
          }),
        );
        return;
      }
      if (ex.sent && socket.writableLength === 0) return;
      ex.flushed = flushed;
      this.sendTimer = setTimeout(tick, ex.sendTimeout);
      this.sendTimer.unref();
    };
    this.sendTimer = setTimeout(tick, ex.sendTimeout);
    this.sendTimer.unref();
  }

  /** Bytes read into the thread's shared read buffer (READ_BUFFER): nothing of it may stay. */
  onRead(chunk: Buffer): void {
    try {
      this.onData(chunk);
    } finally {
      this.parser.own(chunk);
    }
  }

  private onData(chunk: Buffer): void {
    const ex = this.ex;
    if (ex === undefined) {
      // Bytes no request asked for: whatever they are, this connection cannot be trusted.
      this.fail(undefined);
      return;
    }
    ex.started = true;
    // Between two reads: the read timeout starts again (the deadline only moves later). One
    // clock read, for that and for the idle time of a response this read ends.
    const now = performance.now();
    if (this.ioDeadline !== 0) this.ioDeadline = now + this.ioMs;
    this.parser.feed(chunk);
    this.readAt = now;
    try {
      this.drive();
    } finally {
      this.readAt = 0;
    }
  }

  /** Pull events from the parser while the consumer takes them. */
  private drive(): void {
    // A handler told of the response may read its body at once (pull): the loop below goes on.
    if (this.driving) return;
    this.driving = true;
    const p = this.parser;
    try {
      while (this.ex !== undefined) {
        if (!this.flowing) {
          this.socket.pause();
          return;
        }
        const ev = p.next();
        if (ev === NEED_MORE) {
          if (this.peerEnded) {
            // Everything the peer sent is parsed: a close-delimited body ends here (its END
            // comes next); anything else was cut short.
            if (p.eof() && this.ex.head !== undefined && !p.inBody) continue;
            this.fail(undefined);
            return;
          }
          if (this.socket.isPaused()) this.socket.resume();
          return;
        }
        if (ev === HEAD) this.onHead(p.head);
        else if (ev === BODY) {
          const ex = this.ex;
          // A piece of the shared read buffer is copied before it is handed on.
          const chunk = detached(p.chunk);
          if (ex.whole) ex.data = ex.data === undefined ? chunk : Buffer.concat([ex.data, chunk]);
          else if (!ex.body!.push(chunk)) this.flowing = false;
        } else if (ev === END) this.onMessageEnd();
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.driving = false;
    }
  }

  /** The consumer wants more body. */
  pull(): void {
    if (this.flowing) return;
    this.flowing = true;
    this.drive();
  }

  private onHead(head: Head): void {
    const ex = this.ex!;
    const status = head.status;
    if (status < 200 && status !== 101) {
      ex.interim = true;
      return;
    }
    ex.head = head;
    if (this.sendTimer !== undefined) {
      clearTimeout(this.sendTimer);
      this.sendTimer = undefined;
    }
    if (status === 101) {
      const headers = headerRecord(head.fields);
      if (!ex.upgrade) {
        throw Object.assign(new Error("upstream response: a 101 to a request without Upgrade"), {
          status: 502,
          code: "unexpected-101",
        });
      }
      // The socket is the caller's now, with what came after the head.
      const rest = Buffer.from(this.parser.rest());
      this.detach();
      const handler = ex.handler!;
      ex.handler = undefined;
      this.settle(ex);
      handler.onResponse({
        status: 101,
        headers,
        rawHeaders: head.fields,
        socket: this.socket,
        head: rest,
      });
      return;
    }
    this.phase = PHASE_BODY;
    this.arm(ex.bodyTimeout);
    const fields = head.fields;
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] !== "keep-alive") continue;
      const hint = this.pool.keepAliveHint(fields[i + 1]!);
      if (hint >= 0) this.idleTimeout = Math.min(this.idleTimeout, hint);
    }
    if (
      head.framing === "none" ||
      (head.framing === "length" &&
        head.contentLength <= COMPLETE_MAX &&
        this.parser.buffered >= head.contentLength)
    ) {
      // All here: gathered now, resolved at its END (within this same drive).
      ex.whole = true;
      return;
    }
    const body = new ResponseBody(this);
    ex.body = body;
    // Nothing more is parsed until the consumer reads: it has its listeners by then, so a body
    // that fails at once (a bad chunk right after the head) fails where it is heard.
    this.flowing = false;
    const handler = ex.handler!;
    ex.handler = undefined;
    handler.onResponse(new H1Response(status, fields, undefined, body, this.pool.peer, ex.reused));
  }

  private onMessageEnd(): void {
    const ex = this.ex!;
    if (ex.interim) {
      ex.interim = false;
      return;
    }
    const head = ex.head!;
    const body = ex.body;
    if (body !== undefined) body.conn = undefined;
    this.settle(ex);
    const reusable =
      head.keepAlive &&
      (head.framing === "length" || head.framing === "chunked" || head.framing === "none") &&
      ex.sent &&
      !ex.upgrade &&
      !this.parser.stopped &&
      this.parser.buffered === 0 &&
      !this.peerEnded &&
      this.idleTimeout > 0;
    const handler = ex.handler;
    ex.handler = undefined;
    if (body !== undefined) body.push(null);
    this.pool.release(this, reusable);
    // Kept: read again (a FIN or stray bytes while idle are seen at once).
    if (!this.closed && this.socket.isPaused()) this.socket.resume();
    if (ex.whole) {
      handler!.onResponse(
        new H1Response(
          head.status,
          head.fields,
          ex.data ?? EMPTY,
          undefined,
          this.pool.peer,
          ex.reused,
        ),
      );
    }
  }

  /** The exchange is over (answered, ended or failed): no more signal or send timer. */
  private settle(ex: Exchange): void {
    if (this.ex === ex) this.ex = undefined;
    if (ex.listening) {
      ex.listening = false;
      ex.signal!.removeEventListener("abort", this.onAbort);
    }
    if (ex.stopBody !== undefined && !ex.sent) ex.stopBody();
    ex.stopBody = undefined;
    if (this.sendTimer !== undefined) {
      clearTimeout(this.sendTimer);
      this.sendTimer = undefined;
    }
  }

  /** Hand the socket over (upgrade): none of our listeners or timers stay on it. */
  private detach(): void {
    this.closed = true;
    this.stopTimer();
    this.socket.pause();
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("end");
    this.socket.removeAllListeners("error");
    this.socket.removeAllListeners("close");
    // An error after the hand-over, before the new owner listens, is not an uncaught one.
    this.socket.on("error", () => {});
    // Neither flowing nor explicitly paused (as node:http hands over an upgraded socket): the
    // new owner's first "data" listener, or its resume(), starts the flow; nothing is lost.
    (
      this.socket as unknown as { _readableState: { flowing: boolean | null } }
    )._readableState.flowing = null;
    this.pool.forget(this);
  }

  private onEnd(): void {
    this.peerEnded = true;
    if (this.ex === undefined) return; // idle: "close" follows and drops it
    this.drive();
  }

  private timedOut(): void {
    this.ioDeadline = 0;
    const ex = this.ex;
    if (this.phase === PHASE_IDLE || ex === undefined) return;
    const inBody = ex.head !== undefined;
    const sending = !ex.sent || this.socket.writableLength > 0;
    this.fail(
      new UpstreamError("timeout", inBody || !sending ? "read" : "send", {
        message: `upstream timed out (${inBody ? "body" : "response head"})`,
        peer: this.pool.peer,
        code: inBody ? "UND_ERR_BODY_TIMEOUT" : "UND_ERR_HEADERS_TIMEOUT",
      }),
    );
  }

  private abortError(connected: boolean): UpstreamError {
    return new UpstreamError("aborted", connected ? "read" : "connect", {
      message: "request aborted",
      peer: this.pool.peer,
      sent: connected,
      code: "UND_ERR_ABORTED",
    });
  }

  private aborted(ex: Exchange): void {
    if (this.ex !== ex) return;
    this.fail(this.abortError(true));
  }

  /** The consumer gave the body up before its end: the connection cannot be reused. */
  abandon(): void {
    this.fail(undefined, true);
  }

  /** Close an idle connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopTimer();
    this.socket.destroy();
    this.pool.forget(this);
  }

  /**
   * The connection is done for: `err` (or the peer closing it) ends the exchange in progress,
   * as a rejected request before its head or a failed body after.
   */
  fail(err: unknown, quiet = false): void {
    if (this.closed) return;
    this.closed = true;
    this.stopTimer();
    this.socket.destroy();
    this.pool.forget(this);
    const ex = this.ex;
    if (ex === undefined) return;
    this.settle(ex);
    if (quiet) return;
    const peer = this.pool.peer;
    let e: UpstreamError;
    if (ex.signal?.aborted) e = this.abortError(true);
    else if (err instanceof UpstreamError) e = err;
    else if (err !== undefined && (err as Partial<ParseError>).status === 502) {
      e = new UpstreamError("badResponse", "read", {
        message: `upstream sent an invalid response: ${(err as Error).message}`,
        peer,
        code: (err as ParseError).code,
        cause: err,
      });
    } else if (err !== undefined) {
      e = classifyError(err, {
        peer,
        connected: true,
        headers: ex.head !== undefined,
        sending: !ex.sent && ex.head === undefined && !ex.started,
      });
    } else {
      e = new UpstreamError("reset", "read", {
        message:
          ex.head !== undefined
            ? "upstream prematurely closed the connection while reading the response body"
            : ex.started
              ? "upstream prematurely closed the connection while reading the response header"
              : "upstream closed the connection (ECONNRESET)",
        peer,
        code: "ECONNRESET",
      });
    }
    const handler = ex.handler;
    if (handler !== undefined) {
      ex.handler = undefined;
      // The peer closed the kept connection as it was reused: nothing was answered, so a
      // request that is safe to send twice goes again on a fresh connection.
      if (ex.reused && !ex.started && this.pool.mayReplay(e, ex.req)) {
        this.pool.sendFresh(ex.req, ex.prep, false, handler);
      } else handler.onError(e);
    } else {
      const body = ex.body;
      if (body !== undefined) {
        body.conn = undefined;
        body.destroy(e);
      }
    }
  }
}

let nextPoolId = 0;

function sweepIdle(pool: H1Pool): void {
  pool.sweep();
}

/** The per-peer keep-alive pool on {@link H1Connection}s (see src/upstream/pool.ts). */
export class H1Pool {
  readonly target: PeerTarget;
  readonly peer: string;
  readonly options: PoolOptions;
  /** The Host sent when the caller gives none. */
  readonly hostHeader: string;
  /** Order of creation (a turn's deferred requests go out pool by pool). */
  readonly id = nextPoolId++;
  private readonly idleStack: H1Connection[] = [];
  /** The last Keep-Alive value seen and its idle time (a peer sends the same one every time). */
  private keepAliveValue = "";
  private keepAliveMs = -1;
  private readonly open = new Set<H1Connection>();
  private closing = false;
  private sweepQueued = false;
  private drained: (() => void) | undefined;
  private created = 0;
  private reusedCount = 0;
  private requestCount = 0;

  constructor(target: PeerTarget, options: PoolOptions) {
    this.target = target;
    this.peer = targetName(target);
    this.options = options;
    this.hostHeader = target.kind === "unix" ? "localhost" : this.peer;
  }

  stats(): PoolStats {
    return {
      open: this.open.size,
      idle: this.idleStack.length,
      created: this.created,
      reused: this.reusedCount,
      requests: this.requestCount,
    };
  }

  request(req: UpstreamRequest): Promise<UpstreamResponse> {
    return new Promise<UpstreamResponse>((resolve, reject) =>
      this.send(req, { onResponse: resolve, onError: reject }),
    );
  }

  /**
   * `request` with callbacks instead of a promise (the group's retry driver uses this): exactly
   * one of the handler's methods is called, once, possibly before `send` returns.
   */
  send(req: UpstreamRequest, handler: ResponseHandler<UpstreamResponse>): void {
    let prep: Prepared;
    try {
      this.checkOpen();
      prep = prepare(req, this.hostHeader, false);
    } catch (err) {
      handler.onError(err);
      return;
    }
    let conn = this.idleStack.pop();
    // (one whose peer has closed its side, its close still to come, is closed now: not reused)
    while (conn !== undefined && (conn.closed || conn.ended)) {
      conn.close();
      conn = this.idleStack.pop();
    }
    const h = handler as ResponseHandler<UpstreamResponse | UpgradeResponse>;
    if (conn === undefined) {
      this.sendFresh(req, prep, false, h);
      return;
    }
    this.requestCount++;
    this.reusedCount++;
    try {
      conn.start(req, prep, true, false, h);
    } catch (err) {
      handler.onError(err);
    }
  }

  /**
   * An `Upgrade` request on a new connection, never pooled: a 101 hands the socket over; any
   * other status is an ordinary response whose connection closes after it.
   */
  upgrade(req: UpstreamRequest): Promise<UpgradeResponse | UpstreamResponse> {
    this.checkOpen();
    const prep = prepare(req, this.hostHeader, true);
    return new Promise((resolve, reject) =>
      this.sendFresh(req, prep, true, { onResponse: resolve, onError: reject }),
    );
  }

  /**
   * @internal Whether a failure on a kept connection before any response byte may be sent
   * again on a fresh one: the peer closed it as it was reused (a reset), the request is
   * idempotent with its body in memory, the caller is still there and the pool open.
   */
  mayReplay(e: UpstreamError, req: UpstreamRequest): boolean {
    return (
      e.kind === "reset" &&
      !this.closing &&
      !req.signal?.aborted &&
      idempotent.has(req.method.toUpperCase()) &&
      isReplayable(req.body)
    );
  }

  private checkOpen(): void {
    if (this.closing) {
      throw new UpstreamError("unavailable", "connect", {
        message: "pool closed",
        peer: this.peer,
        sent: false,
      });
    }
  }

  /** @internal Send on a new connection. */
  sendFresh(
    req: UpstreamRequest,
    prep: Prepared,
    upgrade: boolean,
    handler: ResponseHandler<UpstreamResponse | UpgradeResponse>,
  ): void {
    this.requestCount++;
    // An upgraded socket goes to its new owner, who reads it as a stream: no onread for it.
    const port = upgrade ? undefined : new ReadPort();
    dial(this.target, req.connectTimeout ?? this.options.connectTimeout, port).then(
      (socket) => {
        if (this.closing) {
          socket.destroy();
          handler.onError(
            new UpstreamError("unavailable", "connect", {
              message: "pool closed",
              peer: this.peer,
              sent: false,
            }),
          );
          return;
        }
        if (req.signal?.aborted) {
          socket.destroy();
          handler.onError(
            new UpstreamError("aborted", "connect", {
              message: "request aborted",
              peer: this.peer,
              sent: false,
              code: "UND_ERR_ABORTED",
            }),
          );
          return;
        }
        const conn = new H1Connection(this, socket, port);
        this.open.add(conn);
        this.created++;
        try {
          conn.start(req, prep, false, upgrade, handler);
        } catch (err) {
          handler.onError(err);
        }
      },
      (err: unknown) => handler.onError(err),
    );
  }

  /**
   * @internal How long a connection may idle by a response's `Keep-Alive` value (-1: it says
   * nothing): a second less than the peer's timeout, as undici does, never to reuse one as the
   * peer closes it.
   */
  keepAliveHint(value: string): number {
    if (value === this.keepAliveValue) return this.keepAliveMs;
    const m = KEEP_ALIVE_TIMEOUT_RE.exec(value);
    this.keepAliveValue = value;
    this.keepAliveMs = m ? Number(m[1]) * 1000 - 1000 : -1;
    return this.keepAliveMs;
  }

  /** @internal A response was read whole: keep the connection or close it. */
  release(conn: H1Connection, reusable: boolean): void {
    if (
      !reusable ||
      conn.closed ||
      this.closing ||
      conn.requests >= this.options.maxRequests ||
      this.options.idle === 0
    ) {
      conn.close();
      return;
    }
    // Past the bound, the connection is kept to the end of this event-loop turn, not closed at
    // once: a request read later in the same turn (responses and requests arrive together under
    // load) takes it instead of dialling a new one. The sweep then closes the oldest idle ones.
    if (this.idleStack.length >= this.options.idle && !this.sweepQueued) {
      this.sweepQueued = true;
      setImmediate(sweepIdle, this);
    }
    this.idleStack.push(conn);
    conn.idle();
  }

  /** @internal The end of a turn with more idle connections than kept: close the oldest. */
  sweep(): void {
    this.sweepQueued = false;
    const excess = this.idleStack.length - this.options.idle;
    if (excess <= 0) return;
    for (const conn of this.idleStack.splice(0, excess)) conn.close();
  }

  /** @internal The connection is gone (closed, failed, handed over). */
  forget(conn: H1Connection): void {
    if (!this.open.delete(conn)) return;
    const i = this.idleStack.lastIndexOf(conn);
    if (i >= 0) this.idleStack.splice(i, 1);
    if (this.closing && this.open.size === 0 && this.drained) {
      const done = this.drained;
      this.drained = undefined;
      done();
    }
  }

  close(): Promise<void> {
    this.closing = true;
    for (const conn of this.idleStack.splice(0)) conn.close();
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.drained = resolve;
    });
  }

  destroy(): void {
    this.closing = true;
    this.idleStack.length = 0;
    for (const conn of [...this.open]) conn.fail(new Error("pool destroyed"));
    this.open.clear();
    const done = this.drained;
    this.drained = undefined;
    done?.();
  }
}
