/**
 * HTTP/1.0 and HTTP/1.1 on node:http (llhttp, strict): keep-alive, pipelining, HEAD, Upgrade and
 * CONNECT (the raw connection handed over), every limit and timeout of the web server.
 *
 * What node:http does for us: parsing and framing of requests, `Date`, chunked responses,
 * keep-alive bookkeeping (`keepAliveTimeout`, `maxRequestsPerSocket`), the request-head timeout
 * (`headersTimeout`, checked every `connectionsCheckingInterval`), pipelined responses in order.
 * What we add: the limits node does not enforce the way nginx does (request line 414, header
 * count 431, Host rules 400), the answers to malformed requests (`clientError`), the body and
 * send timeouts (connection.ts), graceful draining, and the writing of each body kind.
 */
import { createReadStream, readSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { pipeline, type Readable } from "node:stream";
import type { RequestBody, WebConnection } from "../exchange.ts";
import { Fields, HttpError, type WebResponse } from "../exchange.ts";
import type { Completion } from "../module.ts";
import { defaultPage, noBodyStatus, reasonPhrase } from "../statusPages.ts";
import {
  type ConnectionBase,
  connectionBase,
  connectionView,
  DRAIN_IDLE_MS,
  Progress,
} from "./connection.ts";
import { EngineRequest, noBody, StreamBody } from "./request.ts";
import { outgoingFields, releaseBody } from "./respond.ts";
import type { EngineHandler, EngineOptions, Outcome } from "./types.ts";

/** File ranges up to this size are read at once and written with the head (nginx would sendfile). */
const SMALL_FILE = 64 * 1024;

interface Conn {
  readonly socket: Socket;
  readonly base: ConnectionBase;
  readonly progress: Progress;
  /** Requests started on this connection. */
  served: number;
  /** Requests in flight. */
  active: number;
  idleSince: number;
  /** The body being read, failed with 408 when the client stalls. */
  reading: StreamBody | undefined;
  /** The parser failed after a request head: answer what is in flight, then close. */
  broken: boolean;
}

class Http1Request extends EngineRequest {
  readonly canTakeover: boolean;
  readonly incoming: IncomingMessage;
  readonly listenerKey: string;
  private readonly raw: string[];
  private readonly conn: Conn;
  private readonly position: number;
  private readonly chunked: boolean;
  private readonly onBodyStart: (r: Http1Request) => void;
  private view: WebConnection | undefined;
  private bodyCache: RequestBody | undefined;
  /** Called when the response closes (finished: written in full). */
  onClose: ((finished: boolean) => void) | undefined;

  constructor(
    req: IncomingMessage,
    conn: Conn,
    opts: EngineOptions,
    takeover: boolean,
    onBodyStart: (r: Http1Request) => void,
  ) {
    const raw = req.rawHeaders;
    let host: string | undefined;
    let hosts = 0;
    let length: string | undefined;
    let chunked = false;
    let codings = "";
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.length === 4 && name.toLowerCase() === "host") {
        hosts++;
        host = raw[i + 1];
      } else if (name.length === 14 && name.toLowerCase() === "content-length") {
        length = raw[i + 1];
      } else if (name.length === 17 && name.toLowerCase() === "transfer-encoding") {
        chunked = true;
        codings += `${codings === "" ? "" : ","}${raw[i + 1]}`;
      }
    }
    const version = req.httpVersionMinor === 0 ? "1.0" : "1.1";
    super({
      method: req.method ?? "GET",
      target: req.url ?? "/",
      httpVersion: version,
      authority: host,
      scheme: conn.base.tls ? "https" : "http",
      mergeSlashes: opts.mergeSlashes,
    });
    this.raw = raw;
    this.incoming = req;
    this.canTakeover = takeover;
    this.conn = conn;
    this.position = conn.served - 1;
    this.listenerKey = conn.base.listener;
    this.chunked = chunked;
    this.onBodyStart = onBodyStart;
    const line = this.method.length + this.target.length + 10;
    if (req.httpVersionMajor !== 1) {
      this.invalid = new HttpError(505, `HTTP/${req.httpVersion} on an HTTP/1 connection`, {
        close: true,
      });
    } else if (line > opts.maxRequestLine) {
      this.invalid = new HttpError(414, "request line too long", { close: true });
    } else if (raw.length > 2 * opts.maxHeaders) {
      this.invalid = new HttpError(431, "too many header fields", { close: true });
    } else if (chunked && transferProblem(codings, version) !== undefined) {
      this.invalid = new HttpError(
        transferProblem(codings, version)!,
        `Transfer-Encoding "${codings}"`,
        {
          close: true,
        },
      );
    } else if (hosts > 1) {
      this.invalid = new HttpError(400, "more than one Host field", { close: true });
    } else if (hosts === 0 && version === "1.1") {
      this.invalid = new HttpError(400, "HTTP/1.1 request without Host", { close: true });
    }
    this.declaredLength = length === undefined || chunked ? undefined : Number(length);
  }

  get connection(): WebConnection {
    this.view ??= connectionView(this.conn.base, this.position);
    return this.view;
  }

  get body(): RequestBody {
    if (this.bodyCache === undefined) {
      const declared = this.declaredLength;
      this.bodyCache = this.canTakeover
        ? noBody
        : new StreamBody(
            this.incoming,
            declared,
            !this.chunked && (declared === undefined || declared === 0),
            () => this.bodyLimit,
            () => this.onBodyStart(this),
          );
    }
    return this.bodyCache;
  }

  /** Body bytes read (without making the body). */
  get received(): number {
    return this.bodyCache instanceof StreamBody ? this.bodyCache.received : 0;
  }

  protected rawFields(): string[] {
    return this.raw;
  }
}

/**
 * What a request's Transfer-Encoding makes of it, as nginx answers: undefined when the body is
 * chunked once, last (HTTP/1.1); 501 for a coding we do not implement (`gzip, chunked`,
 * `xchunked`: RFC 9112 §6.1); 400 for `chunked` twice or any coding in HTTP/1.0, whose length
 * could be read two ways (the smuggling families TE.TE and TE.CL).
 */
function transferProblem(codings: string, version: "1.0" | "1.1"): 400 | 501 | undefined {
  if (version === "1.0") return 400;
  const list = codings
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "");
  if (list.some((c) => c !== "chunked")) return 501;
  return list.length === 1 ? undefined : 400;
}

/** Map a parser error to the status nginx (or the RFC, where they differ) answers. */
function clientErrorStatus(
  err: NodeJS.ErrnoException & { rawPacket?: Buffer },
  opts: EngineOptions,
): number {
  switch (err.code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
    case "HPE_HEADER_TIMEOUT":
      return 408;
    case "HPE_HEADER_OVERFLOW": {
      // A request line that alone overflows the head: 414; otherwise the fields are too big: 431.
      const packet = err.rawPacket;
      const lf = packet ? packet.indexOf(10) : -1;
      return lf < 0 || lf > opts.maxRequestLine ? 414 : 431;
    }
    default:
      return 400;
  }
}

export class Http1Engine {
  readonly server: http.Server;
  private readonly conns = new Map<Socket, Conn>();
  private readonly handler: EngineHandler;
  private readonly opts: EngineOptions;
  private readonly listener: string;
  private draining = false;
  /** Connections dropped because the client stopped reading (send timeout). */
  sendTimeouts = 0;

  constructor(listener: string, handler: EngineHandler, opts: EngineOptions) {
    this.listener = listener;
    this.handler = handler;
    this.opts = opts;
    this.server = http.createServer({
      headersTimeout: opts.headerTimeout,
      // nginx has no limit on a whole request's duration; the body timeout is between reads.
      requestTimeout: 0,
      connectionsCheckingInterval: Math.max(100, Math.min(1000, opts.headerTimeout / 4)),
      keepAliveTimeout: opts.keepaliveTimeout,
      maxHeaderSize: opts.maxHeaderSize,
      requireHostHeader: false,
      joinDuplicateHeaders: false,
      noDelay: true,
    });
    // One more than allowed, so that "too many" can be seen and refused rather than truncated.
    this.server.maxHeadersCount = opts.maxHeaders + 1;
    this.server.maxRequestsPerSocket = opts.keepaliveRequests;
    this.server.on("connection", (socket: Socket) => this.track(socket));
    this.server.on("request", (req: IncomingMessage, res: ServerResponse) =>
      this.onRequest(req, res),
    );
    this.server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.onTakeover(req, socket, head),
    );
    this.server.on("connect", (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.onTakeover(req, socket, head),
    );
    this.server.on("clientError", (err: Error, socket: Socket) => this.onClientError(err, socket));
  }

  /** Serve a connection accepted elsewhere (TLS listeners dispatch HTTP/1.1 here). */
  attach(socket: Socket): void {
    this.server.emit("connection", socket);
  }

  /** Start node's connection tracking (the head timeout) for a server that never listens itself. */
  startTracking(): void {
    this.server.emit("listening");
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  private track(socket: Socket): void {
    const conn: Conn = {
      socket,
      base: connectionBase(socket, this.listener),
      progress: new Progress(),
      served: 0,
      active: 0,
      idleSince: performance.now(),
      reading: undefined,
      broken: false,
    };
    this.conns.set(socket, conn);
    socket.once("close", () => this.conns.delete(socket));
  }

  private conn(socket: Socket): Conn {
    let c = this.conns.get(socket);
    if (c === undefined) {
      this.track(socket);
      c = this.conns.get(socket)!;
    }
    return c;
  }

  private onBodyStart(conn: Conn, req: Http1Request, source: IncomingMessage): void {
    if (req.body.empty || !(req.body instanceof StreamBody)) return;
    const body = req.body;
    conn.progress.resetRead();
    conn.reading = body;
    const done = (): void => {
      if (conn.reading === body) conn.reading = undefined;
    };
    source.once("end", done);
    source.once("close", done);
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const conn = this.conn(req.socket);
    conn.served++;
    conn.active++;
    const ereq = new Http1Request(req, conn, this.opts, false, (r) =>
      this.onBodyStart(conn, r, req),
    );
    // One listener per response: node emits "close" after "finish" too.
    res.once("close", () => {
      conn.active--;
      conn.idleSince = performance.now();
      const finished = res.writableFinished;
      if (!finished) ereq.abort(new Error("client closed the connection"));
      ereq.onClose?.(finished);
    });
    Promise.resolve(this.handler.handle(ereq)).then(
      (outcome) => this.write(ereq, res, outcome, req.socket, conn),
      (error: unknown) => {
        this.opts.logger.error("request handler failed", { error });
        res.destroy();
      },
    );
  }

  private write(
    req: Http1Request,
    res: ServerResponse,
    outcome: Outcome,
    socket: Socket,
    conn: Conn,
  ): void {
    let r = outcome.response;
    if (conn.broken && !req.incoming.complete && req.invalid === undefined) {
      // The body turned out malformed before we answered: the request was a bad one (nginx
      // finds out the same way while discarding the body, and answers 400).
      releaseBody(r.body);
      const page = defaultPage(400, this.opts.serverHeader ?? "");
      r = {
        status: 400,
        fields: new Fields(["content-type", "text/html"]),
        body: { kind: "bytes", data: page },
      };
    }
    // `res.socket` is null while a pipelined response waits for the ones before it: use the
    // request's socket.
    if (r.status === 444 || socket.destroyed) {
      releaseBody(r.body);
      socket.destroy();
      // nginx logs 499 for a client that went away before the response.
      const logged = r.status === 444 ? r : { ...r, status: 499 };
      this.finish(outcome, req, logged, 0, 0, r.status === 444 ? undefined : "client closed");
      return;
    }
    const head = req.method === "HEAD";
    const { list, length, keptLength } = outgoingFields(r, head, this.opts.serverHeader);
    const noBody = noBodyStatus(r.status);
    if (!noBody && length !== undefined && !keptLength) list.push("content-length", String(length));
    if (outcome.close || conn.broken || this.draining || this.opts.keepaliveTimeout === 0) {
      res.shouldKeepAlive = false;
      if (!req.incoming.complete) linger(socket);
    }
    const reason = r.reason ?? reasonPhrase(r.status);
    try {
      res.writeHead(r.status, reason, list);
    } catch (error) {
      // An invalid field (a CR/LF from a variable, say) is our fault, not the client's.
      this.opts.logger.error("invalid response fields", { error, path: req.path });
      releaseBody(r.body);
      const page = defaultPage(500, "");
      res.writeHead(500, reasonPhrase(500), [
        "content-type",
        "text/html",
        "content-length",
        String(page.length),
      ]);
      res.end(page);
      this.finishOn(res, outcome, req, { ...r, status: 500 }, page.length);
      return;
    }
    const body = r.body;
    if (head || noBody || body.kind === "empty") {
      releaseBody(body);
      res.end();
      this.finishOn(res, outcome, req, r, 0);
      return;
    }
    switch (body.kind) {
      case "bytes":
        res.end(body.data);
        this.finishOn(res, outcome, req, r, length ?? 0);
        return;
      case "file": {
        const size = body.end - body.start;
        if (size <= SMALL_FILE) {
          let buf: Buffer;
          try {
            buf = readRange(body.fd, body.start, size);
          } catch (error) {
            this.opts.logger.error("cannot read file", { error, file: body.path });
            releaseBody(body);
            res.destroy();
            this.finish(outcome, req, r, 0, 0, `read error: ${(error as Error).message}`);
            return;
          }
          releaseBody(body);
          res.end(buf);
          this.finishOn(res, outcome, req, r, size);
          return;
        }
        // createReadStream reads at explicit positions, so a shared (cached) fd is safe.
        const stream = createFileStream(body.fd, body.start, body.end, !body.keepOpen);
        this.pipe(stream, res, outcome, req, r);
        return;
      }
      case "stream":
        this.pipe(body.stream, res, outcome, req, r);
        return;
      case "takeover":
        this.opts.logger.error("a takeover body for a request that cannot be taken over", {
          path: req.path,
        });
        res.destroy();
        this.finish(outcome, req, r, 0, 0, "takeover refused");
        return;
    }
  }

  private pipe(
    stream: Readable,
    res: ServerResponse,
    outcome: Outcome,
    req: Http1Request,
    r: WebResponse,
  ): void {
    let sent = 0;
    stream.on("data", (chunk: Buffer | string) => {
      sent += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.length;
    });
    pipeline(stream, res, (error) => {
      const head = headerBytes(res);
      if (error) {
        // A body that fails halfway cannot be finished: the connection is cut so the client
        // sees a truncated response rather than a short one.
        res.destroy();
        this.finish(outcome, req, r, head + sent, sent, error.message);
      } else this.finish(outcome, req, r, head + sent, sent, undefined);
    });
  }

  private finishOn(
    res: ServerResponse,
    outcome: Outcome,
    req: Http1Request,
    r: WebResponse,
    bodyBytes: number,
  ): void {
    const end = (finished: boolean): void => {
      req.onClose = undefined;
      const head = headerBytes(res);
      if (finished) this.finish(outcome, req, r, head + bodyBytes, bodyBytes, undefined);
      else this.finish(outcome, req, r, head, 0, "client closed");
    };
    if (res.writableFinished && res.closed) end(true);
    else req.onClose = end;
  }

  private finish(
    outcome: Outcome,
    req: EngineRequest,
    r: WebResponse,
    bytesSent: number,
    bodyBytesSent: number,
    error: string | undefined,
  ): void {
    const done: Completion = {
      status: r.status,
      bytesSent,
      bodyBytesSent,
      bodyBytesReceived: req instanceof Http1Request ? req.received : 0,
      durationMs: performance.now() - req.hrStart,
      error,
    };
    outcome.complete(done);
  }

  /** Upgrade and CONNECT: node hands us the raw socket. */
  private onTakeover(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const conn = this.conn(socket);
    conn.served++;
    conn.active++;
    const ereq = new Http1Request(req, conn, this.opts, true, () => {});
    socket.once("close", () => ereq.abort(new Error("client closed the connection")));
    // node:http took its own error listener off the socket: a client that resets it while the
    // answer is being made (or written) must not be an uncaught error. A takeover's owner adds
    // its own; this one stays and only closes.
    socket.on("error", () => socket.destroy());
    Promise.resolve(this.handler.handle(ereq)).then(
      (outcome) => {
        conn.active--;
        this.writeRaw(ereq, socket, head, outcome);
      },
      (error: unknown) => {
        this.opts.logger.error("request handler failed", { error });
        socket.destroy();
      },
    );
  }

  /**
   * Write a response on a socket node:http no longer manages (after an Upgrade or CONNECT
   * request): the takeover's status line and fields, or an ordinary response followed by close.
   */
  private writeRaw(req: Http1Request, socket: Socket, head: Buffer, outcome: Outcome): void {
    const r = outcome.response;
    if (r.status === 444 || socket.destroyed) {
      releaseBody(r.body);
      socket.destroy();
      this.finish(outcome, req, r, 0, 0, undefined);
      return;
    }
    const isHead = req.method === "HEAD";
    const { list, length, keptLength } = outgoingFields(r, isHead, this.opts.serverHeader);
    let text = `HTTP/1.1 ${r.status} ${r.reason ?? reasonPhrase(r.status)}\r\ndate: ${new Date().toUTCString()}\r\n`;
    for (let i = 0; i < list.length; i += 2) {
      const name = list[i]!;
      const value = list[i + 1]!;
      if (/[\r\n\0]/.test(name) || /[\r\n\0]/.test(value)) continue;
      text += `${name}: ${value}\r\n`;
    }
    const body = r.body;
    if (body.kind === "takeover") {
      if (r.status === 101) text += "connection: upgrade\r\n";
      socket.write(`${text}\r\n`);
      this.conns.delete(socket);
      const headBytes = text.length + 2;
      // What the tunnel carries is counted from here on (the head we wrote is in bytesWritten).
      const written = socket.bytesWritten;
      const read = socket.bytesRead - head.length;
      let ended: Promise<void> | undefined;
      try {
        const r = body.onSocket(socket, head);
        if (r instanceof Promise) ended = r;
      } catch (error) {
        this.opts.logger.error("takeover failed", { error, path: req.path });
        socket.destroy();
      }
      if (ended === undefined) {
        this.finish(outcome, req, r, headBytes, 0, undefined);
        return;
      }
      const done = (error: unknown): void => {
        const sent = Math.max(0, socket.bytesWritten - written);
        outcome.complete({
          status: r.status,
          bytesSent: headBytes + sent,
          bodyBytesSent: sent,
          bodyBytesReceived: Math.max(0, socket.bytesRead - read),
          durationMs: performance.now() - req.hrStart,
          error: error === undefined ? undefined : String((error as Error)?.message ?? error),
        });
      };
      ended.then(
        () => done(undefined),
        (error: unknown) => done(error),
      );
      return;
    }
    const noBody = noBodyStatus(r.status);
    if (!noBody && length !== undefined && !keptLength) text += `content-length: ${length}\r\n`;
    text += "connection: close\r\n\r\n";
    const sendBody = !isHead && !noBody && body.kind !== "empty";
    if (!sendBody) {
      releaseBody(body);
      socket.end(text);
      this.finish(outcome, req, r, text.length, 0, undefined);
      return;
    }
    socket.write(text);
    const stream =
      body.kind === "bytes"
        ? undefined
        : body.kind === "file"
          ? createFileStream(body.fd, body.start, body.end, !body.keepOpen)
          : body.stream;
    if (body.kind === "bytes") {
      socket.end(body.data);
      this.finish(outcome, req, r, text.length + (length ?? 0), length ?? 0, undefined);
      return;
    }
    let sent = 0;
    stream!.on("data", (c: Buffer) => {
      sent += c.length;
    });
    pipeline(stream!, socket, (error) => {
      this.finish(outcome, req, r, text.length + sent, sent, error?.message);
    });
  }

  private onClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket): void {
    const conn = this.conns.get(socket);
    if (err.code === "ECONNRESET" || err.code === "HPE_INVALID_EOF_STATE" || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(err, this.opts);
    const base = conn?.base ?? connectionBase(socket, this.listener);
    this.handler.rejected(connectionView(base, conn?.served ?? 0), status, err.code ?? err.message);
    // A request in flight on this connection (its head was fine, its body or a pipelined
    // request after it is not): answer it, then close; ours cannot follow it.
    const inFlight = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (inFlight) {
      if (conn) conn.broken = true;
      if (inFlight.headersSent) inFlight.once("finish", () => socket.destroySoon());
      conn?.reading?.fail(new HttpError(400, "malformed request body", { close: true }));
      return;
    }
    const page = defaultPage(status, this.opts.serverHeader ?? "");
    let text = `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\ndate: ${new Date().toUTCString()}\r\n`;
    if (this.opts.serverHeader !== undefined) text += `server: ${this.opts.serverHeader}\r\n`;
    text += `content-type: text/html\r\ncontent-length: ${page.length}\r\nconnection: close\r\n\r\n${page}`;
    socket.end(text);
    // A client that neither reads nor closes must not hold the socket.
    setTimeout(() => socket.destroy(), 5000).unref();
  }

  /** Timeouts and draining; called by the engine's sweep. */
  sweep(now: number): void {
    const o = this.opts;
    for (const conn of this.conns.values()) {
      const s = conn.socket;
      if (conn.reading && o.bodyTimeout > 0 && conn.progress.readStalled(s, now, o.bodyTimeout)) {
        const reading = conn.reading;
        conn.reading = undefined;
        reading.fail(new HttpError(408, "client body timeout", { close: true }));
        continue;
      }
      if (
        conn.reading &&
        o.bodyMinRate > 0 &&
        conn.reading.tooSlow(now, o.bodyMinRate, o.bodyMinRateGrace)
      ) {
        const reading = conn.reading;
        conn.reading = undefined;
        o.logger.info("request body too slow; closing", {
          client: conn.base.remoteAddress,
          received: reading.received,
        });
        reading.fail(new HttpError(408, "client body too slow", { close: true }));
        continue;
      }
      if (
        conn.active > 0 &&
        o.sendTimeout > 0 &&
        conn.progress.writeStalled(s, now, o.sendTimeout)
      ) {
        o.logger.info("client stopped reading; closing", {
          client: conn.base.remoteAddress,
          timeout: o.sendTimeout / 1000,
        });
        this.sendTimeouts++;
        s.destroy();
        continue;
      }
      if (this.draining && conn.active === 0 && now - conn.idleSince >= DRAIN_IDLE_MS) {
        s.destroy();
      }
    }
  }

  /** Stop keeping connections alive: each finishes its current request, then closes. */
  drain(): void {
    this.draining = true;
  }

  /** Drop every connection now (fast stop). */
  destroyAll(): void {
    for (const conn of this.conns.values()) conn.socket.destroy();
  }
}

/** How long a closing connection keeps reading (and dropping) what the client still sends. */
const LINGER_MS = 2000;

/**
 * nginx's lingering close: a connection closed while the client is still sending a request
 * body (a 413, an early error) first only stops writing, and reads and drops the rest for a
 * moment: closing with unread data would send a reset that can destroy our response before the
 * client reads it. node:http closes such a connection with `destroySoon()`; this replaces it
 * for this one socket.
 */
function linger(socket: Socket): void {
  const s = socket as Socket & { destroySoon?: () => void };
  s.destroySoon = () => {
    if (s.writable) s.end();
    const timer = setTimeout(() => s.destroy(), LINGER_MS);
    timer.unref();
    s.once("end", () => {
      clearTimeout(timer);
      s.destroy();
    });
    s.resume();
  };
}

function headerBytes(res: ServerResponse): number {
  const h = (res as { _header?: string | null })._header;
  return typeof h === "string" ? h.length : 0;
}

/** Read `[start, start + size)` of `fd` (positional reads: a shared descriptor is safe). */
function readRange(fd: number, start: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < size) {
    const n = readSync(fd, buf, off, size - off, start + off);
    if (n === 0) throw new Error("file shorter than its range");
    off += n;
  }
  return buf;
}

function createFileStream(fd: number, start: number, end: number, autoClose: boolean): Readable {
  return createReadStream("", {
    fd,
    start,
    end: end - 1,
    autoClose,
    emitClose: true,
    highWaterMark: 64 * 1024,
  });
}
