/**
 * One HTTP/1.x client connection of Brigade's own engine: parse, hand each request to the
 * pipeline, write its response, repeat (keep-alive, pipelining), with every timeout and limit of
 * the web server.
 *
 * Requests on a connection are served strictly one after another: the next head is not parsed
 * until the current response is written (pipelined bytes wait in the parser, and the socket is
 * paused when they pile up), so responses never come out of order and a slow response applies
 * backpressure to the client. Framing is ours alone: whatever a response's fields say,
 * `Content-Length` / chunked / close are written from its body (see WebResponse).
 *
 * Timeouts (nginx's meaning), as deadlines checked by the engine's sweep:
 * - header: the whole head, from the accept (first request) or from its first byte;
 * - body: between two reads of a body being read (the module's read fails with 408);
 * - keep-alive: idle between requests;
 * - send: output waiting in the socket without moving (the client stopped reading);
 * - linger: after we close our side, how long we keep reading and dropping what the client still
 *   sends, so that it sees our error response rather than a reset.
 */
import { Buffer } from "node:buffer";
import { close as closeFd, read as readFd } from "node:fs";
import { Socket as NetSocket, type Socket } from "node:net";
import type { Readable } from "node:stream";
import { monoNow, wallAt } from "../../../core/clock.ts";
import {
  BODY,
  END,
  H1Parser,
  type Head,
  NEED_MORE,
  ParseError,
} from "../../../core/http1/parser.ts";
import { detached, READ_BUFFER, readView } from "../../../core/http1/readBuffer.ts";
import { type Body, Fields, HttpError, type WebResponse } from "../../exchange.ts";
import type { Completion } from "../../module.ts";
import { defaultPage } from "../../statusPages.ts";
import { type ConnectionBase, connectionBase, connectionView } from "../connection.ts";
import { releaseBody } from "../respond.ts";
import type { Outcome } from "../types.ts";
import { fileBuffers } from "./bufferPool.ts";
import type { BrigadeHttp1Engine } from "./engine.ts";
import {
  checkField,
  contentLengthLine,
  currentDateLine,
  isFramingField,
  LastHead,
  statusLine,
} from "./head.ts";
import { type BodySink, type BodySource, H1Request } from "./request.ts";

const T_NONE = 0;
const T_HEADER = 1;
const T_BODY = 2;
const T_KEEPALIVE = 3;
const T_SEND = 4;
const T_LINGER = 5;

/** Pause reading when this much unparsed input waits (pipelined requests, an unread body). */
const HIGH_WATER = 64 * 1024;

const CONTINUE = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1");
const CHUNK_END = Buffer.from("0\r\n\r\n", "latin1");
const CRLF = Buffer.from("\r\n", "latin1");

const kConnection = Symbol("brigade.h1.connection");
type Tagged = Socket & { [kConnection]?: Connection | undefined };

function onSocketData(this: Tagged, chunk: Buffer): void {
  this[kConnection]?.onData(chunk);
}

/**
 * Plain TCP and unix sockets read into the thread's one read buffer (core/http1/readBuffer.ts)
 * instead of a fresh Buffer per read pushed through the socket's Readable: Node's `onread`
 * (documented for `net.connect`), switched on for accepted sockets through the two internal
 * properties `net.Socket` keeps it in (with the synchronous pipeline: 18.4 → 13.1 µs of CPU per
 * cached 1 KiB file; docs/engine.md). What outlives a read (unconsumed input, body chunks) is
 * copied out first (`H1Parser.own`, {@link Connection.pump}). Where the properties are not found
 * (another Node), reads come as `data` events, as before.
 */
const userBuffer = ((): { buffer: symbol; callback: symbol } | undefined => {
  const probe = new NetSocket();
  const own = Object.getOwnPropertySymbols(probe);
  probe.destroy();
  const buffer = own.find((s) => s.description === "kBuffer");
  const callback = own.find((s) => s.description === "kBufferCb");
  return buffer && callback ? { buffer, callback } : undefined;
})();

interface UserBufferHandle {
  useUserBuffer?(buffer: Uint8Array): void;
}

/**
 * A read into the shared buffer (`this`: the socket). Once the connection is handed over (an
 * upgrade, CONNECT), the socket cannot go back to reads of its own: its new owner gets copies
 * through the Readable, as `data` events (false: the Readable is full, stop reading until read).
 */
function onSocketRead(this: Tagged, bytes: number, buf: Buffer): boolean {
  const conn = this[kConnection];
  if (conn === undefined) return this.push(Buffer.from(buf.subarray(0, bytes)));
  // (`buf` is READ_BUFFER: the socket reads into nothing else, see readInto)
  const view = buf === READ_BUFFER ? readView(bytes) : buf.subarray(0, bytes);
  conn.onData(view);
  conn.ownInput(view);
  return true;
}

function readInto(socket: Socket): boolean {
  const handle = (socket as unknown as { _handle?: UserBufferHandle })._handle;
  if (userBuffer === undefined || typeof handle?.useUserBuffer !== "function") return false;
  const s = socket as unknown as Record<symbol, unknown>;
  if (s[userBuffer.buffer] !== null || s[userBuffer.callback] !== null) return false;
  s[userBuffer.buffer] = READ_BUFFER;
  s[userBuffer.callback] = onSocketRead;
  handle.useUserBuffer(READ_BUFFER);
  return true;
}
function onSocketEnd(this: Tagged): void {
  this[kConnection]?.onEnd();
}
function onSocketError(this: Tagged): void {
  this.destroy();
}
function onSocketClose(this: Tagged): void {
  this[kConnection]?.onClose();
}
function onSocketDrain(this: Tagged): void {
  this[kConnection]?.onDrain();
}
/** Buffer's own latin1 writer (as the parser uses `latin1Slice`): no encoding lookup per call. */
interface Latin1Writer {
  latin1Write(text: string, offset: number): number;
}

/** The thread's last response head (head.ts): the same head again is not built again. */
const lastHead = new LastHead();

/** A module's own `content-length` (the first), when it is 1*DIGIT: a HEAD's or a 304's. */
function moduleLengthOf(list: readonly string[]): string | undefined {
  for (let i = 0; i < list.length; i += 2) {
    if (list[i] === "content-length") {
      const v = list[i + 1]!;
      return /^\d+$/.test(v) ? v : undefined;
    }
  }
  return undefined;
}

/** Largest bytes body copied into the head's buffer (one write) rather than written beside it. */
const SMALL_BODY = 4096;

/**
 * Output waits in the socket beyond its high-water mark: the client is not keeping up. Not when
 * a write above the mark (a 64 KiB body) went to the kernel whole, at once: `writableNeedDrain`
 * stays true until its 'drain' on the next tick, but nothing waits, so neither do we (waiting
 * for that drain cost a tick, a closure and a timer per response, for nothing).
 */
export function backlogged(socket: Socket): boolean {
  return socket.writableNeedDrain && socket.writableLength > 0;
}

function uncorkLater(conn: Connection): void {
  conn.uncork();
}

/** The response being written, with its accounting for the Completion. */
interface Sending {
  req: H1Request;
  outcome: Outcome;
  /** What is actually sent (the outcome's response, or our 500 in its place). */
  res: WebResponse;
  keepAlive: boolean;
  bytesSent: number;
  bodyBytesSent: number;
  stream: Readable | undefined;
  fd: number;
  closeFd: boolean;
  /** A read of `fd` is in flight: its close waits for it. */
  reading: boolean;
}

export class Connection implements BodySource {
  readonly engine: BrigadeHttp1Engine;
  readonly socket: Socket;
  readonly base: ConnectionBase;
  private readonly parser: H1Parser;
  private readonly scheme: "http" | "https";

  /** When the current timer expires (performance.now() ms), 0 for none; checked by the sweep. */
  deadline = 0;
  private timerKind = T_NONE;
  /** Since when the connection is idle between requests (for draining). */
  idleSince: number;

  private served = 0;
  private req: H1Request | undefined = undefined;
  private sending: Sending | undefined = undefined;
  private bodyDone = true;
  private bodyBytes = 0;
  private sink: BodySink | undefined = undefined;
  private sinkPaused = false;
  private continueSent = false;
  private mustClose = false;
  private peerEnded = false;
  private lingering = false;
  private dead = false;
  private driving = false;
  private again = false;
  /** The clock reading of the `drive(now)` that asked for another step while driving. */
  private againNow: number | undefined = undefined;
  private readPaused = false;
  private drainWaiter: (() => void) | undefined = undefined;
  /** The socket is corked until the next tick (pipelined responses coalesced). */
  private corked = false;
  /** For `bodyMinRate`: the last sweep's time, and the time spent waiting on the client's body. */
  private rateLast = 0;
  private waited = 0;
  /** writableLength when the send timer was armed: output that moved is not a stall. */
  private sendMark = -1;
  /** Why we closed the connection ourselves, for the Completion of a response cut short. */
  private closeReason: string | undefined = undefined;

  constructor(engine: BrigadeHttp1Engine, socket: Socket, listener: string) {
    this.engine = engine;
    this.socket = socket;
    this.base = connectionBase(socket, listener);
    this.scheme = this.base.tls ? "https" : "http";
    this.parser = new H1Parser("request", engine.limits);
    this.idleSince = monoNow();
    socket.setNoDelay(true);
    // Listeners shared by every connection (no closures per connection: idle memory).
    (socket as Tagged)[kConnection] = this;
    if (this.base.tls !== undefined || !readInto(socket)) socket.on("data", onSocketData);
    socket.on("end", onSocketEnd);
    socket.on("error", onSocketError);
    socket.on("close", onSocketClose);
    socket.on("drain", onSocketDrain);
    this.setTimer(T_HEADER, engine.opts.headerTimeout);
  }

  // ---- timers ----

  /** `now`: a monotonic reading just taken (one clock read per response, core/clock.ts). */
  private setTimer(kind: number, ms: number, now = monoNow()): void {
    this.timerKind = kind;
    this.deadline = ms > 0 ? now + ms : 0;
  }

  private clearTimer(): void {
    this.timerKind = T_NONE;
    this.deadline = 0;
  }

  /** The sweep found `deadline` passed. */
  expire(now: number): void {
    const kind = this.timerKind;
    switch (kind) {
      case T_HEADER:
        this.clearTimer();
        // A partial head gets its 408; a connection that never sent a byte (a browser's
        // speculative connection) is just closed, as nginx does.
        if (this.parser.inHead) this.fail(408, "client header timeout");
        else this.destroy("client header timeout");
        break;
      case T_BODY: {
        this.clearTimer();
        this.mustClose = true;
        const sink = this.sink;
        this.sink = undefined;
        if (sink) sink.error(new HttpError(408, "client body timeout", { close: true }));
        else this.destroy("client body timeout");
        break;
      }
      case T_SEND: {
        const pending = this.socket.writableLength;
        if (pending !== this.sendMark && pending > 0) {
          // Output moved since: the client reads, slowly. Look again a timeout later.
          this.sendMark = pending;
          this.deadline = now + this.engine.opts.sendTimeout;
          break;
        }
        this.clearTimer();
        this.engine.sendTimedOut(this);
        this.destroy("send timeout");
        break;
      }
      default:
        // keep-alive idle, linger: just close
        this.clearTimer();
        this.destroy();
    }
  }

  /**
   * The minimum body rate (Apache's mod_reqtimeout MinRate), called by the sweep: while the body
   * is awaited from the client (not while the reader is behind), the time waited may not pass
   * the grace plus one second per `minRate` bytes received; past it, the read fails with 408.
   */
  checkBodyRate(now: number, minRate: number, graceMs: number): void {
    if (this.sink === undefined || this.bodyDone) return;
    if (this.rateLast !== 0 && this.timerKind === T_BODY) this.waited += now - this.rateLast;
    this.rateLast = now;
    if (this.waited > graceMs + (this.bodyBytes / minRate) * 1000) {
      this.engine.opts.logger.info("request body too slow; closing", {
        client: this.base.remoteAddress,
        received: this.bodyBytes,
      });
      this.failBody(new HttpError(408, "client body too slow", { close: true }));
    }
  }

  private armSend(): void {
    if (this.timerKind !== T_SEND) {
      this.sendMark = this.socket.writableLength;
      this.setTimer(T_SEND, this.engine.opts.sendTimeout);
    }
  }

  // ---- input ----

  onData(chunk: Buffer): void {
    if (this.lingering || this.dead) return;
    this.parser.feed(chunk);
    if (this.req === undefined) {
      this.drive();
    } else if (this.sink !== undefined) {
      if (this.timerKind === T_BODY) this.setTimer(T_BODY, this.engine.opts.bodyTimeout);
      if (!this.sinkPaused) this.pump();
    } else if (this.parser.buffered > HIGH_WATER) {
      this.pauseReading();
    }
  }

  /** After a read into the shared buffer (`view`, what was read): keep nothing that points into it. */
  ownInput(view: Buffer): void {
    this.parser.own(view);
  }

  private pauseReading(): void {
    if (!this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    }
  }

  private resumeReading(): void {
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  onEnd(): void {
    this.peerEnded = true;
    if (this.lingering) {
      this.destroy();
      return;
    }
    const req = this.req;
    if (req === undefined) {
      // Between requests the connection is done once what we still write has gone; a complete
      // request already buffered is still answered (drive), a partial head is dropped.
      if (this.parser.buffered === 0) this.endSocket();
      else this.drive();
      return;
    }
    if (this.sink !== undefined && !this.bodyDone) {
      const sink = this.sink;
      this.sink = undefined;
      this.mustClose = true;
      sink.error(new HttpError(400, "client closed the request body", { close: true }));
    }
    // Like nginx (499): a client that closes its side while its request is being handled has
    // gone; whoever works for it (an upstream request) may stop. A response still goes out.
    if (this.sending === undefined) req.abort(new Error("client closed the connection"));
  }

  onClose(): void {
    if (this.dead) return;
    this.dead = true;
    this.clearTimer();
    this.engine.forget(this);
    const req = this.req;
    if (req) req.abort(new Error("client closed the connection"));
    const sink = this.sink;
    this.sink = undefined;
    if (sink) sink.error(new Error("client closed the connection"));
    const s = this.sending;
    if (s) {
      s.stream?.destroy();
      this.complete(s, this.closeReason ?? "client closed");
    }
  }

  /**
   * Serve what the parser has, request after request, while responses complete synchronously.
   * `now`: a monotonic reading just taken, if the caller has one (for the keep-alive deadline).
   */
  private drive(now?: number): void {
    if (this.driving) {
      this.again = true;
      this.againNow = now;
      return;
    }
    this.driving = true;
    try {
      do {
        this.again = false;
        this.step(now);
        now = this.againNow;
        this.againNow = undefined;
      } while (this.again && this.req === undefined && !this.dead && !this.lingering);
    } finally {
      this.driving = false;
    }
  }

  private step(now: number | undefined): void {
    if (this.req !== undefined || this.dead || this.lingering) return;
    let ev: number;
    try {
      ev = this.parser.next();
    } catch (err) {
      this.parseFailed(err);
      return;
    }
    if (ev === NEED_MORE) {
      if (this.parser.inHead) {
        if (this.timerKind !== T_HEADER) this.setTimer(T_HEADER, this.engine.opts.headerTimeout);
        if (this.peerEnded) this.destroy();
      } else if (this.peerEnded) {
        this.endSocket();
      } else if (this.timerKind !== T_KEEPALIVE && this.timerKind !== T_HEADER) {
        this.setTimer(T_KEEPALIVE, this.engine.opts.keepaliveTimeout, now);
      }
      this.resumeReading();
      return;
    }
    // A head (END only follows a head, and we consume it ourselves).
    this.startRequest(this.parser.head);
  }

  private parseFailed(err: unknown): void {
    if (err instanceof ParseError) {
      this.fail(err.status, err.code);
    } else {
      this.engine.opts.logger.error("HTTP/1 parser failed", { error: err });
      this.destroy();
    }
  }

  private startRequest(head: Head): void {
    this.clearTimer();
    this.continueSent = false;
    this.bodyBytes = 0;
    this.rateLast = 0;
    this.waited = 0;
    const req = new H1Request(
      head,
      this.base,
      this.served++,
      this.scheme,
      this.engine.opts.mergeSlashes,
      this,
    );
    this.req = req;
    this.bodyDone = head.framing === "none";
    if (this.bodyDone) this.parser.next(); // the END of a body-less message
    if (req.canTakeover) this.parser.stop();
    if (head.expectUnknown) {
      req.invalid ??= new HttpError(417, "an expectation other than 100-continue", { close: true });
    }
    let pending: Outcome | Promise<Outcome>;
    try {
      pending = this.engine.handler.handle(req);
    } catch (error) {
      this.handlerFailed(req, error);
      return;
    }
    // An outcome known at once (a cached file, a `return`) is written now, in this read's turn.
    if (!(pending instanceof Promise)) {
      this.respond(req, pending);
      return;
    }
    pending.then(
      (outcome) => this.respond(req, outcome),
      (error: unknown) => this.handlerFailed(req, error),
    );
  }

  /** The handler never rejects; should it, the request is answered 500 and not logged. */
  private handlerFailed(req: H1Request, error: unknown): void {
    this.engine.opts.logger.error("request handler failed", { error });
    this.mustClose = true;
    this.respond(req, { response: this.errorPage(500), close: true, complete: () => {} });
  }

  private errorPage(status: number): WebResponse {
    const page = defaultPage(status, this.engine.opts.serverHeader ?? "");
    return {
      status,
      fields: new Fields(["content-type", "text/html"]),
      body: page === "" ? { kind: "empty" } : { kind: "bytes", data: page },
    };
  }

  // ---- request bodies (BodySource) ----

  readBody(sink: BodySink): void {
    if (this.dead) {
      sink.error(new Error("client closed the connection"));
      return;
    }
    if (this.bodyDone) {
      sink.end();
      return;
    }
    this.sink = sink;
    this.sinkPaused = false;
    const req = this.req;
    if (req?.head.expectContinue && !this.continueSent && this.sending === undefined) {
      this.continueSent = true;
      this.socket.write(CONTINUE);
    }
    this.pump();
  }

  resumeBody(): void {
    if (!this.sinkPaused) return;
    this.sinkPaused = false;
    this.pump();
  }

  private failBody(err: Error): void {
    const sink = this.sink;
    this.sink = undefined;
    this.mustClose = true;
    if (this.timerKind === T_BODY) this.clearTimer();
    sink?.error(err);
  }

  /** Read and drop what has arrived of an unread body, without waiting for more. */
  private discardBuffered(): "done" | "more" | "error" {
    const parser = this.parser;
    for (;;) {
      let ev: number;
      try {
        ev = parser.next();
      } catch (err) {
        if (err instanceof ParseError) this.engine.rejectedBody(this, err);
        return "error";
      }
      if (ev === BODY) this.bodyBytes += parser.chunk.length;
      else if (ev === END) {
        this.bodyDone = true;
        return "done";
      } else return "more";
    }
  }

  private pump(): void {
    const parser = this.parser;
    while (this.sink !== undefined && !this.sinkPaused) {
      let ev: number;
      try {
        ev = parser.next();
      } catch (err) {
        if (err instanceof ParseError) {
          this.engine.rejectedBody(this, err);
          this.failBody(new HttpError(err.status, err.message, { close: true }));
        } else {
          this.failBody(err as Error);
        }
        return;
      }
      if (ev === BODY) {
        // A view of the shared read buffer is the sink's to keep (a write queued to an upstream):
        // a copy of it.
        const chunk = detached(parser.chunk);
        this.bodyBytes += chunk.length;
        const limit = this.req?.bodyLimit ?? 0;
        if (limit > 0 && this.bodyBytes > limit) {
          this.failBody(new HttpError(413, "request body larger than the limit", { close: true }));
          return;
        }
        if (!this.sink.chunk(chunk)) {
          // The reader is behind now, not the client: no body timeout until we wait on it again.
          this.sinkPaused = true;
          if (this.timerKind === T_BODY) this.clearTimer();
        }
      } else if (ev === END) {
        this.bodyDone = true;
        if (this.timerKind === T_BODY) this.clearTimer();
        const sink = this.sink;
        this.sink = undefined;
        sink.end();
        return;
      } else if (ev === NEED_MORE) {
        if (this.timerKind !== T_BODY) this.setTimer(T_BODY, this.engine.opts.bodyTimeout);
        this.resumeReading();
        return;
      }
    }
    if (this.sinkPaused && parser.buffered > HIGH_WATER) this.pauseReading();
  }

  // ---- responses ----

  private keepAliveFor(req: H1Request): boolean {
    const e = this.engine;
    return (
      req.head.keepAlive &&
      !this.mustClose &&
      !e.draining &&
      !this.peerEnded &&
      e.opts.keepaliveTimeout > 0 &&
      this.served < e.opts.keepaliveRequests
    );
  }

  /**
   * Write the outcome's response to `req`. `replacement`: our 500 standing in for a response that
   * could not be written; if that fails too, the connection goes.
   */
  private respond(req: H1Request, outcome: Outcome, replacement?: WebResponse): void {
    if (this.req !== req || this.sending !== undefined) return;
    let res = replacement ?? outcome.response;
    if (outcome.close) this.mustClose = true;
    if (!this.bodyDone && this.sink === undefined && req.bodyUnread && !this.dead) {
      // A body nobody read: drop what of it has arrived now, as nginx discards a body before it
      // answers. If that shows the body malformed, the request was a bad one: 400, closed.
      req.bodyDiscarded();
      if (this.discardBuffered() === "error") {
        releaseBody(res.body);
        this.mustClose = true;
        res = this.errorPage(400);
      }
    }
    const body: Body = res.body;
    if (this.dead) {
      releaseBody(body);
      // nginx logs 499 for a client gone before its response.
      outcome.complete(this.completion(req, 499, 0, 0, "client closed"));
      this.req = undefined;
      return;
    }
    const status = res.status;
    if (status === 444) {
      releaseBody(body);
      outcome.complete(this.completion(req, 444, 0, 0, undefined));
      this.req = undefined;
      this.destroy();
      return;
    }
    if (
      body.kind === "takeover" &&
      !(
        req.canTakeover &&
        (status === 101 || (req.method === "CONNECT" && status >= 200 && status < 300))
      )
    ) {
      this.replace(req, outcome, res, `a takeover body with status ${status} for ${req.method}`);
      return;
    }
    const noBody = req.method === "HEAD" || status < 200 || status === 204 || status === 304;
    let keepAlive = this.keepAliveFor(req);
    // An upgrade or CONNECT not taken over is not resumed as HTTP: the parser stopped there.
    if (req.canTakeover && body.kind !== "takeover") keepAlive = false;
    // A body the client holds back until 100 Continue: invite it (to be dropped) only if the
    // connection is to carry more requests (nginx sends 100 when it discards a body); else close.
    // (as nginx and node:http do even when the body came with the head; harmless then).
    let sendContinue = false;
    if (req.head.expectContinue && !this.continueSent && req.head.framing !== "none") {
      if (keepAlive && body.kind !== "takeover") sendContinue = true;
      else if (!this.bodyDone) keepAlive = false;
    }

    let length = -1; // -1: chunked or close-delimited
    let data: Uint8Array | string | undefined;
    switch (body.kind) {
      case "empty":
        length = 0;
        break;
      case "bytes":
        data = body.data;
        length = typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
        break;
      case "file":
        length = body.end - body.start;
        break;
      case "stream":
        length = body.length ?? -1;
        break;
      default:
        break;
    }
    const streamed = body.kind === "stream" && length === -1 && !noBody;
    const chunked = streamed && req.httpVersion === "1.1";
    if (streamed && !chunked) keepAlive = false;

    // The clock read of this response: its `date`, and (written now) its duration and the
    // keep-alive deadline after it.
    const now = monoNow();
    let head: string;
    /** The head's bytes, when it is the thread's last head again (LastHead): written as they are. */
    let headBytes: Buffer | undefined;
    try {
      const line = statusLine(status, res.reason);
      const list = res.fields.list;
      // The lines the engine owns: framing and connection, from the body and the connection.
      let framing = "";
      // a HEAD's or a 304's representation length, as the module stated it
      const stated = noBody && body.kind === "empty" ? moduleLengthOf(list) : undefined;
      if (body.kind === "takeover") {
        // No length: the connection becomes the tunnel. A 101 names what it switches to.
        if (status === 101) framing = "connection: upgrade\r\n";
      } else if (status < 200 || status === 204) {
        // no Content-Length at all (RFC 9110 §8.6)
      } else if (stated !== undefined) {
        framing = `content-length: ${stated}\r\n`;
      } else if (status === 304) {
        // nothing: a 304 states no length of its own
      } else if (length >= 0) {
        framing = contentLengthLine(length);
      } else if (chunked) {
        framing = "transfer-encoding: chunked\r\n";
      }
      if (body.kind !== "takeover") {
        if (!keepAlive) framing += "connection: close\r\n";
        else if (req.httpVersion === "1.0") framing += "connection: keep-alive\r\n";
      }
      const date = currentDateLine(wallAt(now));
      const server = this.engine.serverLine;
      const known = lastHead.find(line, list, date, server, framing);
      if (known !== undefined) {
        head = known;
        headBytes = lastHead.bytes();
      } else {
        head = line;
        let hasDate = false;
        let hasServer = false;
        for (let i = 0; i < list.length; i += 2) {
          const name = list[i]!;
          const value = list[i + 1]!;
          if (isFramingField(name)) continue;
          if (name === "date") hasDate = true;
          else if (name === "server") {
            hasServer = true;
            // An empty Server says "none" (the headers module's removeHeaders: ["Server"]).
            if (value === "") continue;
          }
          checkField(name, value);
          head += `${name}: ${value}\r\n`;
        }
        if (!hasDate) head += date;
        if (!hasServer) head += server;
        head += framing;
        head += "\r\n";
        lastHead.store(line, list, date, server, framing, head);
      }
    } catch (err) {
      // A module put something unwritable in the head (a CR/LF from a variable): never send it.
      this.replace(req, outcome, res, (err as Error).message);
      return;
    }

    const s: Sending = {
      req,
      outcome,
      res,
      keepAlive,
      bytesSent: head.length,
      bodyBytesSent: 0,
      stream: undefined,
      fd: -1,
      closeFd: false,
      reading: false,
    };
    this.sending = s;
    this.clearTimer();
    const socket = this.socket;
    if (this.parser.buffered > 0 && !this.corked) {
      // Pipelined requests wait in the parser: hold this response in the socket until the next
      // tick, so that theirs (answered meanwhile, in the same round of microtasks) go out with
      // it in one writev.
      this.corked = true;
      socket.cork();
      process.nextTick(uncorkLater, this);
    }
    if (sendContinue) {
      this.continueSent = true;
      socket.write(CONTINUE);
    }

    if (body.kind === "takeover") {
      socket.write(head, "latin1");
      this.handOver(s, body.onSocket);
      return;
    }
    if (noBody || body.kind === "empty") {
      releaseBody(body);
      if (headBytes !== undefined) {
        if (!socket.write(headBytes)) this.armSend();
      } else this.write(head);
      this.finish(s, now);
      return;
    }
    if (body.kind === "bytes") {
      const d = data!;
      s.bodyBytesSent = length;
      s.bytesSent += length;
      const ascii = typeof d === "string" && length === d.length;
      if (ascii && headBytes === undefined) {
        // ASCII: the head and the body in one write
        this.write(head + (d as string));
      } else if (ascii && length <= SMALL_BODY) {
        // The thread's last head again with a short text (a `return`, an error page): the
        // whole response's bytes, made once for that text.
        if (!socket.write(lastHead.whole(d as string))) this.armSend();
      } else if (typeof d !== "string" && length <= SMALL_BODY && headBytes && body.shared) {
        // The thread's last head again with bytes that never change (a hot file from the
        // open-file cache): the whole response's bytes, made once for them.
        if (!socket.write(lastHead.whole(d))) this.armSend();
      } else if (typeof d !== "string" && length <= SMALL_BODY) {
        // A small body (a proxied response, a file held in memory): copied after the head, one
        // buffer in one write, cheaper than a corked writev.
        const at = head.length;
        const buf = Buffer.allocUnsafe(at + length);
        if (headBytes !== undefined) buf.set(headBytes);
        else (buf as unknown as Latin1Writer).latin1Write(head, 0);
        buf.set(d, at);
        if (!socket.write(buf)) this.armSend();
      } else {
        socket.cork();
        if (headBytes !== undefined) socket.write(headBytes);
        else socket.write(head, "latin1");
        socket.write(d);
        socket.uncork();
        if (backlogged(socket)) this.armSend();
      }
      this.finish(s, now);
      return;
    }
    if (body.kind === "file") {
      s.fd = body.fd;
      s.closeFd = !body.keepOpen;
      this.sendFile(s, head, body.start, body.end);
      return;
    }
    if (body.kind === "stream") {
      this.write(head);
      this.sendStream(s, body.stream, length, chunked);
    }
  }

  /** The end of a tick of pipelined responses: let them out (one writev). */
  uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
    if (backlogged(this.socket)) this.armSend();
  }

  /** Answer 500 in place of a response that cannot be written (and close after it). */
  private replace(req: H1Request, outcome: Outcome, res: WebResponse, why: string): void {
    this.engine.opts.logger.error("invalid response", { error: why, path: req.path });
    releaseBody(res.body);
    if (res !== outcome.response) {
      // our own 500 failed: give up on the connection
      outcome.complete(this.completion(req, 500, 0, 0, why));
      this.req = undefined;
      this.destroy(why);
      return;
    }
    this.mustClose = true;
    this.respond(req, outcome, this.errorPage(500));
  }

  private write(text: string): void {
    if (!this.socket.write(text, "latin1")) this.armSend();
  }

  /**
   * A file range, read 256 KiB at a time (32 KiB when many connections send files at once) into
   * a buffer of the worker's pool (bufferPool.ts) and written; the next chunk is read only once
   * the socket has taken the whole previous one (the write's callback), which then goes back to
   * the pool. So a connection holds one chunk at a time however large the file and however slow
   * the client, and a steady load allocates nothing. The head goes in the same writev as the
   * first piece (a file up to 256 KiB is one read and one writev). Positional reads
   * (bench/fileSend.ts: about 40% less CPU per MiB than fs.createReadStream). A read that comes
   * back short (the file was truncated) cuts the connection: the length is in the head already,
   * so no wrong bytes are ever sent as the body.
   */
  private sendFile(s: Sending, head: string, start: number, end: number): void {
    const fd = s.fd;
    if (end <= start) {
      // An empty range: the head alone (the descriptor is closed by complete()).
      this.write(head);
      this.finish(s);
      return;
    }
    let pos = start;
    let pendingHead: string | undefined = head;
    const socket = this.socket;
    const step = (): void => {
      if (this.sending !== s || socket.destroyed) return;
      if (pos >= end) {
        this.finish(s);
        return;
      }
      const buf = fileBuffers.acquire();
      const want = Math.min(buf.length, end - pos);
      s.reading = true;
      readFd(fd, buf, 0, want, pos, (err, n) => {
        s.reading = false;
        if (this.sending !== s || socket.destroyed) {
          // Finished meanwhile (the client went): the descriptor's close waited for this read.
          fileBuffers.release(buf);
          this.releaseFd(s);
          return;
        }
        if (err || n === 0) {
          fileBuffers.release(buf);
          this.abortSend(
            s,
            err ? `file read failed: ${err.message}` : "file shorter than its range",
          );
          return;
        }
        pos += n;
        s.bodyBytesSent += n;
        s.bytesSent += n;
        const chunk = n === buf.length ? buf : buf.subarray(0, n);
        // Called once the socket has taken the whole chunk (or failed): the buffer is free.
        const written = (error?: Error | null): void => {
          fileBuffers.release(buf);
          if (!error) step();
        };
        let ok: boolean;
        if (pendingHead !== undefined) {
          socket.cork();
          socket.write(pendingHead, "latin1");
          ok = socket.write(chunk, written);
          socket.uncork();
          pendingHead = undefined;
        } else {
          ok = socket.write(chunk, written);
        }
        if (!ok) this.armSend();
      });
    };
    step();
  }

  private sendStream(s: Sending, stream: Readable, length: number, chunked: boolean): void {
    s.stream = stream;
    const socket = this.socket;
    let sent = 0;
    const cleanup = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
    };
    const onData = (chunk: Buffer | string) => {
      if (this.sending !== s) return;
      const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      if (buf.length === 0) return;
      sent += buf.length;
      if (length >= 0 && sent > length) {
        cleanup();
        this.abortSend(s, "the response stream is longer than its declared length");
        return;
      }
      let ok: boolean;
      if (chunked) {
        const size = `${buf.length.toString(16)}\r\n`;
        socket.cork();
        socket.write(size, "latin1");
        socket.write(buf);
        ok = socket.write(CRLF);
        socket.uncork();
        s.bytesSent += size.length + buf.length + 2;
      } else {
        ok = socket.write(buf);
        s.bytesSent += buf.length;
      }
      s.bodyBytesSent += buf.length;
      if (!ok) {
        stream.pause();
        this.waitDrain(() => stream.resume());
      }
    };
    const onEnd = () => {
      cleanup();
      if (this.sending !== s) return;
      if (length >= 0 && sent !== length) {
        this.abortSend(s, "the response stream is shorter than its declared length");
        return;
      }
      if (chunked) {
        socket.write(CHUNK_END);
        s.bytesSent += CHUNK_END.length;
      }
      this.finish(s);
    };
    const onError = (err: Error) => {
      cleanup();
      if (this.sending !== s) return;
      this.abortSend(s, `the response stream failed: ${err.message}`);
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", onError);
  }

  private waitDrain(fn: () => void): void {
    this.drainWaiter = fn;
    this.armSend();
  }

  onDrain(): void {
    if (this.timerKind === T_SEND) this.clearTimer();
    const fn = this.drainWaiter;
    this.drainWaiter = undefined;
    if (fn) fn();
  }

  /** The response failed half-way: the client cannot be told, so the connection is cut. */
  private abortSend(s: Sending, why: string): void {
    this.engine.opts.logger.error("response failed", { error: why, path: s.req.path });
    this.complete(s, why);
    this.destroy(why);
  }

  private handOver(
    s: Sending,
    onSocket: (socket: Socket, head: Buffer) => void | Promise<void>,
  ): void {
    const socket = this.socket;
    this.uncork();
    const rest = Buffer.from(this.parser.rest());
    // Paused first: a flowing socket keeps flowing when its 'data' listeners go.
    socket.pause();
    // What the tunnel carries is counted from here on (the head is in bytesWritten already).
    const written = socket.bytesWritten;
    const read = socket.bytesRead - rest.length;
    // From now on the socket is the callback's: forget it entirely.
    this.dead = true;
    this.clearTimer();
    this.engine.forget(this);
    socket.off("data", onSocketData);
    socket.off("end", onSocketEnd);
    socket.off("error", onSocketError);
    socket.off("close", onSocketClose);
    socket.off("drain", onSocketDrain);
    (socket as Tagged)[kConnection] = undefined;
    let ended: Promise<void> | undefined;
    try {
      const r = onSocket(socket, rest);
      if (r instanceof Promise) ended = r;
    } catch (error) {
      this.engine.opts.logger.error("takeover failed", { error, path: s.req.path });
      socket.destroy();
    }
    if (ended === undefined) {
      this.complete(s, undefined);
      return;
    }
    // A promise: the exchange completes (is logged) when the tunnel ends, with what it carried.
    const done = (error: string | undefined): void => {
      const sent = Math.max(0, socket.bytesWritten - written);
      s.bytesSent += sent;
      s.bodyBytesSent = sent;
      this.bodyBytes = Math.max(0, socket.bytesRead - read);
      this.complete(s, error);
    };
    ended.then(
      () => done(undefined),
      (error: unknown) => done(String((error as Error)?.message ?? error)),
    );
  }

  private completion(
    req: H1Request,
    status: number,
    bytesSent: number,
    bodyBytesSent: number,
    error: string | undefined,
    now = monoNow(),
  ): Completion {
    return {
      status,
      bytesSent,
      bodyBytesSent,
      bodyBytesReceived: this.bodyBytes,
      durationMs: now - req.hrStart,
      error,
    };
  }

  private complete(s: Sending, error: string | undefined, now = monoNow()): void {
    if (this.sending !== s) return;
    this.sending = undefined;
    this.releaseFd(s);
    const status = error === "client closed" && s.bytesSent === 0 ? 499 : s.res.status;
    s.outcome.complete(this.completion(s.req, status, s.bytesSent, s.bodyBytesSent, error, now));
  }

  /** Close the response's descriptor (ours to close), unless a read of it is still in flight. */
  private releaseFd(s: Sending): void {
    if (s.fd >= 0 && s.closeFd && !s.reading) {
      closeFd(s.fd, () => {});
      s.fd = -1;
    }
  }

  /**
   * The response is written (queued to the socket): log it, then go on with the connection.
   * `now`: the monotonic reading `respond` took, when the response was written in the same
   * synchronous run (a `bytes` or empty body): no second clock read for it.
   */
  private finish(s: Sending, now = monoNow()): void {
    if (backlogged(this.socket)) {
      // Backpressure: the client is not reading; wait (send timeout) before parsing more.
      this.waitDrain(() => this.finish(s));
      return;
    }
    this.complete(s, undefined, now);
    this.req = undefined;
    this.idleSince = now;
    if (this.dead) return;
    if (!s.keepAlive) {
      if (this.canCloseAtOnce()) this.destroy();
      else this.endSocket();
      return;
    }
    if (!this.bodyDone) {
      // Read and drop the unread body, then the next request.
      this.req = s.req;
      this.continueSent = true;
      this.readBody({
        chunk: () => true,
        end: () => {
          this.req = undefined;
          this.drive();
        },
        error: () => this.endSocket(),
      });
      return;
    }
    this.drive(now);
  }

  // ---- closing ----

  /** Answer with an error of ours (a malformed head, a header timeout), then close. */
  private fail(status: number, reason: string): void {
    if (this.dead || this.lingering) return;
    this.mustClose = true;
    this.engine.handler.rejected(connectionView(this.base, this.served), status, reason);
    const page = defaultPage(status, this.engine.opts.serverHeader ?? "");
    let head = statusLine(status, undefined);
    head += currentDateLine();
    head += this.engine.serverLine;
    head += `content-type: text/html\r\ncontent-length: ${page.length}\r\nconnection: close\r\n\r\n`;
    this.socket.write(head + page, "latin1");
    this.endSocket();
  }

  /**
   * Whether a connection that carries no more requests (keep-alive limit, `Connection: close`,
   * HTTP/1.0, draining) can be closed outright, its FIN right behind the last response, as nginx
   * closes when it has no reason to linger: a clean close (no error, the body fully read), no
   * byte of a next request received, the whole response handed to the kernel (close() then
   * still sends it), plain TCP (TLS owes its close_notify). Else we half-close and linger.
   * Closing at once costs less per connection than the half-close and linger (about 20% less
   * CPU per request with one request per connection, bench/results/engine-2026-12-01-b.md), and
   * the TIME_WAIT stays on the server's side, as with nginx, instead of the reconnecting client's.
   */
  private canCloseAtOnce(): boolean {
    return (
      !this.mustClose &&
      this.bodyDone &&
      !this.base.tls &&
      this.parser.buffered === 0 &&
      this.socket.writableLength === 0
    );
  }

  /** Close our side once the output is flushed; read and drop input for the linger time. */
  endSocket(): void {
    if (this.dead || this.lingering) return;
    this.lingering = true;
    this.resumeReading();
    this.socket.end();
    this.setTimer(T_LINGER, this.engine.lingerMs);
  }

  destroy(why?: string): void {
    if (why !== undefined) this.closeReason ??= why;
    if (!this.socket.destroyed) this.socket.destroy();
  }

  /** Idle between requests: nothing in flight, no head begun. */
  get idle(): boolean {
    return (
      this.req === undefined && this.sending === undefined && !this.parser.inHead && !this.lingering
    );
  }
}
