/**
 * The per-peer keep-alive HTTP/1.1 connection pool (nginx's `keepalive N` cache, with
 * proxy_connect/send/read_timeout), on undici.
 *
 * Why undici, and why not its Pool: measured behind the same node:http proxy (docs/upstream.md,
 * bench/suites/pool.ts), undici's client moves about 1.5× the requests of node:http's Agent.
 * But undici's `Pool` caps *all* connections and queues the rest inside itself, while a proxy
 * wants nginx's semantics: as many connections as there are requests in flight (the group's
 * maxConns and queue decide concurrency, visibly), and a cap on the *idle* ones kept for reuse.
 * So each connection here is one undici `Client` (pipelining 1), kept LIFO on an idle stack
 * (the most recently used socket is the least likely to have been closed by the peer), at most
 * `idle` of them; a connection beyond the cap closes when its response ends.
 *
 * Sockets are made by our own connector, which gives: the connect timeout (as a classified
 * error), unix sockets, and the socket itself for the send timeout, which undici lacks: a
 * watchdog fails the attempt when data is waiting in the socket's buffer and no byte has been
 * written for `sendTimeout` (nginx's "between two successive write operations").
 *
 * A request that fails on a reused connection before any response byte arrived (the peer
 * closed it while idle) is replayed once on a fresh connection when that is safe: the method is
 * idempotent and the body is in memory. Every other failure is an `UpstreamError`.
 *
 * The caller must consume or destroy `response.body`: the connection goes back to the pool
 * when the body has been read to its end, and is closed if the body is destroyed early.
 */
import { request as httpRequest } from "node:http";
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import { Client } from "undici";
import { toAbortSignal } from "../core/abort.ts";
import { classifyError, UpstreamError } from "./errors.ts";
import { type PeerTarget, targetName } from "./peer.ts";
import {
  closes,
  dial,
  idempotent,
  isReplayable,
  type PoolOptions,
  type PoolStats,
  requestHeaders,
  type UpgradeResponse,
  type UpstreamRequest,
  type UpstreamResponse,
} from "./transport.ts";

/** One connection: an undici Client over one socket made by `dial`. */
class Connection {
  readonly client: Client;
  socket: Socket | undefined;
  requests = 0;
  closed = false;

  constructor(pool: UndiciPool, target: PeerTarget, options: PoolOptions, connectTimeout: number) {
    const origin = target.kind === "unix" ? "http://localhost" : `http://${targetName(target)}`;
    this.client = new Client(origin, {
      pipelining: 1,
      keepAliveTimeout: Math.max(1, options.idleTimeout),
      keepAliveMaxTimeout: Math.max(1, options.idleTimeout),
      keepAliveTimeoutThreshold: 1000,
      headersTimeout: options.readTimeout,
      bodyTimeout: options.readTimeout,
      maxRequestsPerClient: options.maxRequests,
      connect: (_opts, callback) => {
        dial(target, connectTimeout).then(
          (socket) => {
            this.socket = socket;
            callback(null, socket);
          },
          (err: Error) => callback(err, null),
        );
      },
    });
    // One Client is one connection: once its socket is gone, so is it.
    this.client.on("disconnect", () => pool.dropConnection(this));
    this.client.on("connectionError", () => pool.dropConnection(this));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close().catch(() => {});
  }

  destroy(): void {
    this.closed = true;
    this.client.destroy().catch(() => {});
  }
}

export class UndiciPool {
  readonly target: PeerTarget;
  readonly peer: string;
  private readonly options: PoolOptions;
  private readonly idleStack: Connection[] = [];
  private readonly open = new Set<Connection>();
  private closing = false;
  private drained: (() => void) | undefined;
  private created = 0;
  private reusedCount = 0;
  private requestCount = 0;

  constructor(target: PeerTarget, options: PoolOptions) {
    this.target = target;
    this.peer = targetName(target);
    this.options = options;
  }

  stats(): PoolStats {
    return {
      open: this.open.size,
      idle: this.idleStack.length,
      created: this.created,
      reused: this.reusedCount,
      requests: this.requestCount,
    };
  }

  /**
   * Send one request and resolve with the response head; the body streams. Rejects with an
   * `UpstreamError` (refused, reset, timeout, badResponse, aborted).
   */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    if (this.closing) {
      throw new UpstreamError("unavailable", "connect", {
        message: "pool closed",
        peer: this.peer,
        sent: false,
      });
    }
    const conn = this.take(req.connectTimeout);
    try {
      return await this.send(conn, req);
    } catch (err) {
      const e = err as UpstreamError;
      const stale =
        conn.requests > 1 &&
        e.kind === "reset" &&
        e.phase !== "connect" &&
        !req.signal?.aborted &&
        idempotent.has(req.method.toUpperCase()) &&
        isReplayable(req.body);
      if (!stale) throw err;
      return await this.send(this.fresh(req.connectTimeout), req);
    }
  }

  /**
   * Send an `Upgrade` request (WebSocket...) on a new connection, never pooled. Resolves with
   * the upgraded socket on 101; any other status resolves as an ordinary response (its body to
   * be read or destroyed), so the proxy can relay a 401 or a 426.
   */
  upgrade(req: UpstreamRequest): Promise<UpgradeResponse | UpstreamResponse> {
    const headers = requestHeaders(req.headers, false, true);
    return new Promise((resolve, reject) => {
      let connected = false;
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        reject(classifyError(err, { peer: this.peer, connected }));
      };
      const r = httpRequest({
        method: req.method,
        path: req.path,
        headers,
        ...(req.signal !== undefined ? { signal: toAbortSignal(req.signal) } : {}),
        createConnection: (_o, cb) => {
          dial(this.target, req.connectTimeout ?? this.options.connectTimeout).then(
            (socket) => {
              connected = true;
              cb?.(null, socket);
            },
            (err: Error) => cb?.(err, undefined as unknown as Socket),
          );
          return undefined;
        },
      });
      const readTimeout = req.readTimeout ?? this.options.readTimeout;
      if (readTimeout > 0) {
        r.setTimeout(readTimeout, () =>
          r.destroy(
            new UpstreamError("timeout", "read", {
              message: "upstream timed out (upgrade response)",
              peer: this.peer,
            }),
          ),
        );
      }
      r.on("error", fail);
      r.on("upgrade", (res, socket, head) => {
        settled = true;
        socket.setTimeout(0);
        resolve({
          status: 101,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          socket: socket as Socket,
          head,
        });
      });
      r.on("response", (res) => {
        settled = true;
        r.setTimeout(0);
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = v;
        resolve({
          status: res.statusCode ?? 502,
          headers: out,
          body: res,
          peer: this.peer,
          reused: false,
        });
      });
      const body = req.body;
      if (body === undefined || body === null) r.end();
      else if (isReplayable(body)) r.end(body as Buffer);
      else (body as Readable).pipe(r);
    });
  }

  /** Stop taking requests, close idle connections, resolve once busy ones have finished. */
  close(): Promise<void> {
    this.closing = true;
    for (const conn of this.idleStack.splice(0)) {
      this.open.delete(conn);
      conn.close();
    }
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.drained = resolve;
    });
  }

  /** Close every connection now, busy ones included. */
  destroy(): void {
    this.closing = true;
    for (const conn of this.open) conn.destroy();
    this.open.clear();
    this.idleStack.length = 0;
    this.drained?.();
  }

  /** @internal A connection's socket went away. */
  dropConnection(conn: Connection): void {
    const i = this.idleStack.indexOf(conn);
    if (i >= 0) this.idleStack.splice(i, 1);
    if (this.open.delete(conn)) conn.destroy();
    this.checkDrained();
  }

  private checkDrained(): void {
    if (this.closing && this.open.size === 0 && this.drained) {
      const done = this.drained;
      this.drained = undefined;
      done();
    }
  }

  private take(connectTimeout?: number): Connection {
    for (;;) {
      const conn = this.idleStack.pop();
      if (conn === undefined) return this.fresh(connectTimeout);
      if (!conn.closed && !conn.client.destroyed && !conn.client.closed) return conn;
      this.open.delete(conn);
    }
  }

  private fresh(connectTimeout = this.options.connectTimeout): Connection {
    const conn = new Connection(this, this.target, this.options, connectTimeout);
    this.open.add(conn);
    this.created++;
    return conn;
  }

  /** The request finished and its body was read to the end: keep or close the connection. */
  private recycle(conn: Connection): void {
    if (
      this.closing ||
      conn.closed ||
      conn.client.destroyed ||
      conn.requests >= this.options.maxRequests ||
      this.idleStack.length >= this.options.idle
    ) {
      this.open.delete(conn);
      conn.close();
      this.checkDrained();
      return;
    }
    this.idleStack.push(conn);
  }

  private discard(conn: Connection): void {
    this.open.delete(conn);
    conn.destroy();
    this.checkDrained();
  }

  private async send(conn: Connection, req: UpstreamRequest): Promise<UpstreamResponse> {
    conn.requests++;
    this.requestCount++;
    const reused = conn.requests > 1;
    if (reused) this.reusedCount++;
    const inMemory = isReplayable(req.body);
    const readTimeout = req.readTimeout ?? this.options.readTimeout;
    const state = { peer: this.peer, connected: reused, headers: false, sending: false };
    const sendTimeout = req.sendTimeout ?? this.options.sendTimeout;
    const watchdog = this.sendWatchdog(conn, sendTimeout);
    try {
      const res = await conn.client.request({
        method: req.method as "GET",
        path: req.path,
        headers: requestHeaders(req.headers, inMemory),
        body: (req.body ?? null) as Buffer | null,
        signal: req.signal !== undefined ? toAbortSignal(req.signal) : null,
        headersTimeout: readTimeout,
        bodyTimeout: req.bodyTimeout ?? readTimeout,
      });
      state.headers = true;
      watchdog.stop();
      const body = res.body;
      // A peer that says it closes (gunicorn's sync workers always do) must not be reused: the
      // next request would fail on the dead socket and be replayed on a fresh one.
      const closing = closes(res.headers.connection);
      let ended = false;
      body.once("end", () => {
        ended = true;
      });
      body.once("close", () => (ended && !closing ? this.recycle(conn) : this.discard(conn)));
      return {
        status: res.statusCode,
        headers: res.headers as Record<string, string | string[]>,
        body,
        peer: this.peer,
        reused,
      };
    } catch (err) {
      watchdog.stop();
      state.connected = state.connected || conn.socket !== undefined;
      state.sending = watchdog.stalled || (conn.socket?.writableLength ?? 0) > 0;
      this.discard(conn);
      if (watchdog.stalled) {
        throw new UpstreamError("timeout", "send", {
          message: `upstream timed out sending the request (no progress for ${sendTimeout} ms)`,
          peer: this.peer,
          cause: err,
        });
      }
      throw classifyError(err, state);
    }
  }

  /**
   * nginx's proxy_send_timeout: fail when bytes wait in the socket and none was written for
   * `sendTimeout`. Runs until the response head arrives.
   */
  private sendWatchdog(conn: Connection, ms: number) {
    const w = { stalled: false, stop: () => clearTimeout(timer) };
    let last = -1;
    let timer: NodeJS.Timeout | undefined;
    // bytesWritten counts what is still buffered too: what reached the kernel is the difference.
    const flushed = (s: Socket) => s.bytesWritten - s.writableLength;
    const tick = () => {
      const s = conn.socket;
      if (s && s.writableLength > 0 && flushed(s) === last) {
        w.stalled = true;
        s.destroy();
        return;
      }
      last = s ? flushed(s) : -1;
      timer = setTimeout(tick, ms);
      timer.unref();
    };
    if (ms > 0) {
      timer = setTimeout(tick, ms);
      timer.unref();
    }
    return w;
  }
}
