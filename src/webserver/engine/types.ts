/**
 * What an engine needs from the rest of the web server, and what it is given: the contract
 * between the HTTP engines (node:http, node:http2, and a lean HTTP/1.1 engine of our own later,
 * issue 10) and the pipeline. An engine parses requests, builds `EngineRequest`s, asks the
 * handler for an `Outcome`, writes its response, and reports a `Completion`.
 */
import type { Socket } from "node:net";
import type { SecureContext } from "node:tls";
import type { Logger } from "../../core/logger.ts";
import type { WebConnection, WebResponse } from "../exchange.ts";
import type { Completion } from "../module.ts";
import type { EngineRequest } from "./request.ts";

export interface Outcome {
  response: WebResponse;
  /** Close the connection after this response (malformed input, an unread body). */
  close: boolean;
  /** Called once the response is written or abandoned: runs the log phase. */
  complete(done: Completion): void;
}

export interface EngineHandler {
  /**
   * Answer one request: the outcome at once when every module answered synchronously, else a
   * promise of it. Never rejects: every failure is already a response.
   */
  handle(req: EngineRequest): Outcome | Promise<Outcome>;
  /** A request refused before it was one (a malformed head): for the access log. */
  rejected(connection: WebConnection, status: number, reason: string): void;
}

/** Timeouts in milliseconds, sizes in bytes. */
export interface EngineOptions {
  /** The HTTP/1.x engine: node:http (http1.ts) or Brigade's own (h1/). */
  engine: "node" | "brigade";
  headerTimeout: number;
  bodyTimeout: number;
  /** Bytes per second a request body must keep up after `bodyMinRateGrace` ms; 0: off. */
  bodyMinRate: number;
  bodyMinRateGrace: number;
  keepaliveTimeout: number;
  keepaliveRequests: number;
  sendTimeout: number;
  maxRequestLine: number;
  maxHeaderSize: number;
  maxHeaders: number;
  /** The `Server` value, or undefined for none. */
  serverHeader: string | undefined;
  mergeSlashes: boolean;
  logger: Logger;
  /**
   * Asked for every accepted connection before anything is read from it (the per-address
   * connection cap, src/webserver/limits/connections.ts); false: the engine closes it.
   */
  admit?: ((socket: Socket) => boolean) | undefined;
}

/** TLS on a listener: a context per server, picked by SNI. */
export interface ListenerTls {
  /** The default server's certificate chain and key (PEM): no SNI, or an unknown name. */
  cert: Buffer;
  key: Buffer;
  /** The context for an SNI name, or undefined for the default. */
  contextFor(servername: string): SecureContext | undefined;
  /** Offer h2 by ALPN. */
  http2: boolean;
}

/** One listening socket as the engine serves it. */
export interface ListenerPlan {
  /** The listen key (`formatListen`): what `WebConnection.listener` says. */
  key: string;
  tls: ListenerTls | undefined;
}

/** An HTTP/1.x engine as the listener drives it (node:http's, or Brigade's own). */
export interface Http1Server {
  /** Serve an accepted connection (TLS: after the handshake, for `http/1.1` by ALPN). */
  attach(socket: Socket): void;
  startTracking(): void;
  readonly connectionCount: number;
  readonly sendTimeouts: number;
  /** Timeouts and draining, with performance.now(). */
  sweep(now: number): void;
  drain(): void;
  destroyAll(): void;
}
