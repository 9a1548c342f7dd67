/**
 * The engine as a worker runs it: one accepting server per listening socket (net for plain
 * HTTP, tls for HTTPS with SNI and ALPN), each connection handed to the HTTP/1 engine or, when
 * the client chose `h2` by ALPN, to the HTTP/2 engine. Accepting is kept apart from the
 * protocol servers so that a graceful stop can stop accepting without node:http closing idle
 * keep-alive connections at once (its `close()` does; we close them only once idle for a
 * moment, so a client already sending its next request is not reset).
 */
import net from "node:net";
import tls from "node:tls";
import { sweepInterval } from "./connection.ts";
import { BrigadeHttp1Engine } from "./h1/engine.ts";
import { Http1Engine } from "./http1.ts";
import { Http2Engine } from "./http2.ts";
import type { EngineHandler, EngineOptions, Http1Server, ListenerPlan } from "./types.ts";

/**
 * Descriptors of each plain-HTTP listening socket a web worker process listens on
 * (`PoolOptions.acceptors`; one of a TLS listener: `webAcceptors`, webserver/cli.ts): libuv
 * takes one new connection per listening handle and event-loop turn, so with one, a burst of 256
 * reconnecting clients (each every `keepaliveRequests`-th request, 1000 by default as nginx's)
 * waits up to 256 turns, each serving every ready connection. The measurement is in
 * docs/engine.md (Latency).
 */
export const WEB_ACCEPTORS = 8;

/** What `server.listen()` takes: an inherited descriptor or an address (threads, tests). */
export type ListenTarget =
  | { fd: number; also?: readonly number[] }
  | { host: string; port: number; reusePort?: boolean }
  | { path: string };

interface Listening {
  readonly plan: ListenerPlan;
  /** One server per descriptor of the listening socket (the first bound or inherited). */
  readonly accepts: net.Server[];
  readonly h1: Http1Server;
  readonly h2: Http2Engine | undefined;
}

export class WebEngine {
  private readonly handler: EngineHandler;
  private readonly opts: EngineOptions;
  private readonly listening: Listening[] = [];
  private readonly timer: NodeJS.Timeout;
  private stopping = false;
  private idleWaiters: (() => void)[] = [];

  constructor(handler: EngineHandler, opts: EngineOptions) {
    this.handler = handler;
    this.opts = opts;
    // Brigade's engine also times heads and idle connections by the sweep (node:http does its own).
    const own = opts.engine === "brigade" ? [opts.headerTimeout, opts.keepaliveTimeout] : [];
    this.timer = setInterval(
      () => this.sweep(),
      sweepInterval(opts.bodyTimeout, opts.sendTimeout, ...own),
    );
    this.timer.unref();
  }

  /** Start serving `plan` on `target`; resolves once listening, with the bound address. */
  listen(plan: ListenerPlan, target: ListenTarget): Promise<net.AddressInfo | string | null> {
    const h1: Http1Server =
      this.opts.engine === "brigade"
        ? new BrigadeHttp1Engine(plan.key, this.handler, this.opts)
        : new Http1Engine(plan.key, this.handler, this.opts);
    h1.startTracking();
    const h2 = plan.tls?.http2 ? new Http2Engine(plan.key, this.handler, this.opts) : undefined;
    const server = (): net.Server => this.server(plan, h1, h2);
    const first = server();
    const accepts = [first];
    this.listening.push({ plan, accepts, h1, h2 });
    // More descriptors of the same socket (ListenTarget `also`): one more accept per event-loop
    // turn each (libuv takes one connection per turn and listening handle).
    const also = "fd" in target ? (target.also ?? []) : [];
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      first.once("error", onError);
      first.listen("fd" in target ? { fd: target.fd } : target, () => {
        first.off("error", onError);
        if (!this.stopping)
          for (const fd of also) {
            const more = server();
            accepts.push(more);
            more.listen({ fd });
          }
        resolve(first.address());
      });
    });
  }

  /** A server accepting connections for `plan`'s listener, handing them to its engines. */
  private server(plan: ListenerPlan, h1: Http1Server, h2: Http2Engine | undefined): net.Server {
    let accept: net.Server;
    if (plan.tls) {
      const t = plan.tls;
      accept = tls.createServer({
        cert: t.cert,
        key: t.key,
        ALPNProtocols: t.http2 ? ["h2", "http/1.1"] : ["http/1.1"],
        SNICallback: (servername, cb) => cb(null, t.contextFor(servername)),
        handshakeTimeout: this.opts.headerTimeout,
      });
      accept.on("secureConnection", (socket: tls.TLSSocket) => {
        if (socket.alpnProtocol === "h2" && h2) h2.attach(socket);
        else h1.attach(socket);
      });
      accept.on("tlsClientError", (error, socket) => {
        this.opts.logger.debug("TLS handshake failed", {
          error: error.message,
          client: socket.remoteAddress,
        });
        socket.destroy();
      });
    } else {
      accept = net.createServer({ noDelay: true }, (socket) => {
        if (this.opts.admit && !this.opts.admit(socket)) socket.destroy();
        else h1.attach(socket);
      });
    }
    if (plan.tls && this.opts.admit) {
      // Before the TLS handshake: a refused client costs no handshake.
      const admit = this.opts.admit;
      accept.on("connection", (socket: net.Socket) => {
        if (!admit(socket)) socket.destroy();
      });
    }
    accept.on("error", (error) =>
      this.opts.logger.error("listener error", { error, listener: plan.key }),
    );
    return accept;
  }

  /** Open connections (HTTP/1 connections and HTTP/2 sessions). */
  get connectionCount(): number {
    let n = 0;
    for (const l of this.listening) n += l.h1.connectionCount + (l.h2?.connectionCount ?? 0);
    return n;
  }

  /** Connections dropped because their client stopped reading. */
  get sendTimeouts(): number {
    let n = 0;
    for (const l of this.listening) n += l.h1.sendTimeouts + (l.h2?.sendTimeouts ?? 0);
    return n;
  }

  private sweep(): void {
    const now = performance.now();
    for (const l of this.listening) {
      l.h1.sweep(now);
      l.h2?.sweep(now);
    }
    if (this.stopping && this.connectionCount === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * Stop accepting; with `graceful`, let every connection finish what it holds (HTTP/1: the
   * request in flight, answered with `Connection: close`; HTTP/2: GOAWAY) and resolve when none
   * is left; without, drop them all.
   */
  async stop(graceful: boolean): Promise<void> {
    this.stopping = true;
    for (const l of this.listening) {
      for (const a of l.accepts) if (a.listening) a.close();
      l.h1.drain();
      l.h2?.drain();
      if (!graceful) {
        l.h1.destroyAll();
        l.h2?.destroyAll();
      }
    }
    if (this.connectionCount > 0) {
      // Look more often than the sweep does, so a stop ends as soon as the last one closes.
      const poll = setInterval(() => this.sweep(), 50);
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      clearInterval(poll);
    }
    clearInterval(this.timer);
  }
}
