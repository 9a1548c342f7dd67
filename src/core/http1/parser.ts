/**
 * A strict, incremental HTTP/1.1 message parser (RFC 9112), for requests (the web server's
 * engine) and responses (upstream connections of the proxy).
 *
 * Shape: picohttpparser's idea (find a complete line, then validate it in one pass over bytes with
 * table lookups; no per-byte string building) inside a small state machine for the body framing,
 * like llhttp's. Data is fed as it arrives, in any pieces; the caller pulls events:
 *
 * ```ts
 * parser.feed(chunk);
 * for (let ev = parser.next(); ev !== NEED_MORE; ev = parser.next()) {
 *   if (ev === HEAD) use(parser.head);      // start line and fields, framing decided
 *   else if (ev === BODY) use(parser.chunk); // a piece of the body (a view, not a copy)
 *   else if (ev === END) done();            // the message is complete
 * }
 * ```
 *
 * Pulling is the backpressure: a caller that stops calling `next()` leaves the bytes in the
 * parser (and pauses its socket). `next()` throws a {@link ParseError} on the first byte that
 * does not fit the grammar or a limit; the parser is dead afterwards (the connection must close).
 *
 * Strictness (everything ambiguous is refused, never guessed at):
 * - CRLF only: a bare LF or a bare CR anywhere in a head or a chunk line is a 400.
 * - No obs-fold, no whitespace before a colon, no empty names, no CTL/NUL/DEL in values.
 * - One framing: `Content-Length` (duplicates only if identical) or `Transfer-Encoding` whose
 *   last coding is `chunked` (once); never both; `Transfer-Encoding` in HTTP/1.0 is refused.
 *   A coding we do not decode is a 501.
 * - Chunk lines: `1*HEXDIG *( ";" token [ "=" ( token / quoted-string ) ] ) CRLF`, no
 *   whitespace at all (RFC 9112 allows BWS around `;` and `=`; we refuse it: no client sends it
 *   and parsers disagree on it), bounded in length and in extension bytes per message.
 * - Request line: `method SP request-target SP HTTP/1.x`, single spaces; the target is
 *   origin-form, absolute-form (http/https, no userinfo), authority-form for CONNECT only,
 *   `*` for OPTIONS only. HTTP/1.1 needs exactly one valid `Host`; 1.0 at most one.
 *
 * In response mode every error is a 502 (the upstream's fault), and a response that could be
 * framed two ways (both lengths, a coding other than plain chunked, disagreeing lengths) is one.
 */
import {
  FIELD_VALUE,
  HEX,
  HOST,
  IP_LITERAL,
  QDTEXT,
  QUOTED_PAIR,
  REASON,
  SCHEME,
  TARGET,
  TOKEN,
} from "./chars.ts";

/** Events returned by {@link H1Parser.next}. */
export const NEED_MORE = 0;
export const HEAD = 1;
export const BODY = 2;
export const END = 3;
export type ParseEvent = typeof NEED_MORE | typeof HEAD | typeof BODY | typeof END;

/** A message that does not fit the grammar or a limit. `status` is what to answer with. */
export class ParseError extends Error {
  /** 400, 413, 414, 431, 501, 505 for a request; always 502 for a response. */
  readonly status: number;
  /** Short and stable, for logs and tests: `bare-lf`, `cl-te`, `header-count`, ... */
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ParseError";
    this.status = status;
    this.code = code;
  }
}

export interface ParserLimits {
  /** Bytes of the request line or status line, empty lines before it included (414). */
  maxStartLine: number;
  /** Bytes of the whole head, start line included (431); the trailer section has the same limit. */
  maxHeaderBytes: number;
  /** Fields in the header section (and in the trailer section) (431). */
  maxHeaderCount: number;
  /** Body bytes, declared or chunked (413); 0 for no limit. */
  maxBodySize: number;
  /** Bytes of one chunk-size line, extensions included (400). */
  maxChunkLine: number;
  /** Chunk-extension bytes over a whole message (400). */
  maxChunkExtensions: number;
}

export const defaultLimits: Readonly<ParserLimits> = {
  maxStartLine: 8192,
  maxHeaderBytes: 32768,
  maxHeaderCount: 100,
  maxBodySize: 0,
  maxChunkLine: 1024,
  maxChunkExtensions: 16384,
};

/** How the body of a message is delimited. */
export type Framing = "none" | "length" | "chunked" | "close";

/** A parsed head. One object per message; never reused by the parser. */
export class Head {
  /** Request: the method as received (case-sensitive). Response: "". */
  method = "";
  /** Request: the request-target as received. Response: "". */
  target = "";
  /** Request: which form the target has. */
  form: "origin" | "absolute" | "authority" | "asterisk" = "origin";
  /** Response: the status code. Request: 0. */
  status = 0;
  /** Response: the reason phrase. */
  reason = "";
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  versionMinor = 1;
  /** `[name, value, ...]`, names lowercase, values without surrounding whitespace (latin1). */
  fields: string[] = [];
  /**
   * Request: the host the request is for, lowercase, without port: from an absolute or
   * authority-form target, else from `Host` ("" when Host is empty or absent in HTTP/1.0).
   */
  host = "";
  /** Request: the port given with the host, or -1. */
  port = -1;
  /** Request: the `Host` field as received, undefined when absent. */
  hostField: string | undefined = undefined;
  framing: Framing = "none";
  /** The declared length when `framing` is "length", else -1. */
  contentLength = -1;
  /** Whether the connection may carry another message after this one (version and `Connection`). */
  keepAlive = true;
  /** `Connection: upgrade` with an `Upgrade` field: the value of `Upgrade`, else "". */
  upgrade = "";
  /** Request: `Expect: 100-continue`. */
  expectContinue = false;
  /** Request: an `Expect` other than 100-continue (answer 417). */
  expectUnknown = false;
  /** Fields of the trailer section of a chunked body, once the message has ended. */
  trailers: string[] | undefined = undefined;
}

const EMPTY = Buffer.alloc(0);
/** Stands for "no message begun": never written, replaced by a new Head at a message's first byte. */
const NO_HEAD = new Head();

function isComplete(l: Partial<ParserLimits>): l is ParserLimits {
  return (
    l.maxStartLine !== undefined &&
    l.maxHeaderBytes !== undefined &&
    l.maxHeaderCount !== undefined &&
    l.maxBodySize !== undefined &&
    l.maxChunkLine !== undefined &&
    l.maxChunkExtensions !== undefined
  );
}

// States of the machine.
const S_HEAD = 0;
const S_BODY_LENGTH = 1;
const S_CHUNK_SIZE = 2;
const S_CHUNK_DATA = 3;
const S_CHUNK_CRLF = 4;
const S_TRAILERS = 5;
const S_CLOSE_DELIMITED = 6;
const S_DONE = 7;
const S_STOPPED = 8;
const S_DEAD = 9;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;

interface FastBuffer {
  latin1Slice(start: number, end: number): string;
}
const latin1 = (b: Buffer, start: number, end: number): string =>
  (b as unknown as FastBuffer).latin1Slice(start, end);

/** Common field names by length, lowercase: a name that matches one costs no new string. */
const knownNames: string[][] = [];
for (const name of [
  "host",
  "accept",
  "accept-encoding",
  "accept-language",
  "user-agent",
  "connection",
  "content-length",
  "content-type",
  "transfer-encoding",
  "cookie",
  "referer",
  "origin",
  "cache-control",
  "pragma",
  "upgrade",
  "expect",
  "authorization",
  "if-none-match",
  "if-modified-since",
  "range",
  "te",
  "trailer",
  "keep-alive",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-real-ip",
  "date",
  "server",
  "etag",
  "last-modified",
  "location",
  "vary",
  "set-cookie",
  "content-encoding",
  "sec-fetch-mode",
  "sec-fetch-site",
  "sec-fetch-dest",
  "upgrade-insecure-requests",
  "dnt",
  "priority",
]) {
  const list = knownNames[name.length] ?? [];
  knownNames[name.length] = list;
  list.push(name);
}

/**
 * The last value seen of each common field (every parser of the thread shares them): an
 * application sends the same Content-Type, Connection, Keep-Alive, Server, a client the same
 * User-Agent and Accept, request after request. A value whose bytes match is that same string:
 * a short compare instead of a new string from a native call. Only names of `knownNames`, so it
 * stays bounded.
 */
const lastValues = new Map<string, string>();
for (const list of knownNames) if (list !== undefined) for (const n of list) lastValues.set(n, "");

/** Values longer than this are always made afresh. */
const REUSE_MAX = 64;

/** The value in `b[s, e)` (latin1), the previous one of `name` when the bytes are the same. */
function fieldValue(name: string, b: Buffer, s: number, e: number): string {
  const len = e - s;
  if (len > REUSE_MAX) return latin1(b, s, e);
  const prev = lastValues.get(name);
  if (prev === undefined) return latin1(b, s, e);
  if (prev.length === len) {
    let i = 0;
    while (i < len && prev.charCodeAt(i) === b[s + i]) i++;
    if (i === len) return prev;
  }
  const value = latin1(b, s, e);
  lastValues.set(name, value);
  return value;
}

/** Heads longer than this are not remembered by {@link LastParsedHead}. */
const HEAD_MEMO_MAX = 1024;
/** Misses in a row after which a {@link LastParsedHead} rests, and for how many heads. */
const MEMO_MISSES = 8;
const MEMO_REST = 64;
/** Heads up to this long are compared byte by byte in JS (LastParsedHead.same). */
const SHORT_COMPARE = 64;

/** Every property of `from` onto `to` (the fields as a copy of their own). */
function copyHead(from: Head, to: Head): void {
  to.method = from.method;
  to.target = from.target;
  to.form = from.form;
  to.status = from.status;
  to.reason = from.reason;
  to.versionMinor = from.versionMinor;
  to.fields = from.fields.slice();
  to.host = from.host;
  to.port = from.port;
  to.hostField = from.hostField;
  to.framing = from.framing;
  to.contentLength = from.contentLength;
  to.keepAlive = from.keepAlive;
  to.upgrade = from.upgrade;
  to.expectContinue = from.expectContinue;
  to.expectUnknown = from.expectUnknown;
  // (trailers come after the head: none yet)
}

/**
 * The last head parsed by the thread's parsers of one kind (requests, responses), for the next
 * whose head is the same bytes: a client asks for the same thing again with the same fields, an
 * upstream answers the same head response after response (the same status, type, length and
 * `Keep-Alive`; its `Date` changes once a second). Parsing a head is a pure function of its
 * bytes, the parser's kind and limits and, for a response, the request method (HEAD and CONNECT
 * change the framing); a head that passed every check once passes them again, so the same bytes
 * under the same method and limits are taken as they were: a fresh Head, a copy of the fields, no
 * line scan, no field checks, no strings made (about 0.2 µs against 0.8 µs for a node:http
 * hello's response head, micro-bench). One entry per kind; only heads parsed whole and without
 * error are stored. A miss costs a compare of the bytes and, at the end of its parse, a copy of
 * them (about 0.4 µs): after {@link MEMO_MISSES} misses in a row (heads that differ every time:
 * their own lengths, ETags, cookies; several upstreams in turn) the memo rests for
 * {@link MEMO_REST} heads, neither compared nor stored, then tries again.
 */
class LastParsedHead {
  /** Bytes of the head (start line to the empty line); `length` of them are valid (0: none). */
  private readonly bytes = Buffer.allocUnsafe(HEAD_MEMO_MAX);
  length = 0;
  private method = "";
  private limits: ParserLimits | undefined = undefined;
  private readonly proto = new Head();
  /** Misses since the last hit. */
  private misses = 0;
  /** Heads still to go before the memo is used again. */
  private resting = 0;

  matches(b: Buffer, pos: number, method: string, limits: ParserLimits): boolean {
    if (this.resting > 0) {
      this.resting--;
      return false;
    }
    const n = this.length;
    if (n === 0) return false;
    if (
      b.length - pos >= n &&
      method === this.method &&
      limits === this.limits &&
      this.same(b, pos, n)
    ) {
      this.misses = 0;
      return true;
    }
    if (++this.misses >= MEMO_MISSES) {
      this.resting = MEMO_REST;
      // After the rest one more miss is enough to rest again.
      this.misses = MEMO_MISSES - 1;
    }
    return false;
  }

  /** `b[pos, pos + n)` are the stored bytes: a loop for a short head (a native compare costs
   * about 100 ns whatever the length: a loop is 30 ns for 40 bytes), memcmp for a longer one. */
  private same(b: Buffer, pos: number, n: number): boolean {
    const bytes = this.bytes;
    if (n > SHORT_COMPARE) return bytes.compare(b, pos, pos + n, 0, n) === 0;
    for (let i = 0; i < n; i++) if (b[pos + i] !== bytes[i]) return false;
    return true;
  }

  store(b: Buffer, start: number, end: number, method: string, limits: ParserLimits, h: Head) {
    // (the last head before a rest ends is stored: the next is compared with it)
    if (this.resting > 0) return;
    const n = end - start;
    if (n > HEAD_MEMO_MAX) {
      this.length = 0;
      return;
    }
    b.copy(this.bytes, 0, start, end);
    this.length = n;
    this.method = method;
    this.limits = limits;
    // (copied: the caller's head is its own to change)
    copyHead(h, this.proto);
  }

  /** A new Head equal to the stored one (its own copy of the fields). */
  head(): Head {
    const h = new Head();
    copyHead(this.proto, h);
    return h;
  }
}

const lastRequest = new LastParsedHead();
const lastResponse = new LastParsedHead();

/** The last request-target made (every parser of the thread shares it), as {@link fieldValue}. */
let lastTarget = "";

/**
 * The request-target in `b[s, e)`: the previous one when the bytes are the same (a client asking
 * for the same path again), so that what is derived from it (the path, the location) can be
 * reused by identity too.
 */
function targetString(b: Buffer, s: number, e: number): string {
  const len = e - s;
  const prev = lastTarget;
  if (prev.length === len && len <= REUSE_MAX) {
    let i = 0;
    while (i < len && prev.charCodeAt(i) === b[s + i]) i++;
    if (i === len) return prev;
  }
  const t = latin1(b, s, e);
  lastTarget = t;
  return t;
}

/** Lines are looked for LF byte by byte this far before a native search (a call costs more). */
const SHORT_SCAN = 96;

const knownMethods: string[][] = [];
for (const m of ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"]) {
  const list = knownMethods[m.length] ?? [];
  knownMethods[m.length] = list;
  list.push(m);
}

/** The name in `b[s, e)` (token bytes), lowercase, interned when common. */
function fieldName(b: Buffer, s: number, e: number): string {
  const candidates = knownNames[e - s];
  if (candidates !== undefined) {
    outer: for (let k = 0; k < candidates.length; k++) {
      const n = candidates[k]!;
      for (let i = 0; i < n.length; i++) {
        // Token bytes: OR-ing 0x20 folds A-Z onto a-z and maps no other token byte onto a letter
        // (0x40-0x5f in a token are only A-Z, ^ and _, and ^|0x20 = ~, _|0x20 = DEL, not letters).
        if ((b[s + i]! | 0x20) !== n.charCodeAt(i)) continue outer;
      }
      return n;
    }
  }
  const raw = latin1(b, s, e);
  for (let i = s; i < e; i++) {
    const c = b[i]!;
    if (c >= 0x41 && c <= 0x5a) return raw.toLowerCase();
  }
  return raw;
}

function methodName(b: Buffer, s: number, e: number): string {
  const candidates = knownMethods[e - s];
  if (candidates !== undefined) {
    outer: for (let k = 0; k < candidates.length; k++) {
      const n = candidates[k]!;
      for (let i = 0; i < n.length; i++) if (b[s + i] !== n.charCodeAt(i)) continue outer;
      return n;
    }
  }
  return latin1(b, s, e);
}

/**
 * `host [":" port]` (RFC 3986 authority without userinfo), or undefined when malformed.
 * Returns the host lowercased and the port (-1 when absent or empty).
 */
export function parseAuthority(
  s: string,
  requirePort: boolean,
): { readonly host: string; readonly port: number } | undefined {
  // The same Host request after request (its string is reused, see fieldValue): the same answer.
  if (s === lastAuthority && requirePort === lastRequirePort) return lastParsed;
  const parsed = parseAuthorityNew(s, requirePort);
  lastAuthority = s;
  lastRequirePort = requirePort;
  lastParsed = parsed;
  return parsed;
}

let lastAuthority: string | undefined;
let lastRequirePort = false;
let lastParsed: { readonly host: string; readonly port: number } | undefined;

function parseAuthorityNew(
  s: string,
  requirePort: boolean,
): { readonly host: string; readonly port: number } | undefined {
  let i = 0;
  const n = s.length;
  let host: string;
  if (s.charCodeAt(0) === 0x5b) {
    const close = s.indexOf("]");
    if (close < 2) return undefined;
    for (let k = 1; k < close; k++) if (IP_LITERAL[s.charCodeAt(k)] !== 1) return undefined;
    host = s.slice(0, close + 1).toLowerCase();
    i = close + 1;
    if (i < n && s.charCodeAt(i) !== COLON) return undefined;
  } else {
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === COLON) break;
      if (c > 0xff || HOST[c] !== 1) return undefined;
      if (
        c === 0x25 &&
        (HEX[s.charCodeAt(i + 1) & 0xff]! > 15 || HEX[s.charCodeAt(i + 2) & 0xff]! > 15)
      ) {
        return undefined;
      }
      i++;
    }
    host = s.slice(0, i).toLowerCase();
  }
  let port = -1;
  if (i < n) {
    // s[i] is ":"
    const digits = n - i - 1;
    if (digits > 5) return undefined;
    if (digits > 0) {
      port = 0;
      for (let k = i + 1; k < n; k++) {
        const d = s.charCodeAt(k) - 0x30;
        if (d < 0 || d > 9) return undefined;
        port = port * 10 + d;
      }
      if (port > 65535) return undefined;
    }
  }
  if (requirePort && (port < 0 || host === "")) return undefined;
  return { host, port };
}

/** Parse a Content-Length value (`1*DIGIT`, or a list of identical ones); -2 malformed, -3 too large. */
function contentLengthValue(v: string): number {
  let result = -1;
  let i = 0;
  const n = v.length;
  while (true) {
    let value = 0;
    let digits = 0;
    while (i < n) {
      const d = v.charCodeAt(i) - 0x30;
      if (d < 0 || d > 9) break;
      value = value * 10 + d;
      digits++;
      i++;
    }
    if (digits === 0) return -2;
    if (digits > 15) value = Number.POSITIVE_INFINITY;
    if (result !== -1 && value !== result) return -2;
    result = value;
    while (i < n && (v.charCodeAt(i) === SP || v.charCodeAt(i) === HTAB)) i++;
    if (i === n) break;
    if (v.charCodeAt(i) !== 0x2c) return -2;
    i++;
    while (i < n && (v.charCodeAt(i) === SP || v.charCodeAt(i) === HTAB)) i++;
  }
  return result === Number.POSITIVE_INFINITY ? -3 : result;
}

/** Whether `list` (a comma-separated field value) has `token`, case-insensitively. */
function hasToken(list: string, token: string): boolean {
  const lower = list.toLowerCase();
  let from = 0;
  while (true) {
    const at = lower.indexOf(token, from);
    if (at === -1) return false;
    const before = at === 0 ? 0x2c : lower.charCodeAt(at - 1);
    const end = at + token.length;
    const after = end === lower.length ? 0x2c : lower.charCodeAt(end);
    const sepBefore = before === 0x2c || before === SP || before === HTAB;
    const sepAfter = after === 0x2c || after === SP || after === HTAB;
    if (sepBefore && sepAfter) return true;
    from = at + 1;
  }
}

export class H1Parser {
  readonly kind: "request" | "response";
  readonly limits: ParserLimits;

  /** The head of the current message, valid from its HEAD event on. */
  head: Head = NO_HEAD;
  /** The body piece of the last BODY event: a view into the fed data, valid as long as the caller keeps it. */
  chunk: Buffer = EMPTY;
  /**
   * Response mode: the method of the request this response answers (set before each response:
   * `HEAD` and `CONNECT` change the framing).
   */
  requestMethod = "GET";

  private state = S_HEAD;
  // The unconsumed input is buf[pos, buf.length). buf is either a fed chunk (zero copy) or a
  // view of `store`, our own growing copy, when a message spans chunks. Memory that was handed
  // out as a body chunk is never written again (we append past it or allocate anew).
  private buf: Buffer = EMPTY;
  private pos = 0;
  private store: Buffer | undefined = undefined;
  // Where the next LF search starts (absolute), so a line arriving byte by byte is searched once.
  private scan = 0;
  // Head under construction.
  private lineStart = 0;
  private startLineDone = false;
  private headerBytes = 0;
  private fieldCount = 0;
  private clValue = -1;
  private teValues: string[] | undefined = undefined;
  private hostValue: string | undefined = undefined;
  private hostCount = 0;
  private connectionValue: string | undefined = undefined;
  private upgradeValue: string | undefined = undefined;
  // Body.
  private remaining = 0;
  private bodyBytes = 0;
  private extensionBytes = 0;
  private error: ParseError | undefined = undefined;

  /** The thread's last head of this kind (LastParsedHead). */
  private readonly memo: LastParsedHead;

  constructor(kind: "request" | "response", limits: Partial<ParserLimits> = {}) {
    this.kind = kind;
    this.memo = kind === "request" ? lastRequest : lastResponse;
    // A complete set (an engine's, shared by its connections) is used as is: no copy per parser.
    this.limits = isComplete(limits) ? limits : { ...defaultLimits, ...limits };
  }

  /** Add received bytes. The parser keeps a reference to `data` (it must not be changed). */
  feed(data: Buffer): void {
    if (data.length === 0) return;
    const left = this.buf.length - this.pos;
    if (left === 0) {
      this.buf = data;
      this.scan -= this.pos;
      this.lineStart -= this.pos;
      this.pos = 0;
      this.store = undefined;
      return;
    }
    // Some input is still unconsumed (a partial line, or the caller paused): append.
    const store = this.store;
    const storeEnd =
      store === undefined ? -1 : this.buf.byteOffset - store.byteOffset + this.buf.length;
    if (
      store !== undefined &&
      storeEnd + data.length <= store.length &&
      this.buf.buffer === store.buffer
    ) {
      data.copy(store, storeEnd);
      this.buf = store.subarray(this.buf.byteOffset - store.byteOffset, storeEnd + data.length);
      return;
    }
    const size = Math.max(4096, 2 * (left + data.length));
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, this.pos);
    data.copy(next, left);
    this.store = next;
    this.buf = next.subarray(0, left + data.length);
    this.scan -= this.pos;
    this.lineStart -= this.pos;
    this.pos = 0;
  }

  /**
   * Stop referring to `fed`, the last piece fed (a view of a read buffer the caller reuses):
   * unconsumed input is copied into the parser's own store, none held otherwise. Only the last
   * piece can be referred to: a piece fed while input is left over is copied at once (feed), so
   * an identity check says it all (no `.buffer`, which costs a runtime call on a view). Body
   * chunks taken meanwhile are views of what was fed: the caller copies those it keeps.
   */
  own(fed: Buffer): void {
    if (this.buf !== fed) return;
    const left = this.buf.length - this.pos;
    if (left === 0) {
      this.buf = EMPTY;
      this.store = undefined;
      this.scan -= this.pos;
      this.lineStart -= this.pos;
      this.pos = 0;
      return;
    }
    const next = Buffer.allocUnsafe(Math.max(4096, 2 * left));
    this.buf.copy(next, 0, this.pos);
    this.store = next;
    this.buf = next.subarray(0, left);
    this.scan -= this.pos;
    this.lineStart -= this.pos;
    this.pos = 0;
  }

  /** Unconsumed input (after an upgrade, a CONNECT, or to hand over a pipelined rest). */
  rest(): Buffer {
    return this.buf.subarray(this.pos);
  }

  /** Bytes fed but not yet consumed. */
  get buffered(): number {
    return this.buf.length - this.pos;
  }

  /** True between messages with nothing pending: the connection may close cleanly here. */
  get idle(): boolean {
    return this.state === S_HEAD && this.buf.length === this.pos;
  }

  /** True after {@link stop}, a CONNECT, a 101, a tunnel or a close-delimited response. */
  get stopped(): boolean {
    return this.state === S_STOPPED;
  }

  /** True once the head of a message is being received (some of it arrived). */
  get inHead(): boolean {
    return this.state === S_HEAD && this.buf.length > this.pos;
  }

  /** True while a body is being received. */
  get inBody(): boolean {
    return this.state >= S_BODY_LENGTH && this.state <= S_CLOSE_DELIMITED;
  }

  /**
   * Stop parsing after the current message (CONNECT, an upgrade taken over): from now on the
   * input is not HTTP; {@link rest} has it.
   */
  stop(): void {
    this.state = S_STOPPED;
  }

  /**
   * The peer closed its side. Returns true when that ends the current message cleanly: between
   * messages with nothing pending, or a close-delimited response body (the next `next()` is
   * END then). False: the message was cut short.
   */
  eof(): boolean {
    if (this.state === S_CLOSE_DELIMITED && this.buf.length === this.pos) {
      this.state = S_DONE;
      return true;
    }
    const s = this.state;
    return (s === S_HEAD || s === S_DONE || s === S_STOPPED) && this.buf.length === this.pos;
  }

  /** Parse as far as the input goes; see the module doc. Throws {@link ParseError}. */
  next(): ParseEvent {
    switch (this.state) {
      case S_HEAD:
        return this.parseHead();
      case S_BODY_LENGTH:
      case S_CHUNK_DATA:
      case S_CLOSE_DELIMITED:
        return this.bodyBytesEvent();
      case S_CHUNK_SIZE:
        return this.chunkSize();
      case S_CHUNK_CRLF:
        return this.chunkCrlf();
      case S_TRAILERS:
        return this.trailers();
      case S_DONE:
        return this.finishMessage();
      case S_STOPPED:
        return NEED_MORE;
      default:
        throw this.error!;
    }
  }

  private fail(status: number, code: string, message: string): never {
    const err =
      this.kind === "response"
        ? new ParseError(502, code, `upstream response: ${message}`)
        : new ParseError(status, code, message);
    this.error = err;
    this.state = S_DEAD;
    throw err;
  }

  /** Find the LF ending the line that starts at `from`; -1 if not there yet. */
  private findLf(): number {
    const b = this.buf;
    const from = this.scan;
    const end = b.length;
    const short = from + SHORT_SCAN < end ? from + SHORT_SCAN : end;
    for (let i = from; i < short; i++) if (b[i] === LF) return i;
    const lf = short === end ? -1 : b.indexOf(LF, short);
    if (lf === -1) this.scan = end;
    return lf;
  }

  private parseHead(): ParseEvent {
    const b = this.buf;
    if (this.pos === b.length) return NEED_MORE;
    if (this.head === NO_HEAD) {
      if (
        !this.startLineDone &&
        this.lineStart === this.pos &&
        this.memo.matches(b, this.pos, this.requestMethod, this.limits)
      ) {
        return this.reuseHead();
      }
      this.head = new Head();
    }
    if (!this.startLineDone && this.lineStart === this.pos) {
      // Refuse garbage (a TLS hello on a plain port, a binary protocol) on its first byte.
      const c = b[this.pos]!;
      const ok = this.kind === "request" ? TOKEN[c] === 1 || c === CR : c === 0x48 || c === CR;
      if (!ok) this.fail(400, "bad-start", "the message does not start with a request line");
      if (this.scan < this.pos) this.scan = this.pos;
    }
    while (true) {
      const lf = this.findLf();
      if (lf === -1) {
        if (!this.startLineDone) {
          if (b.length - this.pos > this.limits.maxStartLine) {
            this.fail(414, "start-line-too-long", "the request line is too long");
          }
        } else if (this.headerBytes + (b.length - this.lineStart) > this.limits.maxHeaderBytes) {
          this.fail(431, "headers-too-large", "the header section is too large");
        }
        return NEED_MORE;
      }
      this.scan = lf + 1;
      const s = this.lineStart;
      // Checks in the order the partial-line checks above make them, so that the outcome never
      // depends on how the bytes were cut: length (up to the LF), then the line's content.
      if (!this.startLineDone) {
        if (lf - this.pos > this.limits.maxStartLine) {
          this.fail(414, "start-line-too-long", "the request line is too long");
        }
      } else if (this.headerBytes + (lf - s) > this.limits.maxHeaderBytes) {
        this.fail(431, "headers-too-large", "the header section is too large");
      }
      if (lf === s || b[lf - 1] !== CR) this.fail(400, "bare-lf", "a line ends in LF without CR");
      const e = lf - 1;
      this.lineStart = lf + 1;
      if (!this.startLineDone) {
        if (e === s) continue; // empty lines before the start line are ignored (RFC 9112 §2.2)
        if (this.kind === "request") this.requestLine(b, s, e);
        else this.statusLine(b, s, e);
        this.startLineDone = true;
        this.headerBytes = lf + 1 - this.pos;
        continue;
      }
      this.headerBytes += lf + 1 - s;
      if (e === s) {
        const start = this.pos;
        this.pos = lf + 1;
        const ev = this.headDone();
        this.memo.store(b, start, this.pos, this.requestMethod, this.limits, this.head);
        return ev;
      }
      this.headerLine(b, s, e, this.head.fields, true);
    }
  }

  private requestLine(b: Buffer, s: number, e: number): void {
    const head = this.head;
    let i = s;
    while (i < e && TOKEN[b[i]!] === 1) i++;
    if (i === s || i === e || b[i] !== SP) {
      if (i < e && b[i] === CR) this.fail(400, "bare-cr", "a CR without LF in the request line");
      this.fail(400, "bad-method", "malformed method in the request line");
    }
    head.method = methodName(b, s, i);
    const ts = ++i;
    while (i < e && TARGET[b[i]!] === 1) i++;
    if (i === ts || i === e || b[i] !== SP) {
      this.fail(
        400,
        "bad-target",
        "malformed request-target (or not single spaces) in the request line",
      );
    }
    head.target = targetString(b, ts, i);
    this.version(b, i + 1, e);
    this.targetForm(head);
  }

  private version(b: Buffer, i: number, e: number): void {
    if (
      e - i !== 8 ||
      b[i] !== 0x48 ||
      b[i + 1] !== 0x54 ||
      b[i + 2] !== 0x54 ||
      b[i + 3] !== 0x50 ||
      b[i + 4] !== 0x2f ||
      b[i + 6] !== 0x2e
    ) {
      this.fail(400, "bad-version", "malformed HTTP version");
    }
    const major = b[i + 5]! - 0x30;
    const minor = b[i + 7]! - 0x30;
    if (major < 0 || major > 9 || minor < 0 || minor > 9)
      this.fail(400, "bad-version", "malformed HTTP version");
    if (major !== 1 || minor > 1)
      this.fail(505, "unsupported-version", `HTTP/${major}.${minor} is not supported`);
    this.head.versionMinor = minor;
    if (minor === 0) this.head.keepAlive = false;
  }

  private targetForm(head: Head): void {
    const t = head.target;
    const c0 = t.charCodeAt(0);
    const connect = head.method === "CONNECT";
    if (connect) {
      const a = parseAuthority(t, true);
      if (a === undefined)
        this.fail(400, "bad-target", "CONNECT needs an authority-form target (host:port)");
      head.form = "authority";
      head.host = a.host;
      head.port = a.port;
      return;
    }
    if (c0 === 0x2f) {
      head.form = "origin";
      return;
    }
    if (t === "*") {
      if (head.method !== "OPTIONS")
        this.fail(400, "bad-target", "the asterisk-form target is for OPTIONS only");
      head.form = "asterisk";
      return;
    }
    // absolute-form: scheme "://" authority [ path-abempty ] [ "?" query ]
    let i = 0;
    if (!((c0 >= 0x41 && c0 <= 0x5a) || (c0 >= 0x61 && c0 <= 0x7a))) {
      this.fail(400, "bad-target", "the request-target is neither a path nor an absolute URI");
    }
    while (i < t.length && SCHEME[t.charCodeAt(i)] === 1) i++;
    const scheme = t.slice(0, i).toLowerCase();
    if (t.charCodeAt(i) !== COLON || (scheme !== "http" && scheme !== "https")) {
      this.fail(400, "bad-target", "an absolute request-target must be an http or https URI");
    }
    if (t.charCodeAt(i + 1) !== 0x2f || t.charCodeAt(i + 2) !== 0x2f) {
      this.fail(400, "bad-target", "an absolute request-target needs an authority");
    }
    const as = i + 3;
    let ae = as;
    while (ae < t.length) {
      const c = t.charCodeAt(ae);
      if (c === 0x2f || c === 0x3f) break;
      ae++;
    }
    const authority = t.slice(as, ae);
    if (authority.includes("@")) this.fail(400, "bad-target", "userinfo in the request-target");
    const a = parseAuthority(authority, false);
    if (a === undefined || a.host === "")
      this.fail(400, "bad-target", "bad host in the request-target");
    head.form = "absolute";
    head.host = a.host;
    head.port = a.port;
  }

  private statusLine(b: Buffer, s: number, e: number): void {
    const head = this.head;
    if (e - s < 12 || b[s + 8] !== SP) this.fail(502, "bad-status-line", "malformed status line");
    this.version(b, s, s + 8);
    const d0 = b[s + 9]! - 0x30;
    const d1 = b[s + 10]! - 0x30;
    const d2 = b[s + 11]! - 0x30;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) {
      this.fail(502, "bad-status", "malformed status code");
    }
    head.status = d0 * 100 + d1 * 10 + d2;
    let i = s + 12;
    if (i < e) {
      if (b[i] !== SP) this.fail(502, "bad-status-line", "malformed status line");
      i++;
      const rs = i;
      while (i < e && REASON[b[i]!] === 1) i++;
      if (i !== e) this.fail(502, "bad-reason", "control bytes in the reason phrase");
      head.reason = latin1(b, rs, e);
    }
  }

  /** One `name: value` line in `b[s, e)` (e is the CR), appended to `out`. */
  private headerLine(b: Buffer, s: number, e: number, out: string[], isHead: boolean): void {
    let i = s;
    while (i < e && TOKEN[b[i]!] === 1) i++;
    if (i === s) {
      const c = b[s]!;
      if (c === SP || c === HTAB)
        this.fail(400, "obs-fold", "obsolete line folding (or whitespace before the first field)");
      if (c === COLON) this.fail(400, "empty-name", "a field with an empty name");
      if (c === CR) this.fail(400, "bare-cr", "a CR without LF");
      this.fail(400, "bad-name", "a field name with a byte outside token");
    }
    if (i === e) this.fail(400, "no-colon", "a field line without a colon");
    if (b[i] !== COLON) {
      const c = b[i];
      if (c === SP || c === HTAB)
        this.fail(400, "space-before-colon", "whitespace between a field name and the colon");
      if (c === CR) this.fail(400, "bare-cr", "a CR without LF in a field name");
      if (c === 0) this.fail(400, "nul", "a NUL byte in a field name");
      this.fail(400, "bad-name", "a field name with a byte outside token");
    }
    const name = fieldName(b, s, i);
    i++;
    while (i < e && (b[i] === SP || b[i] === HTAB)) i++;
    const vs = i;
    while (i < e && FIELD_VALUE[b[i]!] === 1) i++;
    if (i !== e) {
      if (b[i] === CR) this.fail(400, "bare-cr", "a CR without LF in a field value");
      if (b[i] === 0) this.fail(400, "nul", "a NUL byte in a field value");
      this.fail(400, "bad-value", "a control byte in a field value");
    }
    let ve = e;
    while (ve > vs && (b[ve - 1] === SP || b[ve - 1] === HTAB)) ve--;
    const value = fieldValue(name, b, vs, ve);
    this.fieldCount++;
    if (this.fieldCount > this.limits.maxHeaderCount) {
      this.fail(431, "header-count", `more than ${this.limits.maxHeaderCount} fields`);
    }
    out.push(name, value);
    if (!isHead) return;
    switch (name) {
      case "content-length": {
        const n = contentLengthValue(value);
        if (n === -2) this.fail(400, "bad-content-length", "malformed Content-Length");
        if (n === -3) {
          if (this.limits.maxBodySize > 0)
            this.fail(413, "body-too-large", "the declared body is too large");
          this.fail(400, "bad-content-length", "Content-Length out of range");
        }
        if (this.clValue !== -1 && this.clValue !== n) {
          this.fail(400, "content-length-mismatch", "Content-Length fields that disagree");
        }
        this.clValue = n;
        break;
      }
      case "transfer-encoding":
        if (this.teValues === undefined) this.teValues = [value];
        else this.teValues.push(value);
        break;
      case "host":
        this.hostCount++;
        this.hostValue = value;
        break;
      case "connection":
        this.connectionValue =
          this.connectionValue === undefined ? value : `${this.connectionValue}, ${value}`;
        break;
      case "upgrade":
        this.upgradeValue = value;
        break;
      case "expect":
        if (value.toLowerCase() === "100-continue") this.head.expectContinue = true;
        else this.head.expectUnknown = true;
        break;
    }
  }

  /**
   * The Transfer-Encoding fields, as one list: plain `chunked` once and last, or this fails.
   * Malformed syntax is a 400; `chunked` anywhere but last is a 400 (RFC 9112 §6.3 rule 4:
   * `chunked, gzip`, or `chunked` then another field); otherwise a coding we do not decode is a
   * 501 (RFC 9112 §6.1, as nginx: `xchunked`, `gzip`, `gzip, chunked`). The same answers as the
   * node:http engine. Every outcome but plain chunked closes the connection.
   */
  private checkTransferCoding(values: string[]): void {
    const codings = values.join(",").split(",");
    let other = false;
    for (let k = 0; k < codings.length; k++) {
      const c = codings[k]!.trim();
      if (c === "")
        this.fail(400, "bad-transfer-encoding", "an empty element in Transfer-Encoding");
      const semi = c.indexOf(";");
      const name = (semi === -1 ? c : c.slice(0, semi).trimEnd()).toLowerCase();
      if (name === "") this.fail(400, "bad-transfer-encoding", "a malformed transfer coding");
      for (let i = 0; i < name.length; i++) {
        const ch = name.charCodeAt(i);
        if (ch > 0xff || TOKEN[ch] !== 1)
          this.fail(400, "bad-transfer-encoding", "a malformed transfer coding");
      }
      if (name === "chunked") {
        if (semi !== -1) this.fail(400, "bad-transfer-encoding", "chunked takes no parameters");
        if (k !== codings.length - 1)
          this.fail(400, "chunked-not-last", "chunked is not the final transfer coding");
      } else {
        other = true;
      }
    }
    if (other)
      this.fail(501, "unsupported-transfer-coding", "a transfer coding other than chunked");
    // Here chunked is the one last coding: twice would have failed as "not last".
  }

  private headDone(): ParseEvent {
    const head = this.head;
    const limits = this.limits;
    if (this.connectionValue !== undefined) {
      const v = this.connectionValue;
      if (hasToken(v, "close")) head.keepAlive = false;
      else if (head.versionMinor === 0 && hasToken(v, "keep-alive")) head.keepAlive = true;
      if (this.upgradeValue !== undefined && hasToken(v, "upgrade"))
        head.upgrade = this.upgradeValue;
    }
    if (this.kind === "request") {
      if (head.versionMinor === 0) {
        // RFC 9110 §10.1.1: an Expect in an HTTP/1.0 request is ignored (no 100, no 417).
        head.expectContinue = false;
        head.expectUnknown = false;
      }
      if (this.hostCount > 1) this.fail(400, "duplicate-host", "more than one Host field");
      if (this.hostCount === 0 && head.versionMinor === 1)
        this.fail(400, "missing-host", "HTTP/1.1 request without Host");
      head.hostField = this.hostValue;
      if (this.hostValue !== undefined) {
        const a = parseAuthority(this.hostValue, false);
        if (a === undefined) this.fail(400, "bad-host", "malformed Host");
        if (head.form === "origin" || head.form === "asterisk") {
          head.host = a.host;
          head.port = a.port;
        }
      }
      if (this.teValues !== undefined) {
        if (head.versionMinor === 0)
          this.fail(400, "te-http10", "Transfer-Encoding in an HTTP/1.0 request");
        if (this.clValue !== -1)
          this.fail(400, "cl-te", "both Content-Length and Transfer-Encoding");
        this.checkTransferCoding(this.teValues);
        head.framing = "chunked";
      } else if (this.clValue > 0) {
        head.framing = "length";
        head.contentLength = this.clValue;
        if (limits.maxBodySize > 0 && this.clValue > limits.maxBodySize) {
          this.fail(413, "body-too-large", "the declared body is too large");
        }
      } else if (this.clValue === 0) {
        head.contentLength = 0;
      }
      if (head.method === "CONNECT" && head.framing !== "none") {
        this.fail(400, "connect-body", "a CONNECT request with a body");
      }
    } else {
      const st = head.status;
      const m = this.requestMethod;
      if (st < 200 || st === 204 || st === 304 || m === "HEAD" || (m === "CONNECT" && st < 300)) {
        // No body whatever the fields say (RFC 9112 §6.3 1-2); keep a 304/HEAD length for the client.
        head.framing = "none";
        if (this.clValue >= 0 && (st === 304 || m === "HEAD")) head.contentLength = this.clValue;
      } else if (this.teValues !== undefined) {
        if (this.clValue !== -1)
          this.fail(502, "cl-te", "both Content-Length and Transfer-Encoding");
        if (head.versionMinor === 0)
          this.fail(502, "te-http10", "Transfer-Encoding in an HTTP/1.0 response");
        this.checkTransferCoding(this.teValues);
        head.framing = "chunked";
      } else if (this.clValue > 0) {
        head.framing = "length";
        head.contentLength = this.clValue;
      } else if (this.clValue === 0) {
        head.contentLength = 0;
      } else {
        head.framing = "close";
        head.keepAlive = false;
      }
    }
    this.resetHeadState();
    this.enterBody(head);
    return HEAD;
  }

  /**
   * The head is the bytes of the thread's last one of this kind again (for a response, to the
   * same request method), under the same limits (LastParsedHead): its outcome is the same, taken as it
   * was.
   */
  private reuseHead(): ParseEvent {
    const memo = this.memo;
    const head = memo.head();
    this.head = head;
    this.pos += memo.length;
    this.lineStart = this.pos;
    this.scan = this.pos;
    this.enterBody(head);
    return HEAD;
  }

  /** After a head: the state its framing leads to. */
  private enterBody(head: Head): void {
    this.bodyBytes = 0;
    this.extensionBytes = 0;
    switch (head.framing) {
      case "length":
        this.remaining = head.contentLength;
        this.state = S_BODY_LENGTH;
        break;
      case "chunked":
        this.state = S_CHUNK_SIZE;
        this.lineStart = this.pos;
        this.scan = this.pos;
        break;
      case "close":
        this.state = S_CLOSE_DELIMITED;
        break;
      default:
        this.state = S_DONE;
    }
  }

  private resetHeadState(): void {
    this.startLineDone = false;
    this.headerBytes = 0;
    this.fieldCount = 0;
    this.clValue = -1;
    this.teValues = undefined;
    this.hostValue = undefined;
    this.hostCount = 0;
    this.connectionValue = undefined;
    this.upgradeValue = undefined;
  }

  private finishMessage(): ParseEvent {
    const head = this.head;
    const st = head.status;
    const stops =
      this.kind === "request"
        ? head.method === "CONNECT"
        : st === 101 ||
          (this.requestMethod === "CONNECT" && st >= 200 && st < 300) ||
          head.framing === "close";
    // The caller keeps `head`; the next message gets a new one when its first byte arrives.
    this.head = NO_HEAD;
    this.state = stops ? S_STOPPED : S_HEAD;
    if (this.pos === this.buf.length && !stops) {
      // Nothing pending: hold no buffer while the connection idles (memory per idle connection).
      this.buf = EMPTY;
      this.store = undefined;
      this.pos = 0;
    }
    this.chunk = EMPTY;
    this.lineStart = this.pos;
    this.scan = this.pos;
    return END;
  }

  private bodyBytesEvent(): ParseEvent {
    const avail = this.buf.length - this.pos;
    if (avail === 0) return NEED_MORE;
    const st = this.state;
    let n = avail;
    if (st !== S_CLOSE_DELIMITED) {
      if (n > this.remaining) n = this.remaining;
      this.remaining -= n;
      if (this.remaining === 0) this.state = st === S_BODY_LENGTH ? S_DONE : S_CHUNK_CRLF;
    }
    this.chunk =
      this.pos === 0 && n === this.buf.length
        ? this.buf
        : this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return BODY;
  }

  private chunkSize(): ParseEvent {
    const b = this.buf;
    if (this.pos === b.length) return NEED_MORE;
    if (this.scan < this.pos) this.scan = this.pos;
    const lf = this.findLf();
    const limits = this.limits;
    // The same checks in the same order whether the line is complete or not (see parseHead):
    // the first byte (refused early rather than waiting for the line), the length, the content.
    if (HEX[b[this.pos]!]! > 15) this.fail(400, "bad-chunk-size", "malformed chunk size");
    if (lf === -1) {
      if (b.length - this.pos > limits.maxChunkLine)
        this.fail(400, "chunk-line-too-long", "a chunk-size line is too long");
      return NEED_MORE;
    }
    const s = this.pos;
    if (lf - s > limits.maxChunkLine)
      this.fail(400, "chunk-line-too-long", "a chunk-size line is too long");
    if (lf === s || b[lf - 1] !== CR)
      this.fail(400, "bare-lf", "a chunk-size line ends in LF without CR");
    const e = lf - 1;
    let i = s;
    let size = 0;
    while (i < e) {
      const d = HEX[b[i]!]!;
      if (d > 15) break;
      size = size * 16 + d;
      i++;
    }
    if (i === s) this.fail(400, "bad-chunk-size", "malformed chunk size");
    if (size > Number.MAX_SAFE_INTEGER)
      this.fail(400, "chunk-size-overflow", "a chunk size out of range");
    if (i < e) {
      if (b[i] !== 0x3b) {
        const c = b[i];
        this.fail(
          400,
          c === CR ? "bare-cr" : "bad-chunk-size",
          "malformed chunk size (or whitespace after it)",
        );
      }
      this.extensionBytes += e - i;
      if (this.extensionBytes > limits.maxChunkExtensions) {
        this.fail(400, "chunk-extensions-too-large", "too many chunk-extension bytes");
      }
      this.chunkExtensions(b, i, e);
    }
    this.pos = lf + 1;
    this.scan = this.pos;
    if (size === 0) {
      this.state = S_TRAILERS;
      this.lineStart = this.pos;
      this.head.trailers = [];
      this.fieldCount = 0;
      this.headerBytes = 0;
      return this.trailers();
    }
    this.bodyBytes += size;
    if (limits.maxBodySize > 0 && this.bodyBytes > limits.maxBodySize) {
      this.fail(413, "body-too-large", "the body is too large");
    }
    this.remaining = size;
    this.state = S_CHUNK_DATA;
    return this.bodyBytesEvent();
  }

  /** `*( ";" token [ "=" ( token / quoted-string ) ] )` in b[i, e), b[i] is ";". */
  private chunkExtensions(b: Buffer, i: number, e: number): void {
    while (i < e) {
      if (b[i] !== 0x3b) this.fail(400, "bad-chunk-extension", "malformed chunk extension");
      i++;
      const ns = i;
      while (i < e && TOKEN[b[i]!] === 1) i++;
      if (i === ns) this.fail(400, "bad-chunk-extension", "malformed chunk extension");
      if (i === e || b[i] === 0x3b) continue;
      if (b[i] !== 0x3d) this.fail(400, "bad-chunk-extension", "malformed chunk extension");
      i++;
      if (b[i] === 0x22) {
        i++;
        while (true) {
          if (i >= e)
            this.fail(
              400,
              "bad-chunk-extension",
              "unterminated quoted string in a chunk extension",
            );
          const c = b[i]!;
          if (c === 0x22) {
            i++;
            break;
          }
          if (c === 0x5c) {
            if (i + 1 >= e || QUOTED_PAIR[b[i + 1]!] !== 1)
              this.fail(400, "bad-chunk-extension", "bad quoted-pair");
            i += 2;
          } else if (QDTEXT[c] === 1) {
            i++;
          } else {
            this.fail(400, "bad-chunk-extension", "a control byte in a chunk extension");
          }
        }
      } else {
        const vs = i;
        while (i < e && TOKEN[b[i]!] === 1) i++;
        if (i === vs) this.fail(400, "bad-chunk-extension", "malformed chunk extension value");
      }
    }
  }

  private chunkCrlf(): ParseEvent {
    const b = this.buf;
    const avail = b.length - this.pos;
    if (avail === 0) return NEED_MORE;
    if (b[this.pos] !== CR) this.fail(400, "bad-chunk-end", "chunk data not followed by CRLF");
    if (avail === 1) return NEED_MORE;
    if (b[this.pos + 1] !== LF) this.fail(400, "bare-cr", "chunk data followed by CR without LF");
    this.pos += 2;
    this.scan = this.pos;
    this.state = S_CHUNK_SIZE;
    return this.chunkSize();
  }

  private trailers(): ParseEvent {
    const b = this.buf;
    const trailers = this.head.trailers!;
    if (this.scan < this.lineStart) this.scan = this.lineStart;
    while (true) {
      const lf = this.findLf();
      if (lf === -1) {
        if (this.headerBytes + (b.length - this.lineStart) > this.limits.maxHeaderBytes) {
          this.fail(431, "trailers-too-large", "the trailer section is too large");
        }
        return NEED_MORE;
      }
      this.scan = lf + 1;
      const s = this.lineStart;
      if (this.headerBytes + (lf - s) > this.limits.maxHeaderBytes) {
        this.fail(431, "trailers-too-large", "the trailer section is too large");
      }
      if (lf === s || b[lf - 1] !== CR)
        this.fail(400, "bare-lf", "a trailer line ends in LF without CR");
      const e = lf - 1;
      this.lineStart = lf + 1;
      this.headerBytes += lf + 1 - s;
      if (e === s) {
        this.pos = lf + 1;
        this.fieldCount = 0;
        this.headerBytes = 0;
        return this.finishMessage();
      }
      this.headerLine(b, s, e, trailers, false);
    }
  }
}
