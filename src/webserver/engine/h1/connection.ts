/**
 * One HTTP/1.x client connection: parse, hand each request to the pipeline, write its response,
 * repeat (keep-alive, pipelining), with every timeout and limit of the engine.
 *
 * Requests on a connection are served strictly one after another: the next head is not parsed
 * until the current response is written (pipelined bytes wait in the parser, and the socket is
 * paused when they pile up), so responses can never come out of order and a slow response
 * applies backpressure to the client. Framing is ours alone: whatever the response's fields say,
 * `Content-Length` / chunked / close are written from the body (see WebResponse).
 *
 * Timeouts (nginx's meaning, checked by the engine's sweep against a deadline per connection):
 * header (the whole head, from its first byte or from the accept), body (between two reads of a
 * body being read), keep-alive (idle between requests), send (between two writes that make
 * progress), linger (after we close our side, how long we read and drop what the client still
 * sends, so that it sees our error response rather than a reset).
 */
import { close as closeFd, read as readFd } from "node:fs";
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";
import {
  BODY,
  END,
  H1Parser,
  type Head,
  NEED_MORE,
  ParseError,
} from "../../../core/http1/parser.ts";
import {
  type Body,
  HttpError,
  type WebConnection,
  type WebResponse,
  type WebTls,
} from "../../exchange.ts";
import type { Completion } from "../../module.ts";
import type { H1Engine } from "./engine.ts";
import { checkValue, currentDateLine, isFramingField, statusLine, wireName } from "./head.ts";
import { type BodySink, type BodySource, H1Request } from "./request.ts";

export const T_NONE = 0;
export const T_HEADER = 1;
export const T_BODY = 2;
export const T_KEEPALIVE = 3;
export const T_SEND = 4;
export const T_LINGER = 5;

/** Pause reading when this much unparsed input waits (pipelined requests, an unread body). */
const HIGH_WATER = 64 * 1024;
/** A file range up to this size is read whole and written with the head in one writev. */
const SMALL_FILE = 64 * 1024;
const FILE_CHUNK = 64 * 1024;

const CONTINUE = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1");
const CHUNK_END = Buffer.from("0\r\n\r\n", "latin1");
const CRLF = Buffer.from("\r\n", "latin1");

class ConnectionInfo implements WebConnection {
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly listener: string;
  readonly tls: WebTls | undefined;
  requests = 0;
  constructor(id: number, socket: Socket, listener: string) {
    this.id = id;
    this.remoteAddress = socket.remoteAddress ?? "";
    this.remotePort = socket.remotePort ?? 0;
    this.localAddress = socket.localAddress ?? "";
    this.localPort = socket.localPort ?? 0;
    this.listener = listener;
    const t = socket as TLSSocket;
    if (t.encrypted) {
      this.tls = {
        servername: typeof t.servername === "string" ? t.servername : undefined,
        protocol: t.getProtocol?.() ?? undefined,
        cipher: t.getCipher?.()?.name,
        alpn: typeof t.alpnProtocol === "string" ? t.alpnProtocol : undefined,
      };
    } else {
      this.tls = undefined;
    }
  }
}

/** Accounting of the response being written, for the Completion. */
interface Sending {
  req: H1Request;
  res: WebResponse;
  keepAlive: boolean;
  bytesSent: number;
  bodyBytesSent: number;
  stream: Readable | undefined;
  fd: number;
  closeFd: boolean;
}

export class Connection implements BodySource {
  readonly engine: H1Engine;
  readonly socket: Socket;
  readonly info: ConnectionInfo;
  private readonly parser: H1Parser;
  private readonly scheme: "http" | "https";

  /** When the current timer expires (ms since epoch), 0 for none; checked by the engine. */
  deadline = 0;
  timerKind = T_NONE;

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
  private readPaused = false;
  /** Why we closed the connection ourselves, for the Completion of a response cut short. */
  private closeReason: string | undefined = undefined;

  constructor(engine: H1Engine, socket: Socket, id: number, listener: string) {
    this.engine = engine;
    this.socket = socket;
    this.info = new ConnectionInfo(id, socket, listener);
    this.scheme = this.info.tls ? "https" : "http";
    this.parser = new H1Parser("request", engine.limits);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => this.onEnd());
    socket.on("error", () => this.socket.destroy());
    socket.on("close", () => this.onClose());
    socket.on("drain", () => this.onDrain());
    this.setTimer(T_HEADER, engine.timeouts.header);
  }

  // ---- timers ----

  private setTimer(kind: number, ms: number): void {
    this.timerKind = kind;
    this.deadline = ms > 0 ? Date.now() + ms : 0;
  }

  private clearTimer(): void {
    this.timerKind = T_NONE;
    this.deadline = 0;
  }

  /** Called by the engine's sweep when `deadline` has passed. */
  expire(): void {
    const kind = this.timerKind;
    this.clearTimer();
    switch (kind) {
      case T_HEADER:
        // A partial head gets its 408; a connection that never sent a byte (a browser's
        // speculative connection) is just closed, as nginx does.
        if (this.parser.inHead) this.fail(408, "client header timeout");
        else this.destroy("client header timeout");
        break;
      case T_BODY: {
        this.mustClose = true;
        const sink = this.sink;
        this.sink = undefined;
        if (sink) sink.error(new HttpError(408, "client body timeout", { close: true }));
        else this.destroy();
        break;
      }
      case T_SEND:
        this.destroy("send timeout");
        break;
      default:
        // keep-alive idle, linger: just close
        this.destroy();
    }
  }

  // ---- input ----

  private onData(chunk: Buffer): void {
    if (this.lingering || this.dead) return;
    this.parser.feed(chunk);
    if (this.req === undefined) {
      this.drive();
    } else if (this.sink !== undefined) {
      if (this.timerKind === T_BODY) this.setTimer(T_BODY, this.engine.timeouts.body);
      if (!this.sinkPaused) this.pump();
    } else if (this.parser.buffered > HIGH_WATER) {
      this.pauseReading();
    }
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

  private onEnd(): void {
    this.peerEnded = true;
    if (this.lingering) {
      this.destroy();
      return;
    }
    if (this.req === undefined) {
      // Between requests (or in a partial head: nothing to answer) the connection is done,
      // once what we still write has gone.
      if (!this.parser.inHead || this.parser.buffered === 0) this.endSocket();
      else this.drive();
      return;
    }
    if (this.sink !== undefined && !this.bodyDone) {
      const sink = this.sink;
      this.sink = undefined;
      this.mustClose = true;
      sink.error(
        new HttpError(400, "the client closed the connection during the body", { close: true }),
      );
    }
    // Like nginx (499): a client that closes its side while its request is being handled has
    // gone; whoever works for it (an upstream request) may stop. A response still goes out.
    if (this.sending === undefined) this.req.abort("client closed the connection");
  }

  private onClose(): void {
    if (this.dead) return;
    this.dead = true;
    this.clearTimer();
    this.engine.forget(this);
    const req = this.req;
    if (req) req.abort("client closed the connection");
    const sink = this.sink;
    this.sink = undefined;
    if (sink) sink.error(new Error("client closed the connection"));
    const s = this.sending;
    if (s) {
      s.stream?.destroy();
      this.complete(s, this.closeReason ?? "client closed the connection");
    }
  }

  /** Serve what the parser has, request after request, while responses complete synchronously. */
  private drive(): void {
    if (this.driving) {
      this.again = true;
      return;
    }
    this.driving = true;
    try {
      do {
        this.again = false;
        this.step();
      } while (this.again && this.req === undefined && !this.dead && !this.lingering);
    } finally {
      this.driving = false;
    }
  }

  private step(): void {
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
        if (this.timerKind !== T_HEADER) this.setTimer(T_HEADER, this.engine.timeouts.header);
        if (this.peerEnded) this.destroy();
      } else if (this.peerEnded || this.engine.closing) {
        this.endSocket();
      } else if (this.timerKind !== T_KEEPALIVE) {
        this.setTimer(T_KEEPALIVE, this.engine.timeouts.keepAlive);
      }
      this.resumeReading();
      return;
    }
    // A head (the parser yields END only after one, and we consume END ourselves).
    this.startRequest(this.parser.head);
  }

  private parseFailed(err: unknown): void {
    if (err instanceof ParseError) {
      this.engine.report("parse", err, this.info);
      this.fail(err.status, err.message);
    } else {
      this.engine.report("internal", err, this.info);
      this.destroy();
    }
  }

  private startRequest(head: Head): void {
    this.clearTimer();
    this.info.requests++;
    this.continueSent = false;
    this.bodyBytes = 0;
    let req: H1Request;
    try {
      req = new H1Request(head, this.info, this.scheme, this, this.engine.mergeSlashes);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(400);
      this.fail(e.status, e.message);
      return;
    }
    this.req = req;
    this.bodyDone = head.framing === "none";
    if (this.bodyDone) this.parser.next(); // the END of a body-less message
    if (head.method === "CONNECT" || head.upgrade !== "") this.parser.stop();
    if (head.expectUnknown) {
      this.mustClose = true;
      this.respond(req, this.engine.errorResponse(417, req));
      return;
    }
    let result: WebResponse | Promise<WebResponse>;
    try {
      result = this.engine.handler(req);
    } catch (err) {
      this.handlerFailed(req, err);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (res) => this.respond(req, res),
        (err: unknown) => this.handlerFailed(req, err),
      );
    } else {
      this.respond(req, result);
    }
  }

  private handlerFailed(req: H1Request, err: unknown): void {
    if (this.req !== req || this.sending) return;
    if (err instanceof HttpError) {
      if (err.close) this.mustClose = true;
      const res = this.engine.errorResponse(err.status, req);
      if (err.fields) for (const [n, v] of err.fields) res.fields.append(n, v);
      this.respond(req, res);
      return;
    }
    this.engine.report("handler", err, this.info);
    this.mustClose = true;
    this.respond(req, this.engine.errorResponse(500, req));
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

  private pump(): void {
    const parser = this.parser;
    while (this.sink !== undefined && !this.sinkPaused) {
      let ev: number;
      try {
        ev = parser.next();
      } catch (err) {
        const sink = this.sink;
        this.sink = undefined;
        this.mustClose = true;
        this.clearTimer();
        if (err instanceof ParseError) {
          this.engine.report("parse", err, this.info);
          sink.error(new HttpError(err.status, err.message, { close: true }));
        } else {
          sink.error(err as Error);
        }
        return;
      }
      if (ev === BODY) {
        this.bodyBytes += parser.chunk.length;
        if (!this.sink.chunk(parser.chunk)) this.sinkPaused = true;
      } else if (ev === END) {
        this.bodyDone = true;
        if (this.timerKind === T_BODY) this.clearTimer();
        const sink = this.sink;
        this.sink = undefined;
        sink.end();
        return;
      } else if (ev === NEED_MORE) {
        if (this.timerKind !== T_BODY) this.setTimer(T_BODY, this.engine.timeouts.body);
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
      !e.closing &&
      !this.peerEnded &&
      e.timeouts.keepAlive > 0 &&
      this.info.requests < e.keepaliveRequests
    );
  }

  /**
   * Write the response to `req` (the pipeline's answer, or an error of ours). `fallback`: this is
   * already the replacement of an unwritable response; if it fails too, the connection goes.
   */
  private respond(req: H1Request, res: WebResponse, fallback = false): void {
    if (this.req !== req || this.sending !== undefined) return;
    const body: Body = res.body;
    if (this.dead) {
      this.releaseBody(body);
      this.engine.complete(req, res, this.completion(0, 0, 0, "client closed the connection"));
      this.req = undefined;
      return;
    }
    const status = res.status;
    if (status === 444) {
      this.releaseBody(body);
      this.engine.complete(req, res, this.completion(444, 0, 0, undefined));
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
      this.replace(
        req,
        res,
        fallback,
        new Error(`a takeover body with status ${status} for ${req.method} ${req.target}`),
      );
      return;
    }
    const noBody = req.method === "HEAD" || status < 200 || status === 204 || status === 304;
    let keepAlive = this.keepAliveFor(req);
    // An upgrade or CONNECT not taken over is not resumed as HTTP: the parser stopped there.
    if (req.canTakeover && body.kind !== "takeover") keepAlive = false;
    // A body the client may not send (it waits for 100 Continue): where the next request starts is unknown.
    if (!this.bodyDone && req.head.expectContinue && !this.continueSent) keepAlive = false;

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
    const chunked = length === -1 && body.kind === "stream" && !noBody && req.httpVersion === "1.1";
    if (length === -1 && body.kind === "stream" && !noBody && !chunked) keepAlive = false;

    let head: string;
    try {
      head = statusLine(status, res.reason);
      const list = res.fields.list;
      let hasDate = false;
      let hasServer = false;
      let moduleLength: string | undefined;
      for (let i = 0; i < list.length; i += 2) {
        const name = list[i]!;
        const value = list[i + 1]!;
        if (isFramingField(name)) {
          if (name === "content-length") moduleLength = value;
          continue;
        }
        if (name === "date") hasDate = true;
        else if (name === "server") hasServer = true;
        checkValue(name, value);
        head += `${wireName(name)}: ${value}\r\n`;
      }
      if (!hasDate) head += currentDateLine();
      if (!hasServer && this.engine.serverLine !== "") head += this.engine.serverLine;
      if (body.kind === "takeover") {
        // No length: the connection becomes the tunnel. A 101 names what it switches to.
        if (status === 101) head += "Connection: upgrade\r\n";
      } else if (status < 200 || status === 204) {
        // no Content-Length at all (RFC 9110 §8.6)
      } else if (
        noBody &&
        body.kind === "empty" &&
        moduleLength !== undefined &&
        /^\d+$/.test(moduleLength)
      ) {
        head += `Content-Length: ${moduleLength}\r\n`; // a HEAD's or a 304's representation length
      } else if (status === 304) {
        // nothing: a 304 states no length of its own
      } else if (length >= 0) {
        head += `Content-Length: ${length}\r\n`;
      } else if (chunked) {
        head += "Transfer-Encoding: chunked\r\n";
      }
      if (body.kind !== "takeover") {
        if (!keepAlive) head += "Connection: close\r\n";
        else if (req.httpVersion === "1.0") head += "Connection: keep-alive\r\n";
      }
      head += "\r\n";
    } catch (err) {
      // A module put something unwritable in the head: never send it.
      this.replace(req, res, fallback, err);
      return;
    }

    const s: Sending = {
      req,
      res,
      keepAlive,
      bytesSent: head.length,
      bodyBytesSent: 0,
      stream: undefined,
      fd: -1,
      closeFd: false,
    };
    this.sending = s;
    this.clearTimer();
    const socket = this.socket;

    if (body.kind === "takeover") {
      socket.write(head, "latin1");
      this.handOver(s, body.onSocket);
      return;
    }
    if (noBody || body.kind === "empty") {
      this.releaseBody(body);
      this.writeHead(head);
      this.finish(s);
      return;
    }
    if (body.kind === "bytes") {
      const d = data!;
      s.bodyBytesSent = length;
      s.bytesSent += length;
      if (typeof d === "string" && length === d.length) {
        // ASCII: the head and the body in one write
        this.writeHead(head + d);
      } else {
        socket.cork();
        socket.write(head, "latin1");
        socket.write(d);
        this.uncork();
      }
      this.finish(s);
      return;
    }
    if (body.kind === "file") {
      s.fd = body.fd;
      s.closeFd = !body.keepOpen;
      this.sendFile(s, head, body.start, body.end);
      return;
    }
    if (body.kind === "stream") {
      this.writeHead(head);
      this.sendStream(s, body.stream, length, chunked);
    }
  }

  /** Answer 500 instead of an unwritable response (and close after it). */
  private replace(req: H1Request, res: WebResponse, fallback: boolean, err: unknown): void {
    this.engine.report("handler", err, this.info);
    this.releaseBody(res.body);
    if (fallback) {
      this.req = undefined;
      this.destroy();
      return;
    }
    this.mustClose = true;
    this.respond(req, this.engine.errorResponse(500, req), true);
  }

  private writeHead(head: string): void {
    if (!this.socket.write(head, "latin1")) this.setTimer(T_SEND, this.engine.timeouts.send);
  }

  private uncork(): void {
    this.socket.uncork();
    if (this.socket.writableNeedDrain) this.setTimer(T_SEND, this.engine.timeouts.send);
  }

  private releaseBody(body: Body): void {
    if (body.kind === "file" && !body.keepOpen) closeFd(body.fd, () => {});
    else if (body.kind === "stream") body.stream.destroy();
  }

  private sendFile(s: Sending, head: string, start: number, end: number): void {
    const length = end - start;
    const fd = s.fd;
    if (length <= SMALL_FILE) {
      const buf = Buffer.allocUnsafe(length);
      readFd(fd, buf, 0, length, start, (err, n) => {
        if (this.sending !== s) return;
        if (err || n !== length) {
          this.abortSend(
            s,
            err ? `file read failed: ${err.message}` : "file shorter than expected",
          );
          return;
        }
        const socket = this.socket;
        socket.cork();
        socket.write(head, "latin1");
        socket.write(buf);
        this.uncork();
        s.bodyBytesSent = length;
        s.bytesSent += length;
        this.finish(s);
      });
      return;
    }
    this.writeHead(head);
    let pos = start;
    const step = (): void => {
      if (this.sending !== s) return;
      if (pos >= end) {
        this.finish(s);
        return;
      }
      const want = Math.min(FILE_CHUNK, end - pos);
      const buf = Buffer.allocUnsafe(want);
      readFd(fd, buf, 0, want, pos, (err, n) => {
        if (this.sending !== s) return;
        if (err || n === 0) {
          this.abortSend(
            s,
            err ? `file read failed: ${err.message}` : "file shorter than expected",
          );
          return;
        }
        pos += n;
        s.bodyBytesSent += n;
        s.bytesSent += n;
        const chunk = n === want ? buf : buf.subarray(0, n);
        if (this.socket.write(chunk)) step();
        else this.waitDrain(step);
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
        socket.cork();
        socket.write(`${buf.length.toString(16)}\r\n`, "latin1");
        socket.write(buf);
        ok = socket.write(CRLF);
        socket.uncork();
        s.bytesSent += buf.length + 4 + buf.length.toString(16).length;
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

  private drainWaiter: (() => void) | undefined = undefined;

  private waitDrain(fn: () => void): void {
    this.drainWaiter = fn;
    this.setTimer(T_SEND, this.engine.timeouts.send);
  }

  private onDrain(): void {
    if (this.timerKind === T_SEND) this.clearTimer();
    const fn = this.drainWaiter;
    this.drainWaiter = undefined;
    if (fn) fn();
  }

  /** The response failed half-way: the client cannot be told, so the connection goes. */
  private abortSend(s: Sending, why: string): void {
    this.engine.report("send", new Error(why), this.info);
    this.complete(s, why);
    this.destroy(why);
  }

  private handOver(s: Sending, onSocket: (socket: Socket, head: Buffer) => void): void {
    const socket = this.socket;
    const rest = this.parser.rest();
    // Paused first: a flowing socket keeps flowing when its 'data' listeners go.
    socket.pause();
    this.complete(s, undefined);
    // From now on the socket is the callback's: forget it entirely.
    this.dead = true;
    this.clearTimer();
    this.engine.forget(this);
    socket.removeAllListeners("data");
    socket.removeAllListeners("end");
    socket.removeAllListeners("error");
    socket.removeAllListeners("close");
    socket.removeAllListeners("drain");
    try {
      onSocket(socket, Buffer.from(rest));
    } catch (err) {
      this.engine.report("handler", err, this.info);
      socket.destroy();
    }
  }

  private completion(
    status: number,
    bytesSent: number,
    bodyBytesSent: number,
    error: string | undefined,
  ): Completion {
    const req = this.req;
    return {
      status,
      bytesSent,
      bodyBytesSent,
      bodyBytesReceived: this.bodyBytes,
      durationMs: req ? Date.now() - req.startTime : 0,
      error,
    };
  }

  private complete(s: Sending, error: string | undefined): void {
    if (this.sending !== s) return;
    this.sending = undefined;
    if (s.fd >= 0 && s.closeFd) {
      closeFd(s.fd, () => {});
      s.fd = -1;
    }
    this.engine.complete(
      s.req,
      s.res,
      this.completion(s.res.status, s.bytesSent, s.bodyBytesSent, error),
    );
  }

  /** The response is written (queued to the socket): log it, then go on with the connection. */
  private finish(s: Sending): void {
    if (this.socket.writableNeedDrain) {
      // Backpressure: the client is not reading; wait (send timeout) before parsing more.
      this.waitDrain(() => this.finish(s));
      return;
    }
    this.complete(s, undefined);
    this.req = undefined;
    if (this.dead) return;
    if (!s.keepAlive) {
      this.endSocket();
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
    this.drive();
  }

  // ---- closing ----

  /** Answer with an error of ours (parse errors, timeouts) and close. */
  private fail(status: number, _why: string): void {
    if (this.dead || this.lingering) return;
    this.mustClose = true;
    const res = this.engine.errorResponse(status, undefined);
    let head = statusLine(status, undefined);
    const data = res.body.kind === "bytes" ? res.body.data : "";
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    for (const [n, v] of res.fields) {
      if (isFramingField(n)) continue;
      head += `${wireName(n)}: ${v}\r\n`;
    }
    head += currentDateLine();
    if (this.engine.serverLine) head += this.engine.serverLine;
    head += `Content-Length: ${bytes.byteLength}\r\nConnection: close\r\n\r\n`;
    this.socket.cork();
    this.socket.write(head, "latin1");
    this.socket.write(bytes);
    this.socket.uncork();
    this.engine.parseErrorResponse(status, this.info);
    this.endSocket();
  }

  /** Close our side once the output is flushed; read and drop input for the linger time. */
  private endSocket(): void {
    if (this.dead || this.lingering) return;
    this.lingering = true;
    this.resumeReading();
    this.socket.end();
    if (this.peerEnded) {
      // The peer is done too: Node closes the socket once our end is flushed.
      this.setTimer(T_LINGER, Math.max(this.engine.timeouts.send, 1000));
    } else {
      this.setTimer(T_LINGER, this.engine.timeouts.linger);
    }
  }

  destroy(why?: string): void {
    if (why !== undefined) this.closeReason ??= why;
    if (!this.socket.destroyed) this.socket.destroy();
  }

  /** Graceful stop: an idle connection closes now, a busy one after its response. */
  shutdown(): void {
    if (this.req === undefined && this.sending === undefined && !this.parser.inHead)
      this.endSocket();
  }

  /** For tests and metrics. */
  get busy(): boolean {
    return this.req !== undefined;
  }
}
