/**
 * The per-peer keep-alive HTTP/1.1 connection pool (nginx's `keepalive N` cache, with
 * proxy_connect/send/read_timeout): what the group, the proxy, the cache and the forward proxy
 * send requests through.
 *
 * Semantics (both transports): as many connections as there are requests in flight (the
 * group's maxConns and queue decide concurrency, visibly), and a cap on the *idle* ones kept
 * for reuse, LIFO (the most recently used socket is the least likely to have been closed by
 * the peer); a connection beyond the cap closes when its response ends. A request that fails
 * on a reused connection before any response byte arrived (the peer closed it while idle) is
 * replayed once on a fresh connection when that is safe: the method is idempotent and the body
 * is in memory. Every other failure is an `UpstreamError`.
 *
 * The transport is Brigade's own HTTP/1.1 client (h1.ts: `net` sockets, the engine's strict
 * parser in response mode). undici's (undici.ts) stays as a fallback, chosen with
 * `BRIGADE_UPSTREAM_CLIENT=undici` (for side-by-side measurements, and in case).
 *
 * The caller must consume or destroy `response.body`: the connection goes back to the pool
 * when the response has been read to its end, and is closed if the body is destroyed early.
 */
import { H1Pool } from "./h1.ts";
import type { PeerTarget } from "./peer.ts";
import type {
  PoolOptions,
  PoolStats,
  ResponseHandler,
  UpgradeResponse,
  UpstreamRequest,
  UpstreamResponse,
} from "./transport.ts";
import { UndiciPool } from "./undici.ts";

export type {
  PoolOptions,
  PoolStats,
  RequestHeaders,
  ResponseHandler,
  UpgradeResponse,
  UpstreamRequest,
  UpstreamResponse,
} from "./transport.ts";
export { dial, requestHeaders } from "./transport.ts";

export type UpstreamClient = "brigade" | "undici";

/** The transport new pools use: `BRIGADE_UPSTREAM_CLIENT` (brigade, the default, or undici). */
export function defaultClient(): UpstreamClient {
  return process.env.BRIGADE_UPSTREAM_CLIENT === "undici" ? "undici" : "brigade";
}

export class PeerPool {
  readonly target: PeerTarget;
  readonly peer: string;
  readonly client: UpstreamClient;
  private readonly impl: H1Pool | UndiciPool;
  /** `impl` when it is Brigade's transport (which has `send`). */
  private readonly h1: H1Pool | undefined;

  constructor(target: PeerTarget, options: PoolOptions, client: UpstreamClient = defaultClient()) {
    this.client = client;
    this.impl = client === "undici" ? new UndiciPool(target, options) : new H1Pool(target, options);
    this.h1 = this.impl instanceof H1Pool ? this.impl : undefined;
    this.target = target;
    this.peer = this.impl.peer;
  }

  stats(): PoolStats {
    return this.impl.stats();
  }

  /**
   * Send one request and resolve with the response head; the body streams. Rejects with an
   * `UpstreamError` (refused, reset, timeout, badResponse, aborted).
   */
  request(req: UpstreamRequest): Promise<UpstreamResponse> {
    return this.impl.request(req);
  }

  /**
   * `request` with callbacks: exactly one of `handler`'s methods is called, once (Brigade's
   * transport: synchronously from the socket's events, without a promise; possibly before
   * `send` returns).
   */
  send(req: UpstreamRequest, handler: ResponseHandler<UpstreamResponse>): void {
    const h1 = this.h1;
    if (h1 !== undefined) {
      h1.send(req, handler);
      return;
    }
    this.impl.request(req).then(
      (res) => handler.onResponse(res),
      (err: unknown) => handler.onError(err),
    );
  }

  /**
   * Send an `Upgrade` request (WebSocket...) on a new connection, never pooled. Resolves with
   * the upgraded socket on 101; any other status resolves as an ordinary response (its body to
   * be read or destroyed), so the proxy can relay a 401 or a 426.
   */
  upgrade(req: UpstreamRequest): Promise<UpgradeResponse | UpstreamResponse> {
    return this.impl.upgrade(req);
  }

  /** Stop taking requests, close idle connections, resolve once busy ones have finished. */
  close(): Promise<void> {
    return this.impl.close();
  }

  /** Close every connection now, busy ones included. */
  destroy(): void {
    this.impl.destroy();
  }
}
