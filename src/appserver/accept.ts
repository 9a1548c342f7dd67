/**
 * Accepting connections with a gate: a worker can stop accepting on a shared listening socket
 * and start again, without closing the socket (the master holds it) and without refusing anyone.
 *
 * Node has no way to stop polling a listening socket short of closing it: `net.Server.close()`
 * closes the worker's descriptor, and a listening fd cannot be duplicated from JavaScript. So
 * a paused acceptor closes its descriptor, and resuming listens on a *fresh copy* of the socket
 * that the master sends over the IPC channel (`ctx.acquireListener`, SCM_RIGHTS). The copy for
 * the next resume is fetched as soon as the acceptor pauses, so resuming rarely waits. While a
 * worker does not accept, connections wait in the kernel's queue of the one socket, where every
 * other worker accepts them: nothing is refused, nothing is queued inside a busy worker.
 *
 * `pause()` may be called from inside the `onSocket` callback: closing the descriptor there also
 * ends libuv's accept loop, so exactly one connection is taken (libuv otherwise accepts every
 * queued connection in one go).
 *
 * In thread mode there are no copies (threads share the descriptor table): `pausable` is false
 * and the acceptor always accepts.
 */
import net from "node:net";
import type { Logger } from "../core/logger.ts";
import type { WorkerContext, WorkerListen } from "../process/worker.ts";

export class Acceptor {
  private readonly ctx: WorkerContext;
  private readonly index: number;
  private readonly initial: WorkerListen;
  private readonly onSocket: (socket: net.Socket) => void;
  private readonly logger: Logger;
  private server: net.Server | undefined;
  private spare: object | undefined;
  private fetching: Promise<object | undefined> | undefined;
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
    const handle = this.spare;
    if (handle === undefined) {
      this.prefetch();
      return;
    }
    this.spare = undefined;
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
    const spare = this.spare as { close?: () => void } | undefined;
    this.spare = undefined;
    try {
      spare?.close?.();
    } catch {
      // already closed
    }
  }

  private prefetch(): void {
    if (this.spare !== undefined || this.fetching !== undefined || this.closed) return;
    this.fetching = this.ctx.acquireListener(this.index).then(
      (handle) => {
        this.fetching = undefined;
        this.spare = handle;
        if (this.closed) this.dropSpare();
        else if (this.wanted && this.server === undefined) this.resume();
        return handle;
      },
      (error: unknown) => {
        this.fetching = undefined;
        if (!this.closed) this.fail(error);
        return undefined;
      },
    );
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

  private fail(error: unknown): void {
    this.logger.error("cannot accept on this socket any more", { listener: this.index, error });
  }
}
