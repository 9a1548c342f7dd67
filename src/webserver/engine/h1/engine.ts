/**
 * Brigade's own HTTP/1.x engine (`web.engine: "brigade"`): the same contract as the node:http
 * engine (engine/http1.ts) towards the listener and the pipeline, on raw `net`/`tls` sockets with
 * our strict parser (core/http1/parser.ts) instead of node:http's per-request objects and streams.
 *
 * The listener (engine/listener.ts) hands it accepted sockets (`attach`) and runs its `sweep`
 * (timeouts), `drain` (graceful stop) and `destroyAll` (fast stop); each connection
 * (h1/connection.ts) builds `EngineRequest`s, asks the pipeline for an `Outcome`, writes it and
 * reports the `Completion`. What it owns beyond node:http: the parser's strictness (smuggling
 * families refused, see the corpus), 414/431/413/501/505 without guessing, writing every body
 * kind with one write or writev where it fits, and the send timeout on output that does not move.
 */
import type { Socket } from "node:net";
import { defaultLimits, type ParseError, type ParserLimits } from "../../../core/http1/parser.ts";
import { DRAIN_IDLE_MS } from "../connection.ts";
import type { EngineHandler, EngineOptions } from "../types.ts";
import { Connection } from "./connection.ts";

/** How long a connection we closed keeps reading (and dropping) what the client still sends. */
const LINGER_MS = 2000;

export class BrigadeHttp1Engine {
  readonly handler: EngineHandler;
  readonly opts: EngineOptions;
  readonly limits: ParserLimits;
  /** `server: ...\r\n`, or "" for none. */
  readonly serverLine: string;
  readonly lingerMs = LINGER_MS;
  /** Set by {@link drain}: no more keep-alive. */
  draining = false;
  /** Connections dropped because the client stopped reading (send timeout). */
  sendTimeouts = 0;
  private readonly listener: string;
  private readonly conns = new Set<Connection>();

  constructor(listener: string, handler: EngineHandler, opts: EngineOptions) {
    this.listener = listener;
    this.handler = handler;
    this.opts = opts;
    this.limits = {
      ...defaultLimits,
      maxStartLine: opts.maxRequestLine,
      maxHeaderBytes: opts.maxHeaderSize,
      maxHeaderCount: opts.maxHeaders,
      // Per location (the pipeline sets EngineRequest.bodyLimit); checked as the body is read.
      maxBodySize: 0,
    };
    const server = opts.serverHeader;
    if (server !== undefined && /[\r\n]/.test(server)) throw new Error("serverHeader: no CR or LF");
    this.serverLine = server === undefined ? "" : `server: ${server}\r\n`;
  }

  /**
   * Serve an accepted connection (a TLS socket once its handshake is done). While draining, one
   * accepted just before the listener closed is still served, with `connection: close`.
   */
  attach(socket: Socket): void {
    this.conns.add(new Connection(this, socket, this.listener));
  }

  /** Nothing to start: timeouts are the sweep's (node:http's engine needs this). */
  startTracking(): void {}

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Timeouts and draining; called by the listener's sweep with performance.now(). */
  sweep(now: number): void {
    const minRate = this.opts.bodyMinRate;
    const grace = this.opts.bodyMinRateGrace;
    for (const c of this.conns) {
      if (c.deadline !== 0 && now >= c.deadline) c.expire(now);
      else if (this.draining && c.idle && now - c.idleSince >= DRAIN_IDLE_MS) c.endSocket();
      else if (minRate > 0) c.checkBodyRate(now, minRate, grace);
    }
  }

  /** Stop keeping connections alive: each finishes its current request, then closes. */
  drain(): void {
    this.draining = true;
  }

  /** Drop every connection now (fast stop). */
  destroyAll(): void {
    for (const c of this.conns) c.destroy();
  }

  // ---- for Connection ----

  forget(conn: Connection): void {
    this.conns.delete(conn);
  }

  sendTimedOut(conn: Connection): void {
    this.sendTimeouts++;
    this.opts.logger.info("client stopped reading; closing", {
      client: conn.base.remoteAddress,
      timeout: this.opts.sendTimeout / 1000,
    });
  }

  /** A body that broke the grammar after its head was accepted: for the log. */
  rejectedBody(conn: Connection, err: ParseError): void {
    this.opts.logger.debug("malformed request body", {
      client: conn.base.remoteAddress,
      error: err.code,
    });
  }
}
