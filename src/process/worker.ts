/**
 * The worker side: the contract a worker module implements, and the runtime that hosts it.
 *
 * A worker module exports `default: WorkerMain`. The runtime (started by the master as a child
 * process running `workerEntry.ts`, or as a worker_thread) builds a `WorkerContext`, starts
 * heartbeats at once (so a worker blocked while booting is caught too), then calls main. Main
 * must:
 * - listen on each of `ctx.listeners` (pass each to `server.listen()` as is),
 * - call `ctx.ready()` once it accepts traffic: until then the master counts it as booting, and
 *   an exit before `ready()` is a boot failure,
 * - register `ctx.onStop(fn)`: stop accepting, finish in-flight work, then resolve. When every
 *   stop function has settled the runtime exits 0. `graceful` is false for a fast stop
 *   (INT/QUIT): drop connections instead of draining them. A fast stop arriving during a
 *   graceful one calls each function again with false, so they must tolerate a second call.
 * - count served requests in `ctx.stats.requests` (and any other counters): they reach the master
 *   with each heartbeat.
 * Throwing `AppLoadError` (or exiting with ExitCode.appLoad) tells the master the app cannot be
 * loaded at all: it stops everything and exits 4 instead of respawning. Any other throw before
 * `ready()` is a boot failure (respawned with backoff, then exit 3).
 */
import { ExitCode } from "../core/exitCodes.ts";
import { createLogger, type Logger } from "../core/logger.ts";
import type { FromWorker, ToWorker, WorkerInit, WorkerListen } from "./protocol.ts";

export type { WorkerListen } from "./protocol.ts";

export interface WorkerStats {
  requests: number;
  [counter: string]: number;
}

export interface WorkerContext {
  /** Stable slot number 1..N: a replacement worker takes the slot of the one it replaces. */
  readonly id: number;
  /** Incremented on each reload (HUP); workers of an older generation are being replaced. */
  readonly generation: number;
  /** `MasterOptions.workerData`, as JSON. */
  readonly data: unknown;
  /** One entry per listen spec, in order: pass each to `server.listen()` unchanged. */
  readonly listeners: readonly WorkerListen[];
  readonly logger: Logger;
  /** Tell the master this worker accepts traffic. */
  ready(): void;
  readonly stats: WorkerStats;
  /** Aborted when the master asks this worker to stop. */
  readonly signal: AbortSignal;
  /** Register a stop function: stop accepting, finish in-flight work, resolve. */
  onStop(fn: (graceful: boolean) => Promise<void> | void): void;
  /** Register a function called on USR1 after the error log is reopened (other log files). */
  onReopen(fn: () => void): void;
}

export type WorkerMain = (ctx: WorkerContext) => void | Promise<void>;

/** Thrown by a worker main when the user's app cannot be loaded: the master exits 4 at once. */
export class AppLoadError extends Error {
  override readonly name = "AppLoadError";
}

/** A transport to the master: IPC for processes, a message port for threads. */
export interface MasterChannel {
  send(msg: FromWorker): void;
  onMessage(fn: (msg: ToWorker) => void): void;
  /** Called when the master is gone (IPC disconnect): the worker then stops gracefully. */
  onLost(fn: () => void): void;
  /** Exit this worker (process.exit in a process, the thread's own exit in a thread). */
  exit(code: number): void;
}

/**
 * Run one worker to completion. Resolves never: the worker ends through `channel.exit`.
 */
export async function runWorker(init: WorkerInit, channel: MasterChannel): Promise<void> {
  const logger = createLogger(init.log).child({ tier: init.name, worker: init.id });
  const abort = new AbortController();
  const stopFns: ((graceful: boolean) => Promise<void> | void)[] = [];
  const reopenFns: (() => void)[] = [];
  const stats: WorkerStats = { requests: 0 };
  let readySent = false;
  let stopping = false;

  const beat = (): void => {
    const mem = process.memoryUsage();
    channel.send({ t: "hb", stats: { ...stats }, rss: mem.rss, heapUsed: mem.heapUsed });
  };
  beat();
  // unref: a worker whose servers are all closed must be able to exit on its own.
  setInterval(beat, init.heartbeatMs).unref();

  let fast = false;
  const stop = async (graceful: boolean): Promise<void> => {
    if (stopping) {
      // A fast stop during a graceful one: run the stop functions again to drop connections;
      // the first call's completion still ends the worker.
      if (!graceful && !fast) {
        fast = true;
        await Promise.allSettled(stopFns.map(async (fn) => fn(false)));
      }
      return;
    }
    stopping = true;
    fast = !graceful;
    abort.abort();
    const results = await Promise.allSettled(stopFns.map(async (fn) => fn(graceful)));
    for (const r of results) {
      if (r.status === "rejected") logger.error("stop function failed", { error: r.reason });
    }
    channel.exit(ExitCode.ok);
  };

  channel.onMessage((msg) => {
    if (msg.t === "stop") void stop(msg.graceful);
    else if (msg.t === "reopen") {
      logger.reopen();
      for (const fn of reopenFns) {
        try {
          fn();
        } catch (error) {
          logger.error("reopen function failed", { error });
        }
      }
    }
  });
  channel.onLost(() => {
    logger.warn("master is gone; stopping");
    void stop(true);
  });

  const ctx: WorkerContext = {
    id: init.id,
    generation: init.generation,
    data: init.data,
    listeners: init.listeners,
    logger,
    stats,
    signal: abort.signal,
    ready() {
      if (readySent) return;
      readySent = true;
      channel.send({ t: "ready" });
    },
    onStop(fn) {
      stopFns.push(fn);
    },
    onReopen(fn) {
      reopenFns.push(fn);
    },
  };

  let main: WorkerMain;
  try {
    const mod = (await import(init.workerModule)) as { default?: unknown };
    if (typeof mod.default !== "function") {
      throw new AppLoadError(`${init.workerModule} has no default export function`);
    }
    main = mod.default as WorkerMain;
  } catch (error) {
    logger.fatal("cannot load worker module", { error });
    channel.exit(error instanceof AppLoadError ? ExitCode.appLoad : ExitCode.failure);
    return;
  }
  try {
    await main(ctx);
  } catch (error) {
    const appLoad = error instanceof AppLoadError;
    logger.fatal(appLoad ? "app cannot be loaded" : "worker failed", { error });
    channel.exit(appLoad ? ExitCode.appLoad : ExitCode.failure);
  }
}
