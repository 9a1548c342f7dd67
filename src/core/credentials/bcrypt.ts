/**
 * bcrypt checks off the event loop. Node's crypto has no bcrypt, and a check costs what the
 * hash's cost factor says (htpasswd's default 5: ~2 ms; cost 10: ~80 ms in JavaScript), which
 * would stall every connection of the worker if done inline. So checks run in one helper thread
 * per web worker, started on first use, with bcryptjs (pure JavaScript, no native build, no
 * dependencies; bcryptjs's own async API still runs on the calling thread in 100 ms slices).
 *
 * The queue is bounded: past `maxQueue` waiting checks, `verify` rejects (the caller answers 503)
 * rather than let a flood of guesses grow memory and latency without end.
 */
import { Worker } from "node:worker_threads";

export class BcryptQueueFull extends Error {
  override readonly name = "BcryptQueueFull";
}

export class BcryptVerifier {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, (ok: boolean) => void>();
  private nextId = 1;
  private readonly maxQueue: number;

  constructor(maxQueue = 256) {
    this.maxQueue = maxQueue;
  }

  verify(hash: string, password: string): Promise<boolean> {
    if (this.pending.size >= this.maxQueue) {
      return Promise.reject(new BcryptQueueFull("too many password checks waiting"));
    }
    const w = this.thread();
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      // Holding the thread's handle only while checks wait lets an idle worker exit.
      if (this.pending.size === 1) w.ref();
      w.postMessage({ id, hash, password });
    });
  }

  close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    for (const resolve of this.pending.values()) resolve(false);
    this.pending.clear();
    return w ? w.terminate().then(() => undefined) : Promise.resolve();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL("./bcryptThread.ts", import.meta.url));
    w.unref();
    w.on("message", (m: { id: number; ok: boolean }) => {
      const resolve = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      resolve?.(m.ok);
    });
    const fail = (): void => {
      // A dead thread fails its checks (never a match) and is replaced on the next one.
      if (this.worker === w) this.worker = undefined;
      for (const resolve of this.pending.values()) resolve(false);
      this.pending.clear();
    };
    w.on("error", fail);
    w.on("exit", fail);
    this.worker = w;
    return w;
  }
}
