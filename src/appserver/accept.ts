/**
 * Accepting connections with a gate: a worker can stop accepting on a shared listening socket
 * and start again, without closing the socket (the master holds it) and without refusing anyone.
 *
 * Node has no way to stop polling a listening socket short of closing it: `net.Server.close()`
 * closes the worker's descriptor, and a listening fd cannot be duplicated from JavaScript. So
 * a paused acceptor closes its descriptor, and resuming listens on a *fresh copy* of the socket
 * that the master sends over the IPC channel (`ctx.acquireListener`, SCM_RIGHTS). A few copies
 * are kept ready (fetched in the background as they are used), so that resuming does not wait
 * for the master even when requests are shorter than an IPC round trip. While a
 * worker does not accept, connections wait in the kernel's queue of the one socket, where every
 * other worker accepts them: nothing is refused, nothing is queued inside a busy worker.
 *
 * `pause()` may be called from inside the `onSocket` callback: closing the descriptor there also
 * ends libuv's accept loop, so exactly one connection is taken whatever that loop does (libuv
 * 1.52, in Node 24, takes one connection per readiness event anyway; older ones took every
 * queued connection in one go). An async worker has several acceptors per listening socket
 * (APP_ACCEPTORS), each on its own descriptor and copies; a sync worker one.
 *
 * In thread mode there are no copies (threads share the descriptor table): `pausable` is false
 * and the acceptor always accepts.
 */
import net from "node:net";
import type { Logger } from "../core/logger.ts";
import type { WorkerContext, WorkerListen } from "../process/worker.ts";

/**
 * Descriptors of each shared listening socket an async app worker process accepts on
 * (`PoolOptions.acceptors`), an Acceptor each: libuv takes one new connection per listening
 * handle and event-loop turn, so behind a proxy that opens a connection per request (nginx's
 * `proxy_pass` without an upstream keepalive) a worker with one takes them one per turn. The
 * measurement is in docs/appserver.md.
 */
export const APP_ACCEPTORS = 8;

export class Acceptor {
  private readonly ctx: WorkerContext;
  private readonly index: number;
  private readonly initial: WorkerListen;
  private readonly onSocket: (socket: net.Socket) => void;
  private readonly logger: Logger;
  private server: net.Server | undefined;
  /** Copies of the socket ready for the next resumes. */
  private readonly spares: object[] = [];
  private fetching = 0;
  private used = false;
  private closed = false;
  /** Desired state; the acceptor converges to it when a copy arrives. */
  private wanted = true;
  readonly pausable: boolean;

  constructor(
    ctx: WorkerContext,
    index: number,
    initial: WorkerListen,
    onSocket: (socket: net.Socket) => void,
    logger: Logger,
  ) {
    this.ctx = ctx;
    this.index = index;
    this.initial = initial;
    this.onSocket = onSocket;
    this.logger = logger;
    this.pausable = ctx.canAcquireListener && "fd" in initial;
  }

  /** Accepting right now? */
  get accepting(): boolean {
    return this.server !== undefined;
  }

  /** Listen on the inherited socket; resolves once listening (rejects on error). */
  start(): Promise<void> {
    this.used = true;
    return this.listenOn(this.initial);
  }

  /** How many copies to keep ready. */
  static readonly spareCopies = 4;

  /** Stop accepting (a no-op when not pausable). Safe inside `onSocket`. */
  pause(): void {
    this.wanted = false;
    if (!this.pausable || this.server === undefined) return;
    const server = this.server;
    this.server = undefined;
    server.close();
    this.prefetch();
  }

  /** Accept again, on a fresh copy of the socket (fetched now if none is ready). */
  resume(): void {
    this.wanted = true;
    if (this.closed || this.server !== undefined) return;
    if (!this.used) {
      void this.start().catch((error: unknown) => this.fail(error));
      return;
    }
    const handle = this.spares.shift();
    this.prefetch();
    if (handle === undefined) return;
    this.listenOn(handle).catch((error: unknown) => this.fail(error));
  }

  /** Stop for good: the descriptor and any spare copy are closed. */
  close(): void {
    this.closed = true;
    this.wanted = false;
    const server = this.server;
    this.server = undefined;
    server?.close();
    this.dropSpare();
  }

  private dropSpare(): void {
    for (const spare of this.spares.splice(0)) {
      try {
        (spare as { close?: () => void }).close?.();
      } catch {
        // already closed
      }
    }
  }

  private prefetch(): void {
    if (!this.pausable) return;
    while (!this.closed && this.spares.length + this.fetching < Acceptor.spareCopies) {
      this.fetching++;
      this.ctx.acquireListener(this.index).then(
        (handle) => {
          this.fetching--;
          this.spares.push(handle);
          if (this.closed) this.dropSpare();
          else if (this.wanted && this.server === undefined) this.resume();
        },
        (error: unknown) => {
          this.fetching--;
          if (!this.closed) this.fail(error);
        },
      );
      // One failure is enough to know: do not ask again in a loop.
      if (this.failed) return;
    }
  }

  private listenOn(target: WorkerListen | object): Promise<void> {
    const server = net.createServer({ noDelay: true }, (socket) => this.onSocket(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      const failed = (error: Error) => {
        if (this.server === server) this.server = undefined;
        reject(error);
      };
      server.once("error", failed);
      // Closed by a pause before it was listening: 'listening' never comes, 'close' does.
      server.once("close", () => resolve());
      server.listen(target as net.ListenOptions, () => {
        server.off("error", failed);
        server.on("error", (error) => this.logger.error("accept failed", { error }));
        resolve();
      });
    });
  }

  private failed = false;

  private fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.logger.error("cannot accept on this socket any more", { listener: this.index, error });
  }
}
