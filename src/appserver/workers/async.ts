/**
 * `async` (the default): an event loop serving many requests at once, like gunicorn's gevent
 * workers but native. Requests run as soon as they arrive; HTTP/1.1 keep-alive.
 *
 * `workerConnections` caps the connections a worker holds: at the cap it stops accepting (its
 * acceptors pause inside the accept callback, so not one connection more is taken) and resumes
 * when one closes. The excess waits in the kernel's queue of the shared socket for a worker with
 * room; nothing is refused. In thread mode acceptors cannot pause and the cap is not enforced.
 */
import type { Socket } from "node:net";
import type { Kind, KindOptions } from "./kind.ts";

export class AsyncKind implements Kind {
  private readonly o: KindOptions;
  private connections = 0;
  private draining = false;
  private paused = false;

  constructor(options: KindOptions) {
    this.o = options;
  }

  accepted(): void {
    this.connections++;
    if (this.connections >= this.o.maxConnections && !this.paused) {
      this.paused = true;
      for (const a of this.o.acceptors) a.pause();
    }
  }

  closed(): void {
    this.connections--;
    if (this.paused && !this.draining && this.connections < this.o.maxConnections) {
      this.paused = false;
      for (const a of this.o.acceptors) a.resume();
    }
  }

  request(_socket: Socket, _gone: () => boolean, run: () => void): void {
    run();
  }

  finished(): void {}

  keepAlive(): boolean {
    return this.o.keepAlive && !this.draining;
  }

  drain(): void {
    this.draining = true;
    for (const a of this.o.acceptors) a.close();
  }
}
