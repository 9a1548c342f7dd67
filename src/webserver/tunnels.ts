/**
 * Connections taken over from the engine (WebSocket and other upgrade tunnels of the proxy,
 * CONNECT tunnels of the forward proxy): the engine no longer counts them once they are handed
 * over, so a graceful stop (TERM, a reload's old workers) would end the worker under them. They
 * register here instead (the worker service `tunnels`), and the worker's graceful stop, once the
 * engine has stopped accepting and drained its requests, lets them run until they end or the
 * grace period is nearly over (`web.gracefulTimeout` less a second, so that the worker still
 * exits by itself before the master would kill it), then closes them: nginx's old workers keep
 * serving open connections until they end or `worker_shutdown_timeout` passes.
 */
import type { Logger } from "../core/logger.ts";

/** The worker service's name (`scope.services.get(TUNNELS_SERVICE)`). */
export const TUNNELS_SERVICE = "tunnels";

/** What a module sees of the service. */
export interface TunnelRegistry {
  /** A tunnel runs: `close` ends it from outside; call the returned function once it ended. */
  add(close: () => void): () => void;
}

export class OpenTunnels implements TunnelRegistry {
  private readonly open = new Set<() => void>();
  private waiters: (() => void)[] = [];

  get size(): number {
    return this.open.size;
  }

  add(close: () => void): () => void {
    const entry = (): void => close();
    this.open.add(entry);
    return () => {
      if (!this.open.delete(entry) || this.open.size > 0) return;
      for (const w of this.waiters.splice(0)) w();
    };
  }

  /** Resolves when none is open, or after `ms`; false then. */
  private idle(ms: number): Promise<boolean> {
    if (this.open.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  /**
   * A graceful stop: wait up to `graceMs` for the tunnels to end by themselves, then close the
   * rest (and give them a moment to report, at most `settleMs`).
   */
  async drain(graceMs: number, logger?: Logger, settleMs = 500): Promise<void> {
    if (this.open.size === 0) return;
    logger?.info("stopping: open tunnels carry on until they end or the grace period is over", {
      tunnels: this.open.size,
      graceMs,
    });
    if (await this.idle(graceMs)) return;
    this.closeAll(logger, "at the end of the grace period");
    await this.idle(settleMs);
  }

  /** Close every open tunnel now (a fast stop, or the grace period is over). */
  closeAll(logger?: Logger, why = "on a fast stop"): void {
    if (this.open.size === 0) return;
    logger?.info(`closing open tunnels ${why}`, { tunnels: this.open.size });
    for (const close of [...this.open]) close();
  }
}
