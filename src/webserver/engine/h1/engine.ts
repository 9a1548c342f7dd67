/**
 * Brigade's own HTTP/1.1 server engine: `net`/`tls` sockets, our strict parser
 * (core/http1/parser.ts), and the web server's narrow interface (exchange.ts) on top, without
 * node:http's per-request objects and streams.
 *
 * The engine turns each request into a {@link WebRequest}, calls `handler` (the pipeline), and
 * writes the {@link WebResponse} it returns; `complete` hears about every response once it is
 * written (the log phase). It owns framing, keep-alive, pipelining, HEAD, `Date` and `Server`,
 * the timeouts and limits of the web server's settings, and the error responses for what never
 * became a request (400, 408, 413, 414, 431, 501, 505).
 *
 * @example
 * const engine = new H1Engine({ handler: (req) => response(200, "hello") });
 * const server = createServer(engine.serverOptions, (socket) => engine.handle(socket, ":8080"));
 * server.listen(8080);
 * // stopping: server.close(); engine.shutdown(); ... engine.destroyAll();
 */
import type { Socket } from "node:net";
import { defaultLimits, type ParserLimits } from "../../../core/http1/parser.ts";
import { Fields, type WebConnection, type WebRequest, type WebResponse } from "../../exchange.ts";
import type { Completion } from "../../module.ts";
import { Connection } from "./connection.ts";
import { reasonOf } from "./head.ts";

export interface H1Timeouts {
  /** The whole request head, from the accept or its first byte (ms; 0: none). nginx client_header_timeout. */
  header: number;
  /** Between two reads of a request body being read (ms). nginx client_body_timeout. */
  body: number;
  /** Idle between requests (ms); 0 disables keep-alive. nginx keepalive_timeout. */
  keepAlive: number;
  /** Between two writes that make progress (ms). nginx send_timeout. */
  send: number;
  /** After we close our side: how long to read and drop the client's input (ms). nginx lingering_timeout. */
  linger: number;
}

export interface H1Options {
  /** The pipeline: one call per request. */
  handler(req: WebRequest): WebResponse | Promise<WebResponse>;
  /** Every response once written or abandoned (the log phase). Must not throw. */
  complete?(req: WebRequest, res: WebResponse, done: Completion): void;
  /**
   * The response for an error status: parse errors and timeouts (`req` undefined, before any
   * request exists), 417, and an HttpError or crash the handler did not turn into a response.
   * Default: a short HTML page like nginx's.
   */
  errorResponse?(status: number, req: WebRequest | undefined): WebResponse;
  /** Problems worth a log line: malformed requests, handler crashes, failed sends. Must not throw. */
  report?(kind: "parse" | "handler" | "send" | "internal", err: unknown, conn: WebConnection): void;
  /** A request that never became a WebRequest was answered with `status` (for metrics/logs). */
  rejected?(status: number, conn: WebConnection): void;
  limits?: Partial<H1Limits>;
  timeouts?: Partial<H1Timeouts>;
  /** Requests on one connection before it is closed. nginx keepalive_requests. Default 1000. */
  keepaliveRequests?: number;
  /** The `Server` field value, or "" for none. Default "brigade". */
  server?: string;
  /** Merge repeated slashes in paths (nginx merge_slashes). Default true. */
  mergeSlashes?: boolean;
}

export interface H1Limits {
  /** Request line bytes (414). */
  maxRequestLine: number;
  /** The whole head, request line and fields (431). */
  maxHeaderSize: number;
  /** Header fields (431). */
  maxHeaders: number;
  /** Body bytes, declared or chunked (413); 0: no limit. Per-location limits are the pipeline's. */
  maxBodySize: number;
  /** One chunk-size line (400). */
  maxChunkLine: number;
  /** Chunk-extension bytes per request (400). */
  maxChunkExtensions: number;
}

/** nginx's defaults where nginx has the setting. */
export const defaultTimeouts: Readonly<H1Timeouts> = {
  header: 60_000,
  body: 60_000,
  keepAlive: 75_000,
  send: 60_000,
  linger: 5_000,
};

function errorPage(status: number): WebResponse {
  const title = `${status} ${reasonOf(status)}`;
  const body = `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n</body>\r\n</html>\r\n`;
  return {
    status,
    fields: new Fields(["content-type", "text/html"]),
    body: { kind: "bytes", data: body },
  };
}

export class H1Engine {
  readonly handler: H1Options["handler"];
  readonly limits: ParserLimits;
  readonly timeouts: H1Timeouts;
  readonly keepaliveRequests: number;
  /** `Server: ...\r\n`, or "". */
  readonly serverLine: string;
  readonly mergeSlashes: boolean;
  /** Set by {@link shutdown}: no new keep-alive. */
  closing = false;
  /** Options for `net.createServer` / `tls.createServer` serving this engine. */
  readonly serverOptions = { allowHalfOpen: true, noDelay: true, pauseOnConnect: false };

  private readonly options: H1Options;
  private readonly conns = new Set<Connection>();
  private nextId = 1;
  private sweeper: NodeJS.Timeout | undefined = undefined;
  private readonly sweepMs: number;

  constructor(options: H1Options) {
    this.options = options;
    this.handler = options.handler;
    const l = options.limits ?? {};
    this.limits = {
      maxStartLine: l.maxRequestLine ?? defaultLimits.maxStartLine,
      maxHeaderBytes: l.maxHeaderSize ?? defaultLimits.maxHeaderBytes,
      maxHeaderCount: l.maxHeaders ?? defaultLimits.maxHeaderCount,
      maxBodySize: l.maxBodySize ?? 0,
      maxChunkLine: l.maxChunkLine ?? defaultLimits.maxChunkLine,
      maxChunkExtensions: l.maxChunkExtensions ?? defaultLimits.maxChunkExtensions,
    };
    this.timeouts = { ...defaultTimeouts, ...options.timeouts };
    this.keepaliveRequests = options.keepaliveRequests ?? 1000;
    const server = options.server ?? "brigade";
    if (/[\r\n]/.test(server)) throw new Error("server: no CR or LF");
    this.serverLine = server === "" ? "" : `Server: ${server}\r\n`;
    this.mergeSlashes = options.mergeSlashes ?? true;
    // The sweep runs often enough for the shortest timeout to be honoured within a quarter of it.
    const t = this.timeouts;
    const shortest = Math.min(
      ...[t.header, t.body, t.keepAlive, t.send, t.linger].filter((x) => x > 0),
    );
    this.sweepMs = Math.max(10, Math.min(1000, Math.floor(shortest / 4)));
  }

  /** Serve an accepted connection (a TLS socket once its handshake is done). */
  handle(socket: Socket, listener: string): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn = new Connection(this, socket, this.nextId++, listener);
    this.conns.add(conn);
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(() => this.sweep(), this.sweepMs);
      this.sweeper.unref();
    }
  }

  /** Open connections. */
  get connections(): number {
    return this.conns.size;
  }

  /** Stop keep-alive: idle connections close now, busy ones after their current response. */
  shutdown(): void {
    this.closing = true;
    for (const c of this.conns) c.shutdown();
  }

  /** Close every connection at once (fast stop, or the end of a grace period). */
  destroyAll(): void {
    for (const c of this.conns) c.destroy();
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of this.conns) {
      if (c.deadline !== 0 && now >= c.deadline) c.expire();
    }
  }

  // ---- for Connection ----

  forget(conn: Connection): void {
    this.conns.delete(conn);
    if (this.conns.size === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  complete(req: WebRequest, res: WebResponse, done: Completion): void {
    const fn = this.options.complete;
    if (fn === undefined) return;
    try {
      fn(req, res, done);
    } catch (err) {
      this.report("internal", err, req.connection);
    }
  }

  report(kind: "parse" | "handler" | "send" | "internal", err: unknown, conn: WebConnection): void {
    try {
      this.options.report?.(kind, err, conn);
    } catch {
      // a reporter must not break a connection
    }
  }

  parseErrorResponse(status: number, conn: WebConnection): void {
    try {
      this.options.rejected?.(status, conn);
    } catch {
      // idem
    }
  }

  errorResponse(status: number, req: WebRequest | undefined): WebResponse {
    const fn = this.options.errorResponse;
    if (fn) {
      try {
        return fn(status, req);
      } catch (err) {
        if (req) this.report("internal", err, req.connection);
      }
    }
    return errorPage(status);
  }
}
