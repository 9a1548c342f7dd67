/**
 * The master: binds the listening sockets, supervises one pool of workers, and turns signals into
 * actions run one at a time by a single loop (gunicorn's arbiter). Signal handlers only enqueue;
 * the loop runs queued actions in order, then `pool.tick()` (reap, heartbeat timeouts, respawn,
 * scale, reload progress), then sleeps until woken (a signal, a worker event) or 250 ms pass.
 *
 * Signals (also reachable as `master.enqueue(action)`):
 * - HUP  `reload`: call `options.reload()`. If it throws, log the error and change nothing.
 *        Otherwise bind any new listen address, then start a full new generation of workers
 *        with the new options beside the old ones; once every new slot is ready, the old
 *        workers get a graceful stop (they stop accepting, finish in-flight requests within
 *        gracefulTimeout, exit). The listening sockets stay open throughout, so no connection
 *        is refused. A new worker that exits before ready abandons the reload (old ones stay).
 * - TERM `stop`: graceful stop of every worker within gracefulTimeout (then SIGKILL), close the
 *        sockets, remove the pidfile, exit 0.
 * - INT, QUIT `quit`: fast stop: workers drop their connections and exit; SIGKILL after 1 s.
 *        During a graceful stop it escalates to a fast one (every other action is then ignored).
 * - TTIN / TTOU `incr` / `decr`: one worker more / less (the highest slot drains).
 * - USR1 `reopen`: reopen the master's log file and tell every worker to reopen its own.
 * - USR2 `reexec`: binary upgrade. Rename the pidfile to `<pidfile>.oldbin`, then spawn the same
 *        `node` binary with the same execArgv, argv and environment plus `BRIGADE_LISTEN_FDS`
 *        (JSON `[{ fd, key }]`), the listening sockets inherited at fds 3, 4, ... The new master
 *        adopts those sockets instead of binding (a key is the listen address as configured),
 *        writes the pidfile, and starts its workers on the same sockets; both sets of workers
 *        accept from the same kernel queues meanwhile, so nothing is refused. The old master goes
 *        on serving until told: WINCH to stop its workers (and keep it around for a rollback:
 *        HUP brings its workers back), TERM to stop it for good. If the new master dies, the old
 *        one renames `<pidfile>.oldbin` back and carries on.
 * - WINCH `winch`: stop all workers gracefully but keep the master (nginx's).
 *
 * Exit codes (src/core/exitCodes.ts): 0 after TERM/INT/QUIT; 1 when startup fails (a socket
 * cannot be bound, the pidfile names a live process); 3 after `bootRetries` consecutive boot
 * failures (with backoff between attempts); 4 as soon as a worker exits with ExitCode.appLoad.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync } from "node:fs";
import { ExitCode } from "../core/exitCodes.ts";
import type { Logger, LoggerOptions } from "../core/logger.ts";
import {
  adoptListener,
  type BoundListener,
  bindListener,
  formatListen,
  LISTEN_FDS_ENV,
  type ListenSpec,
  takeInheritedFds,
} from "./listen.ts";
import { movePidfile, removePidfile, writePidfile } from "./pidfile.ts";
import { type PoolHooks, type PoolOptions, type WorkerInfo, WorkerPool } from "./pool.ts";

export { formatListen, type ListenSpec, parseListen } from "./listen.ts";
export type { CanaryVerdict, WorkerExit, WorkerInfo, WorkerState } from "./pool.ts";

/**
 * Hooks for the tiers; each runs inside the master loop and must not throw or block. The worker
 * hooks (`PoolHooks`: spawn, ready, exit, stopping, messages, canary, reload end) get a
 * `WorkerInfo` whose `pool` names the pool.
 */
export interface MasterHooks extends PoolHooks {
  /** Sockets are bound and the first full set of workers of every pool is ready. */
  onReady?(master: Master): void;
  /** A graceful stop (TERM) begins: before `stopDelay`, before any worker is told. */
  onStopping?(master: Master): void;
}

/** One pool of workers under a master: what `PoolOptions` says, plus its own listening sockets. */
export interface PoolSpec {
  /** "app" / "web": in logs, process titles, `WorkerInfo.pool`. */
  name: string;
  workers: number;
  /** Absolute path or file URL of a module whose default export is a `WorkerMain`. */
  workerModule: string;
  /** JSON-able; given to each worker as `ctx.data`. */
  workerData: unknown;
  /** Several at once: TCP v4/v6 and unix sockets, shared by every worker of the pool. */
  listen: ListenSpec[];
  /** Seconds without heartbeat before a worker is killed and replaced; 0 = off. */
  timeout: number;
  /** Seconds a graceful stop (TERM, reload, TTOU) waits for in-flight work. */
  gracefulTimeout: number;
  /** "process" (default): child processes sharing inherited sockets; "thread": worker_threads. */
  mode?: "process" | "thread";
  /** Consecutive boot failures before exit 3 (default 5). */
  bootRetries?: number;
  /** How workers open their logger; point it at the master's log file. Default: stderr. */
  log?: LoggerOptions;
  /** Node flags for worker processes (default none). */
  execArgv?: string[];
  /**
   * Before killing a worker process for a timeout, read and log the JavaScript stack its event
   * loop is blocked in, and what its `onBlocked` functions report (default true; process mode).
   */
  stackOnTimeout?: boolean;
  /** How a reload replaces the workers: all at once (default) or one slot at a time. */
  reloadStrategy?: "all" | "rolling";
  /** Rolling reloads: how long the first new worker is watched by the `canary` hook (ms). */
  canaryMs?: number;
  /** See `PoolOptions.acceptors`. Default 1. */
  acceptors?: PoolOptions["acceptors"];
  /** Sockets of each worker's own (see `PoolOptions.workerListen`). */
  workerListen?: (slot: number, serial: number) => ListenSpec[];
  /**
   * Start this pool's workers only once pool `startAfter` is ready (its first full set); on a
   * graceful stop, that pool then stops only after this one is gone (the front before the back).
   */
  startAfter?: string;
}

/** What a reload may change in a pool. */
export type PoolChanges = Partial<Omit<PoolSpec, "name" | "startAfter">>;

/** The options a reload may change: the one pool's fields, or `pools` by name. */
export type ReloadableOptions = PoolChanges & { pools?: Record<string, PoolChanges> };

interface MasterBase {
  /** The master's name: in logs and its process title ("app", "web", "stack"). */
  name: string;
  pidfile?: string | undefined;
  logger: Logger;
  /**
   * Called on HUP: re-read config. Throwing keeps the old options running; the error is logged.
   * With several pools, return `{ pools: { name: changes } }`: the pools named are reloaded (an
   * empty `{}` replaces the workers with unchanged options), the others are left as they are.
   */
  reload?: () => Promise<ReloadableOptions>;
  hooks?: MasterHooks;
  /**
   * Seconds between the start of a graceful stop (TERM) and the first worker being told to stop:
   * for a load balancer to see `onStopping`'s effect (a readiness probe turned 503) first.
   */
  stopDelay?: number;
  /**
   * What the master's owner hands to a USR2 successor besides the pools' sockets (`brigade up`:
   * its admin listener). `fds()` names them (keys the successor finds in `BRIGADE_LISTEN_FDS`;
   * an inherited fd whose key it lists is left to the owner, not closed); `changed(true)` once a
   * successor runs, `changed(false)` when it exited and this master goes on.
   */
  handover?: {
    fds(): readonly { key: string; fd: number }[];
    changed(successor: boolean): void;
  };
}

/**
 * A master runs one pool (its fields beside the master's, the pool named like the master: what
 * `brigade app` and `brigade web` use) or several named pools (`pools`; `brigade up`). Signals
 * act on every pool, except TTIN/TTOU, which scale the first pool; `scale(pool, n)` scales any.
 */
export interface MasterOptions extends MasterBase, Omit<PoolSpec, "name"> {}

/** A master of several named pools (`brigade up`: the app workers and the web workers). */
export interface PoolsMasterOptions extends MasterBase {
  pools: PoolSpec[];
}

export type MasterAction =
  | "reload"
  | "stop"
  | "quit"
  | "incr"
  | "decr"
  | "reopen"
  | "reexec"
  | "winch";

const signalActions: Record<string, MasterAction> = {
  SIGHUP: "reload",
  SIGTERM: "stop",
  SIGINT: "quit",
  SIGQUIT: "quit",
  SIGTTIN: "incr",
  SIGTTOU: "decr",
  SIGUSR1: "reopen",
  SIGUSR2: "reexec",
  SIGWINCH: "winch",
};

export interface PoolSnapshot {
  name: string;
  generation: number;
  /** Target worker count. */
  workers: number;
  listeners: string[];
  /** A reload is replacing its workers now. */
  reloading: boolean;
  workerList: WorkerInfo[];
}

export interface MasterSnapshot {
  name: string;
  pid: number;
  startedAt: number;
  /** The first pool's (the only one's, for one pool). */
  generation: number;
  /** Target worker count, over every pool. */
  workers: number;
  /** Every pool's listening sockets. */
  listeners: string[];
  /** True between USR2 and TERM: a new master runs beside this one. */
  oldbin: boolean;
  /** Every pool's workers (`pool` tells which). */
  workerList: WorkerInfo[];
  pools: PoolSnapshot[];
}

/** A pool as the master holds it: its spec, its sockets, its workers. */
interface Managed {
  spec: PoolSpec;
  pool: WorkerPool;
  listeners: BoundListener[];
}

type Queued =
  | { action: MasterAction }
  | { action: "scale"; pool: string; delta: number }
  | { action: "reloadPool"; pool: string };

const TICK_MS = 250;

export class Master {
  private options: MasterOptions | PoolsMasterOptions;
  private readonly logger: Logger;
  private readonly pools: Managed[] = [];
  private readonly queue: Queued[] = [];
  private wakeUp: (() => void) | undefined;
  private stopping = false;
  /** A graceful stop waiting out `stopDelay`: when the pools are told. */
  private stopAt: number | undefined;
  private exitCode: number | undefined;
  private readyAnnounced = false;
  private reexecChild: ChildProcess | undefined;
  private handedOver = false;
  private readonly startedAt = Date.now();
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    const action = signalActions[sig];
    if (action) this.enqueue(action);
  };

  constructor(options: MasterOptions | PoolsMasterOptions) {
    this.options = options;
    this.logger = options.logger;
    const specs = Master.specs(options);
    const names = new Set<string>();
    for (const spec of specs) {
      if (names.has(spec.name)) throw new Error(`two pools named "${spec.name}"`);
      names.add(spec.name);
    }
    for (const spec of specs) {
      if (spec.startAfter !== undefined && !names.has(spec.startAfter)) {
        throw new Error(
          `pool "${spec.name}" starts after "${spec.startAfter}", which is not a pool`,
        );
      }
      if (spec.workerListen && (spec.mode ?? "process") === "thread") {
        throw new Error(`pool "${spec.name}": workerListen needs process mode`);
      }
      const logger = specs.length > 1 ? this.logger.child({ pool: spec.name }) : this.logger;
      const hooks = options.hooks ?? {};
      const pool = new WorkerPool(this.poolOptions(spec), logger, () => this.wake(), hooks);
      if (spec.startAfter !== undefined) pool.hold();
      this.pools.push({ spec, pool, listeners: [] });
    }
  }

  /** The pools of `options`: `pools`, or the one pool described beside the master's fields. */
  private static specs(options: MasterOptions | PoolsMasterOptions): PoolSpec[] {
    if ("pools" in options) return options.pools;
    const { name, pidfile, logger, reload, hooks, stopDelay, ...pool } = options;
    return [{ ...pool, name }];
  }

  /** The bound sockets of every pool, in pool then `listen` order (port numbers are the real ones). */
  get listeners(): readonly BoundListener[] {
    return this.pools.flatMap((m) => m.listeners);
  }

  /** The bound sockets of one pool. */
  listenersOf(pool: string): readonly BoundListener[] {
    return this.managed(pool).listeners;
  }

  /** Queue an action, as a signal would. */
  enqueue(action: MasterAction): void {
    this.queue.push({ action });
    this.wake();
  }

  /** Queue a change of one pool's worker count by `delta` (TTIN/TTOU scale the first pool). */
  scale(pool: string, delta: number): void {
    this.managed(pool);
    this.queue.push({ action: "scale", pool, delta });
    this.wake();
  }

  /** Send a topic message to the workers of `pool` (one slot's with `id`, else all of them). */
  send(pool: string, topic: string, body: unknown, id?: number): void {
    this.managed(pool).pool.send(topic, body, id);
  }

  /** The names of the pools, in order. */
  get poolNames(): string[] {
    return this.pools.map((m) => m.spec.name);
  }

  /** Stopping (after TERM/INT/QUIT, or a pool gave up). */
  get isStopping(): boolean {
    return this.stopping;
  }

  private managed(name: string): Managed {
    const m = this.pools.find((p) => p.spec.name === name);
    if (!m) throw new Error(`no pool "${name}"`);
    return m;
  }

  snapshot(): MasterSnapshot {
    const pools: PoolSnapshot[] = this.pools.map((m) => ({
      name: m.spec.name,
      generation: m.pool.currentGeneration,
      workers: m.pool.target,
      listeners: m.listeners.map((l) => l.address),
      reloading: m.pool.reloading,
      workerList: m.pool.snapshot(),
    }));
    return {
      name: this.options.name,
      pid: process.pid,
      startedAt: this.startedAt,
      generation: pools[0]?.generation ?? 1,
      workers: pools.reduce((n, p) => n + p.workers, 0),
      listeners: pools.flatMap((p) => p.listeners),
      oldbin: this.handedOver,
      workerList: pools.flatMap((p) => p.workerList),
      pools,
    };
  }

  /** Start (pidfile, sockets, signals), supervise until stopped, clean up; returns the exit code. */
  async run(): Promise<number> {
    try {
      await this.start();
    } catch (error) {
      this.logger.fatal("cannot start", { error });
      this.cleanup();
      return ExitCode.failure;
    }
    try {
      await this.loop();
    } catch (error) {
      this.logger.fatal("master failed", { error });
      for (const m of this.pools) m.pool.stopAll(false);
      this.exitCode = ExitCode.failure;
    }
    this.cleanup();
    return this.exitCode ?? ExitCode.ok;
  }

  private poolOptions(o: PoolSpec): PoolOptions {
    return {
      name: o.name,
      workers: o.workers,
      workerModule: o.workerModule,
      workerData: o.workerData,
      timeout: o.timeout,
      gracefulTimeout: o.gracefulTimeout,
      mode: o.mode ?? "process",
      bootRetries: o.bootRetries ?? 5,
      log: o.log ?? {},
      execArgv: o.execArgv ?? [],
      stackOnTimeout: o.stackOnTimeout ?? true,
      reloadStrategy: o.reloadStrategy ?? "all",
      canaryMs: o.canaryMs ?? 0,
      acceptors: o.acceptors ?? 1,
      ...(o.workerListen ? { workerListen: o.workerListen } : {}),
    };
  }

  private async start(): Promise<void> {
    process.title = `brigade ${this.options.name} master`;
    if (this.options.pidfile) writePidfile(this.options.pidfile);
    const inherited = takeInheritedFds();
    try {
      for (const m of this.pools) {
        m.listeners = await this.bindAll(m.spec, m.spec.listen, [], inherited);
        m.pool.setListeners(m.listeners);
      }
    } catch (error) {
      for (const m of this.pools) for (const l of m.listeners) l.close(true);
      throw error;
    }
    // Inherited sockets no longer in the config are closed, not leaked (the owner's are its own).
    const owners = new Set(this.options.handover?.fds().map((f) => f.key));
    for (const [key, fd] of inherited) if (!owners.has(key)) closeSync(fd);
    for (const sig of Object.keys(signalActions)) process.on(sig, this.onSignal);
    this.logger.info("master started", {
      pid: process.pid,
      ...(this.pools.length === 1
        ? { workers: this.pools[0]!.spec.workers, mode: this.pools[0]!.spec.mode ?? "process" }
        : {
            pools: this.pools.map((m) => `${m.spec.name}:${m.spec.workers}`).join(","),
          }),
    });
  }

  /**
   * Sockets for `specs`: reuse one already held (same key), adopt an inherited fd, or bind.
   * On failure, closes what it bound itself and throws.
   */
  private async bindAll(
    pool: PoolSpec,
    specs: ListenSpec[],
    held: readonly BoundListener[],
    inherited: Map<string, number>,
  ): Promise<BoundListener[]> {
    const out: BoundListener[] = [];
    const fresh: BoundListener[] = [];
    const reusePort = (pool.mode ?? "process") === "thread";
    try {
      for (const spec of specs) {
        const key = formatListen(spec);
        const have = held.find((l) => l.key === key);
        const fd = inherited.get(key);
        let l: BoundListener;
        if (have) l = have;
        else if (fd !== undefined) {
          inherited.delete(key);
          l = adoptListener(spec, fd);
          this.logger.info("listening (inherited)", { address: l.address, fd });
        } else {
          l = await bindListener(spec, { reusePort });
          fresh.push(l);
          this.logger.info("listening", {
            address: l.address,
            ...(this.pools.length > 1 ? { pool: pool.name } : {}),
          });
        }
        out.push(l);
      }
    } catch (error) {
      for (const l of fresh) l.close(true);
      throw error;
    }
    return out;
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    w?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakeUp = undefined;
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Does a live pool start after `m` (so `m` must outlive it on a graceful stop)? */
  private hasDependents(m: Managed): boolean {
    return this.pools.some((o) => o.spec.startAfter === m.spec.name && o.pool.size() > 0);
  }

  private async loop(): Promise<void> {
    for (;;) {
      while (this.queue.length > 0) await this.handle(this.queue.shift()!);
      const now = Date.now();
      if (this.stopAt !== undefined && now >= this.stopAt) {
        this.stopAt = undefined;
        this.stopPools(true);
      }
      for (const m of this.pools) {
        const verdict = m.pool.tick(now);
        if (verdict !== undefined && this.exitCode === undefined) {
          this.exitCode = verdict;
          this.stopping = true;
          this.stopAt = undefined;
          for (const o of this.pools) o.pool.stopAll(false);
        }
      }
      // Pools waiting for another one start once it is ready.
      for (const m of this.pools) {
        if (m.pool.isStarted || this.stopping || m.spec.startAfter === undefined) continue;
        if (this.managed(m.spec.startAfter).pool.settled()) {
          m.pool.start();
          m.pool.tick(now);
        }
      }
      for (const m of this.pools) {
        if (this.pendingWinch.has(m) && !this.hasDependents(m)) {
          this.pendingWinch.delete(m);
          m.pool.stopAll(true, true);
        }
      }
      // A graceful stop goes front first: a pool whose dependents are gone stops now.
      if (this.stopping && this.stopAt === undefined && this.pendingStop.size > 0) {
        for (const m of this.pools) {
          if (this.pendingStop.has(m) && !this.hasDependents(m)) {
            this.pendingStop.delete(m);
            m.pool.stopAll(true);
          }
        }
      }
      if (!this.readyAnnounced && !this.stopping && this.pools.every((m) => m.pool.settled())) {
        this.readyAnnounced = true;
        this.logger.info("master ready", {
          workers: this.pools.map((m) => m.pool.target).reduce((a, b) => a + b, 0),
          listeners: this.listeners.map((l) => l.address).join(","),
        });
        this.options.hooks?.onReady?.(this);
      }
      if (
        this.stopping &&
        this.stopAt === undefined &&
        this.pendingStop.size === 0 &&
        this.pools.every((m) => m.pool.size() === 0)
      ) {
        return;
      }
      if (this.queue.length === 0) {
        const wait = this.stopAt !== undefined ? Math.min(TICK_MS, this.stopAt - now) : TICK_MS;
        await this.sleep(Math.max(1, wait));
      }
    }
  }

  /** Pools told to stop gracefully once their dependents are gone. */
  private readonly pendingStop = new Set<Managed>();
  /** The same for WINCH (the master stays); a reload or a stop cancels it. */
  private readonly pendingWinch = new Set<Managed>();

  private stopPools(graceful: boolean): void {
    this.pendingWinch.clear();
    if (!graceful) {
      this.pendingStop.clear();
      for (const m of this.pools) m.pool.stopAll(false);
      return;
    }
    for (const m of this.pools) {
      if (this.hasDependents(m)) this.pendingStop.add(m);
      else m.pool.stopAll(true);
    }
  }

  private async handle(q: Queued): Promise<void> {
    const action = q.action;
    // While stopping, only escalation from a graceful to a fast stop means anything.
    if (this.stopping) {
      if (action === "quit") {
        this.stopAt = undefined;
        this.stopPools(false);
      }
      return;
    }
    this.logger.info("handling action", {
      action,
      ...(q.action === "scale" ? { pool: q.pool, delta: q.delta } : {}),
    });
    switch (q.action) {
      case "scale":
        this.managed(q.pool).pool.scale(q.delta);
        return;
      case "reloadPool":
        await this.reload(q.pool);
        return;
    }
    switch (action) {
      case "stop": {
        this.stopping = true;
        this.options.hooks?.onStopping?.(this);
        const delay = (this.options.stopDelay ?? 0) * 1000;
        if (delay > 0) {
          this.logger.info("stopping after the stop delay", { seconds: delay / 1000 });
          this.stopAt = Date.now() + delay;
        } else this.stopPools(true);
        return;
      }
      case "quit":
        this.stopping = true;
        this.stopPools(false);
        return;
      case "incr":
        this.pools[0]!.pool.scale(1);
        return;
      case "decr":
        this.pools[0]!.pool.scale(-1);
        return;
      case "winch":
        this.logger.info("stopping workers gracefully; the master stays (WINCH)");
        // Front first, as a graceful stop: the web workers are gone before their app workers go.
        for (const m of this.pools) {
          if (this.hasDependents(m)) this.pendingWinch.add(m);
          else m.pool.stopAll(true, true);
        }
        return;
      case "reopen":
        this.logger.reopen();
        for (const m of this.pools) m.pool.reopenLogs();
        return;
      case "reload":
        this.pendingWinch.clear();
        await this.reload();
        return;
      case "reexec":
        this.reexec();
        return;
    }
  }

  /** Queue a reload of one pool only (its options re-read like a HUP's, the others unchanged). */
  reloadPool(pool: string): void {
    this.managed(pool);
    this.queue.push({ action: "reloadPool", pool });
    this.wake();
  }

  private async reload(only?: string): Promise<void> {
    let changes: ReloadableOptions = {};
    if (this.options.reload) {
      try {
        changes = await this.options.reload();
      } catch (error) {
        this.logger.error("reload failed; keeping the running configuration", { error });
        return;
      }
    }
    const { pools: byName, ...single } = changes;
    const next = new Map<Managed, PoolSpec>();
    for (const m of this.pools) {
      if (only !== undefined && m.spec.name !== only) continue;
      let c: PoolChanges = single;
      if ("pools" in this.options) {
        const named = byName?.[m.spec.name];
        if (named === undefined) continue;
        c = named;
      }
      next.set(m, { ...m.spec, ...c, name: m.spec.name, startAfter: m.spec.startAfter });
    }
    const bound = new Map<Managed, BoundListener[]>();
    try {
      for (const [m, spec] of next) {
        bound.set(m, await this.bindAll(spec, spec.listen, m.listeners, new Map()));
      }
    } catch (error) {
      for (const [m, listeners] of bound) {
        for (const l of listeners) if (!m.listeners.includes(l)) l.close(true);
      }
      this.logger.error("reload failed; keeping the running configuration", { error });
      return;
    }
    for (const [m, spec] of next) {
      const listeners = bound.get(m)!;
      for (const l of m.listeners) if (!listeners.includes(l)) l.close(true);
      m.listeners = listeners;
      m.spec = spec;
      m.pool.setListeners(listeners);
      m.pool.reload(this.poolOptions(spec));
    }
  }

  private reexec(): void {
    if (this.reexecChild) {
      this.logger.warn("a new master is already running; ignoring USR2", {
        pid: this.reexecChild.pid,
      });
      return;
    }
    const pidfile = this.options.pidfile;
    if (pidfile) movePidfile(pidfile, `${pidfile}.oldbin`);
    const all = [
      ...this.listeners.map((l) => ({ key: l.key, fd: l.fd })),
      ...(this.options.handover?.fds() ?? []),
    ];
    const env = {
      ...process.env,
      [LISTEN_FDS_ENV]: JSON.stringify(all.map((l, i) => ({ fd: 3 + i, key: l.key }))),
    };
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: ["ignore", "inherit", "inherit", ...all.map((l) => l.fd)],
      env,
    });
    // The new master outlives this one; its handle must not keep this process alive.
    child.unref();
    this.reexecChild = child;
    this.handedOver = true;
    this.logger.info("started a new master (USR2)", { pid: child.pid });
    this.options.handover?.changed(true);
    child.on("error", (error) => this.logger.error("cannot start a new master", { error }));
    child.on("exit", (code, signal) => {
      this.reexecChild = undefined;
      if (this.stopping) return;
      this.handedOver = false;
      if (pidfile) movePidfile(`${pidfile}.oldbin`, pidfile);
      this.logger.warn("the new master exited; this master goes on", { code, signal });
      this.options.handover?.changed(false);
    });
  }

  private cleanup(): void {
    for (const sig of Object.keys(signalActions)) process.off(sig, this.onSignal);
    // After a handover the new master owns the unix socket files: close, never unlink.
    for (const l of this.listeners) l.close(!this.handedOver);
    const pidfile = this.options.pidfile;
    if (pidfile) {
      removePidfile(pidfile);
      removePidfile(`${pidfile}.oldbin`);
    }
    this.logger.info("master stopped", { code: this.exitCode ?? ExitCode.ok });
  }
}

/** Run a master until it stops; resolves with the exit code for `process.exit`. */
export function runMaster(options: MasterOptions | PoolsMasterOptions): Promise<number> {
  return new Master(options).run();
}
