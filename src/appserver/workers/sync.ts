/**
 * `sync`: one request at a time per worker, gunicorn's sync model, for CPU-bound or blocking
 * code. The connection is closed after every response (no keep-alive), as gunicorn's sync
 * workers do.
 *
 * The guarantee: a busy sync worker is not handed another connection while another worker could
 * take it. A worker accepts one connection at a time (its acceptors pause inside the accept
 * callback, which also stops libuv from accepting every queued connection in one go), and does
 * not accept again while a request is in the app: the next connection stays in the kernel's
 * queue of the shared socket, where an idle worker accepts it. This holds for async handlers
 * too (a handler awaiting I/O leaves the event loop free, and a plain Node server would accept
 * more connections meanwhile, queuing their requests behind the first).
 *
 * A connection that brings no request head within `slowHeadMs` of being accepted is a slow
 * client: the worker (still idle) accepts the next connection meanwhile, so a few slow clients
 * cannot hold every worker the way they hold gunicorn's. A request whose head completes while
 * the worker is busy waits for the current one. Sync workers still belong behind a buffering
 * proxy (`brigade web`, nginx), which hands over only complete requests.
 *
 * An upgraded connection (a WebSocket) is one request that lasts until the connection closes:
 * the worker takes nothing else meanwhile, as a sync worker of gunicorn's would. WebSockets
 * belong on async workers.
 */
import type { Socket } from "node:net";
import type { Kind, KindOptions } from "./kind.ts";

/** How long a just-accepted connection may take to bring its request head before the worker accepts another. */
const slowHeadMs = 100;

export class SyncKind implements Kind {
  private readonly o: KindOptions;
  private busy = false;
  private draining = false;
  private readonly queue: { gone: () => boolean; run: () => void }[] = [];
  private readonly waiting = new Map<Socket, NodeJS.Timeout>();

  constructor(options: KindOptions) {
    this.o = options;
  }

  private pause(): void {
    for (const a of this.o.acceptors) a.pause();
  }

  private resume(): void {
    if (this.draining || this.busy) return;
    for (const a of this.o.acceptors) a.resume();
  }

  accepted(socket: Socket): void {
    this.pause();
    const timer = setTimeout(() => {
      this.waiting.delete(socket);
      this.resume();
    }, slowHeadMs);
    timer.unref();
    this.waiting.set(socket, timer);
  }

  closed(socket: Socket): void {
    const timer = this.waiting.get(socket);
    if (timer !== undefined) {
      // Closed without a request (a probe, a client giving up): take the next one.
      clearTimeout(timer);
      this.waiting.delete(socket);
      this.resume();
    }
  }

  request(socket: Socket, gone: () => boolean, run: () => void): void {
    const timer = this.waiting.get(socket);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.waiting.delete(socket);
    }
    if (this.busy) {
      this.queue.push({ gone, run });
      return;
    }
    this.busy = true;
    this.pause();
    run();
  }

  finished(): void {
    this.busy = false;
    while (this.queue.length > 0) {
      const next = this.queue.shift()!;
      if (next.gone()) continue;
      this.busy = true;
      next.run();
      return;
    }
    if (this.waiting.size === 0) this.resume();
  }

  keepAlive(): boolean {
    return false;
  }

  drain(): void {
    this.draining = true;
    for (const a of this.o.acceptors) a.close();
  }
}
