/**
 * HTTP/2 on node:http2 (over TLS, chosen by ALPN; see listener.ts), through its core stream API
 * rather than the compatibility layer: each stream becomes an `EngineRequest`, each response is
 * one `respond()` (file bodies with `respondWithFD`, read by nghttp2 straight from the file).
 */
import http2, {
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import type { Socket } from "node:net";
import { pipeline } from "node:stream";
import { HttpError, type WebResponse } from "../exchange.ts";
import type { Completion } from "../module.ts";
import { noBodyStatus } from "../statusPages.ts";
import { type ConnectionBase, connectionBase, connectionView, Progress } from "./connection.ts";
import { EngineRequest, StreamBody } from "./request.ts";
import { outgoingFields, releaseBody } from "./respond.ts";
import type { EngineHandler, EngineOptions, Outcome } from "./types.ts";

/** Fields HTTP/2 forbids (RFC 9113 §8.2.2); node would throw on them. */
const connectionSpecific = new Set(["upgrade", "proxy-connection", "http2-settings", "te"]);

interface Session {
  readonly session: Http2Session;
  readonly base: ConnectionBase;
  readonly progress: Progress;
  served: number;
  readonly reading: Set<StreamBody>;
}

class Http2Request extends EngineRequest {
  readonly connection;
  readonly body;
  readonly canTakeover = false;
  readonly listenerKey: string;
  private readonly raw: string[];

  constructor(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    raw: string[],
    s: Session,
    opts: EngineOptions,
    onBodyStart: () => void,
  ) {
    const authority = headers[":authority"] ?? headers.host;
    super({
      method: String(headers[":method"] ?? "GET"),
      target: String(headers[":path"] ?? ""),
      httpVersion: "2",
      authority: typeof authority === "string" ? authority : undefined,
      scheme: "https",
      mergeSlashes: opts.mergeSlashes,
    });
    // Pseudo-headers are not fields: modules see `host` (from :authority) and the rest.
    const fields: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.charCodeAt(0) !== 58) fields.push(raw[i]!, raw[i + 1]!);
    }
    if (headers.host === undefined && typeof authority === "string") fields.push("host", authority);
    this.raw = fields;
    this.connection = connectionView(s.base, s.served - 1);
    this.listenerKey = s.base.listener;
    if (this.method === "CONNECT") {
      this.invalid = new HttpError(501, "CONNECT over HTTP/2 is not supported", { close: false });
    } else if (this.target === "") {
      this.invalid = new HttpError(400, "no :path");
    } else if (fields.length > 2 * opts.maxHeaders) {
      this.invalid = new HttpError(431, "too many header fields");
    }
    const cl = headers["content-length"];
    const declared = cl === undefined ? undefined : Number(cl);
    this.declaredLength = declared;
    this.body = new StreamBody(
      stream,
      declared,
      stream.endAfterHeaders || declared === 0,
      () => this.bodyLimit,
      onBodyStart,
    );
  }

  protected rawFields(): string[] {
    return this.raw;
  }
}

function h2Headers(status: number, list: string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ":status": status };
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i]!;
    if (connectionSpecific.has(name)) continue;
    const value = list[i + 1]!;
    const have = out[name];
    if (have === undefined) out[name] = value;
    else if (Array.isArray(have)) have.push(value);
    else out[name] = [String(have), value];
  }
  return out;
}

export class Http2Engine {
  readonly server: Http2Server;
  private readonly sessions = new Map<Http2Session, Session>();
  private readonly handler: EngineHandler;
  private readonly opts: EngineOptions;
  private readonly listener: string;
  private draining = false;
  sendTimeouts = 0;

  constructor(listener: string, handler: EngineHandler, opts: EngineOptions) {
    this.listener = listener;
    this.handler = handler;
    this.opts = opts;
    this.server = http2.createServer({
      maxHeaderListPairs: opts.maxHeaders + 8,
      settings: {
        maxConcurrentStreams: 128,
        maxHeaderListSize: opts.maxHeaderSize,
      },
    });
    this.server.on("session", (session: Http2Session) => this.track(session));
    this.server.on(
      "stream",
      (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) =>
        this.onStream(stream, headers, raw),
    );
    this.server.on("sessionError", () => {});
  }

  /** Serve a TLS connection that chose h2. */
  attach(socket: Socket): void {
    this.server.emit("connection", socket);
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  private track(session: Http2Session): void {
    const socket = session.socket as Socket;
    const s: Session = {
      session,
      base: connectionBase(socket, this.listener),
      progress: new Progress(),
      served: 0,
      reading: new Set(),
    };
    this.sessions.set(session, s);
    session.once("close", () => this.sessions.delete(session));
    session.on("error", () => {});
    if (this.opts.keepaliveTimeout > 0) {
      session.setTimeout(this.opts.keepaliveTimeout, () => session.close());
    }
    if (this.draining) session.close();
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, raw: string[]): void {
    const session = stream.session;
    const s = session ? this.sessions.get(session) : undefined;
    if (s === undefined) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    s.served++;
    stream.on("error", () => {});
    const req = new Http2Request(stream, headers, raw, s, this.opts, () => {
      if (!req.body.empty) {
        s.reading.add(req.body);
        s.progress.resetRead();
        stream.once("end", () => s.reading.delete(req.body));
      }
    });
    stream.once("close", () => {
      s.reading.delete(req.body);
      if (!stream.sentHeaders || stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
        req.abort(new Error("stream closed"));
      }
    });
    Promise.resolve(this.handler.handle(req)).then(
      (outcome) => this.write(req, stream, outcome),
      (error: unknown) => {
        this.opts.logger.error("request handler failed", { error });
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      },
    );
  }

  private write(req: Http2Request, stream: ServerHttp2Stream, outcome: Outcome): void {
    const r = outcome.response;
    if (r.status === 444 || stream.destroyed || stream.closed) {
      releaseBody(r.body);
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      const logged = r.status === 444 ? r : { ...r, status: 499 };
      this.finish(outcome, req, logged, 0, r.status === 444 ? undefined : "client closed");
      return;
    }
    const head = req.method === "HEAD";
    const { list, length, keptLength } = outgoingFields(r, head, this.opts.serverHeader);
    const noBody = noBodyStatus(r.status);
    if (!noBody && length !== undefined && !keptLength) list.push("content-length", String(length));
    let headers: OutgoingHttpHeaders;
    try {
      headers = h2Headers(r.status, list);
    } catch {
      headers = { ":status": 500 };
    }
    const body = r.body;
    if (outcome.close && stream.session) {
      // HTTP/2 has no "Connection: close": let the client finish, take no new streams.
      stream.session.close();
    }
    let sent = 0;
    stream.once("close", () => {
      const reset = stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR;
      this.finish(outcome, req, r, sent, reset ? `stream reset (${stream.rstCode})` : undefined);
    });
    try {
      if (head || noBody || body.kind === "empty" || body.kind === "takeover") {
        releaseBody(body);
        stream.respond(headers, { endStream: true });
        return;
      }
      if (body.kind === "bytes") {
        stream.respond(headers);
        stream.end(body.data);
        sent = length ?? 0;
        return;
      }
      if (body.kind === "file") {
        stream.respondWithFD(body.fd, headers, {
          offset: body.start,
          length: body.end - body.start,
        });
        sent = body.end - body.start;
        if (!body.keepOpen) stream.once("close", () => releaseBody(body));
        return;
      }
      stream.respond(headers);
      body.stream.on("data", (c: Buffer) => {
        sent += c.length;
      });
      pipeline(body.stream, stream, (error) => {
        if (error && !stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
    } catch (error) {
      this.opts.logger.error("cannot write an HTTP/2 response", { error, path: req.path });
      releaseBody(body);
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  private finish(
    outcome: Outcome,
    req: Http2Request,
    r: WebResponse,
    bodyBytes: number,
    error: string | undefined,
  ): void {
    const done: Completion = {
      status: r.status,
      bytesSent: bodyBytes,
      bodyBytesSent: bodyBytes,
      bodyBytesReceived: req.body.received,
      durationMs: performance.now() - req.hrStart,
      error,
    };
    outcome.complete(done);
  }

  sweep(now: number): void {
    const o = this.opts;
    for (const s of this.sessions.values()) {
      const socket = s.session.socket as Socket | undefined;
      if (!socket) continue;
      if (
        s.reading.size > 0 &&
        o.bodyTimeout > 0 &&
        s.progress.readStalled(socket, now, o.bodyTimeout)
      ) {
        for (const body of s.reading) body.fail(new HttpError(408, "client body timeout"));
        s.reading.clear();
      }
      if (o.bodyMinRate > 0) {
        for (const body of s.reading) {
          if (!body.tooSlow(now, o.bodyMinRate, o.bodyMinRateGrace)) continue;
          s.reading.delete(body);
          body.fail(new HttpError(408, "client body too slow"));
        }
      }
      if (o.sendTimeout > 0 && s.progress.writeStalled(socket, now, o.sendTimeout)) {
        this.sendTimeouts++;
        s.session.destroy();
      }
    }
  }

  /** GOAWAY to every session: streams in flight finish, no new ones. */
  drain(): void {
    this.draining = true;
    for (const s of this.sessions.keys()) s.close();
  }

  destroyAll(): void {
    for (const s of this.sessions.keys()) s.destroy();
  }
}
