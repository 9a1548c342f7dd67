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
 *   with each heartbeat, and once more just before the worker exits.
 * It may also:
 * - `ctx.acquireListener(i)` (process mode): get a fresh copy of listening socket `i` from the
 *   master. Closing a server closes its descriptor; a new copy lets a worker stop accepting
 *   (close) and start again (listen on the copy) while the socket itself stays open in the
 *   master: what sync workers and `worker-connections` limits are built on.
 * - `ctx.retire(reason)`: ask to be replaced (max requests, memory). The master starts a
 *   successor in the same slot and, once it is ready, stops this worker gracefully.
 * - `ctx.onReopen(fn)`: reopen its own files (access logs) on USR1.
 * - `ctx.send(topic, body)` / `ctx.onMessage(topic, fn)`: JSON messages with the master's tier
 *   (the `onWorkerMessage` hook and `Master.send`), e.g. `brigade up` telling web workers the
 *   current app workers. Messages for a topic that has no handler yet are kept (the newest 100
 *   per topic) and delivered when one is registered, so a worker still booting misses nothing.
 * - `ctx.onBlocked(fn)`: facts for the timeout report. When the master times a worker out (its
 *   event loop is blocked), it reads the blocked JavaScript stack through the inspector (process
 *   mode, `stackOnTimeout`) and calls `fn` *on the blocked thread* (an inspector evaluation runs
 *   there through a V8 interrupt); what
 *   `fn` returns (JSON-able: the requests in flight) is logged with the stack. `fn` must be
 *   synchronous and quick: nothing asynchronous can run in a blocked worker.
 * Throwing `AppLoadError` (or exiting with ExitCode.appLoad) tells the master the app cannot be
 * loaded at all: it stops everything and exits 4 instead of respawning. Any other throw before
 * `ready()` is a boot failure (respawned with backoff, then exit 3).
 */
import inspector from "node:inspector";
import { ExitCode } from "../core/exitCodes.ts";
import { createLogger, type Logger } from "../core/logger.ts";
import type { FromWorker, ToWorker, WorkerInit, WorkerListen } from "./protocol.ts";
import { type SharedState, SharedStateClient } from "./sharedState.ts";

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
  /** True in process mode: `acquireListener` works. */
  readonly canAcquireListener: boolean;
  /**
   * A fresh copy of listening socket `index` (a raw handle for `server.listen(handle)`), from
   * the master. Rejects in thread mode, when the master has no handle for it, or when the
   * master is gone.
   */
  acquireListener(index: number): Promise<object>;
  /** Ask the master to replace this worker (it stops it gracefully once the successor is ready). */
  retire(reason: string): void;
  /** Register a function run on USR1 (reopen log files), after the error log is reopened. */
  onReopen(fn: () => void): void;
  /** Register a function whose result is logged when this worker is killed for a timeout. */
  onBlocked(fn: () => Record<string, unknown>): void;
  /** Send a JSON-able message to the master's tier (its `onWorkerMessage` hook). */
  send(topic: string, body: unknown): void;
  /** Handle the master's messages on `topic` (ones that came before are delivered now). */
  onMessage(topic: string, fn: (body: unknown) => void): void;
  /** Counters shared with every other worker of the master (sharedState.ts). */
  readonly shared: SharedState;
}

/** Where the runtime puts the `onBlocked` collector, for the master to call through the debugger. */
export const BLOCKED_REPORT_KEY = "brigade.worker.onBlocked";

export type WorkerMain = (ctx: WorkerContext) => void | Promise<void>;

/** Thrown by a worker main when the user's app cannot be loaded: the master exits 4 at once. */
export class AppLoadError extends Error {
  override readonly name = "AppLoadError";
}

/** A transport to the master: IPC for processes, a message port for threads. */
export interface MasterChannel {
  /** "thread" for a worker_thread: no descriptors of its own, no signals. */
  readonly mode: "process" | "thread";
  send(msg: FromWorker): void;
  /** `handle` is set on a `listener` message (a socket sent over IPC). */
  onMessage(fn: (msg: ToWorker, handle?: object) => void): void;
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
  const stats: WorkerStats = { requests: 0 };
  let readySent = false;
  let stopping = false;
  const shared = new SharedStateClient({
    send(q) {
      channel.send({ t: "ss", q });
      return true;
    },
    onDegraded(reason) {
      logger.warn("shared state unavailable; limits fail open", { reason });
    },
  });
  let retired = false;

  const reopenFns: (() => void)[] = [];
  const topicFns = new Map<string, ((body: unknown) => void)[]>();
  const early = new Map<string, unknown[]>();
  const deliver = (topic: string, fn: (body: unknown) => void, body: unknown): void => {
    try {
      fn(body);
    } catch (error) {
      logger.error("message handler failed", { topic, error });
    }
  };
  const blockedFns: (() => Record<string, unknown>)[] = [];
  const waitingFor = new Map<
    number,
    { resolve: (h: object) => void; reject: (e: Error) => void }[]
  >();
  const inspecting = channel.mode === "process" && init.stackOnTimeout === true;
  // Started with --inspect on purpose (debugging a worker): leave that inspector alone.
  const inspectorWanted = inspector.url() !== undefined;
  if (channel.mode === "process" && !inspecting) {
    // Node opens its inspector on SIGUSR1; without the timeout report nothing should.
    process.on("SIGUSR1", () => {});
  }

  const beat = (): void => {
    const mem = process.memoryUsage();
    channel.send({ t: "hb", stats: { ...stats }, rss: mem.rss, heapUsed: mem.heapUsed });
    // An inspector open while this loop runs was not opened for a timeout report (the master
    // opens it only for a blocked worker, and kills it right after): a stray SIGUSR1. Close it.
    if (channel.mode === "process" && !inspectorWanted && inspector.url() !== undefined) {
      logger.warn("inspector opened by a stray SIGUSR1; closing it");
      inspector.close();
    }
  };
  beat();
  // unref: a worker whose servers are all closed must be able to exit on its own.
  setInterval(beat, init.heartbeatMs).unref();

  (globalThis as Record<symbol, unknown>)[Symbol.for(BLOCKED_REPORT_KEY)] = (): string => {
    const out: Record<string, unknown> = {};
    for (const fn of blockedFns) {
      try {
        Object.assign(out, fn());
      } catch (error) {
        out.reportError = String(error);
      }
    }
    return JSON.stringify(out);
  };

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
    // The last counters, so the master's totals include what was served since the last beat.
    beat();
    channel.exit(ExitCode.ok);
  };

  channel.onMessage((msg, handle) => {
    if (msg.t === "ss") shared.receive(msg.r);
    else if (msg.t === "stop") void stop(msg.graceful);
    else if (msg.t === "reopen") {
      logger.reopen();
      for (const fn of reopenFns) {
        try {
          fn();
        } catch (error) {
          logger.error("reopening a file failed", { error });
        }
      }
    } else if (msg.t === "msg") {
      const fns = topicFns.get(msg.topic);
      if (fns) for (const fn of fns) deliver(msg.topic, fn, msg.body);
      else {
        const kept = early.get(msg.topic) ?? [];
        kept.push(msg.body);
        if (kept.length > 100) kept.shift();
        early.set(msg.topic, kept);
      }
    } else if (msg.t === "listener") {
      const waiter = waitingFor.get(msg.index)?.shift();
      if (!waiter) return;
      if (handle) waiter.resolve(handle);
      else waiter.reject(new Error(msg.error ?? `no handle for listener ${msg.index}`));
    }
  });
  channel.onLost(() => {
    shared.lost();
    for (const list of waitingFor.values()) {
      for (const w of list.splice(0)) w.reject(new Error("the master is gone"));
    }
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
      // Fresh counters with the news, so what the master judges a new worker by is current.
      beat();
      channel.send({ t: "ready" });
    },
    onStop(fn) {
      stopFns.push(fn);
    },
    canAcquireListener: channel.mode === "process",
    acquireListener(index) {
      if (channel.mode !== "process") {
        return Promise.reject(new Error("acquireListener needs process mode"));
      }
      return new Promise((resolve, reject) => {
        const list = waitingFor.get(index) ?? [];
        list.push({ resolve, reject });
        waitingFor.set(index, list);
        channel.send({ t: "listener", index });
      });
    },
    retire(reason) {
      if (retired || stopping) return;
      retired = true;
      channel.send({ t: "retire", reason });
    },
    onReopen(fn) {
      reopenFns.push(fn);
    },
    onBlocked(fn) {
      blockedFns.push(fn);
    },
    send(topic, body) {
      channel.send({ t: "msg", topic, body });
    },
    onMessage(topic, fn) {
      const fns = topicFns.get(topic) ?? [];
      fns.push(fn);
      topicFns.set(topic, fns);
      const kept = early.get(topic);
      early.delete(topic);
      for (const body of kept ?? []) deliver(topic, fn, body);
    },
    shared,
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
