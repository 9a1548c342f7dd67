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
import { type PoolOptions, type WorkerExit, type WorkerInfo, WorkerPool } from "./pool.ts";

export { formatListen, type ListenSpec, parseListen } from "./listen.ts";
export type { WorkerExit, WorkerInfo, WorkerState } from "./pool.ts";

/** Hooks for the tiers; each runs inside the master loop and must not throw or block. */
export interface MasterHooks {
  /** Sockets are bound and the first full set of workers is ready. */
  onReady?(master: Master): void;
  onWorkerReady?(info: WorkerInfo): void;
  onWorkerExit?(info: WorkerInfo, exit: WorkerExit): void;
}

/** The options a reload may change. */
export type ReloadableOptions = Partial<Omit<MasterOptions, "logger" | "reload" | "hooks">>;

export interface MasterOptions {
  /** "app" / "web": in logs and process titles. */
  name: string;
  workers: number;
  /** Absolute path or file URL of a module whose default export is a `WorkerMain`. */
  workerModule: string;
  /** JSON-able; given to each worker as `ctx.data`. */
  workerData: unknown;
  /** Several at once: TCP v4/v6 and unix sockets. */
  listen: ListenSpec[];
  /** Seconds without heartbeat before a worker is killed and replaced; 0 = off. */
  timeout: number;
  /** Seconds a graceful stop (TERM, reload, TTOU) waits for in-flight work. */
  gracefulTimeout: number;
  pidfile?: string | undefined;
  /** "process" (default): child processes sharing inherited sockets; "thread": worker_threads. */
  mode?: "process" | "thread";
  /** Consecutive boot failures before exit 3 (default 5). */
  bootRetries?: number;
  logger: Logger;
  /** How workers open their logger; point it at the master's log file. Default: stderr. */
  log?: LoggerOptions;
  /** Node flags for worker processes (default none). */
  execArgv?: string[];
  /**
   * Before killing a worker process for a timeout, read and log the JavaScript stack its event
   * loop is blocked in, and what its `onBlocked` functions report (default true; process mode).
   */
  stackOnTimeout?: boolean;
  /** Called on HUP: re-read config. Throwing keeps the old options running; the error is logged. */
  reload?: () => Promise<ReloadableOptions>;
  hooks?: MasterHooks;
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

export interface MasterSnapshot {
  name: string;
  pid: number;
  startedAt: number;
  generation: number;
  /** Target worker count. */
  workers: number;
  listeners: string[];
  /** True between USR2 and TERM: a new master runs beside this one. */
  oldbin: boolean;
  workerList: WorkerInfo[];
}

const TICK_MS = 250;

export class Master {
  private options: MasterOptions;
  private readonly logger: Logger;
  private readonly pool: WorkerPool;
  private readonly queue: MasterAction[] = [];
  private listenersList: BoundListener[] = [];
  private wakeUp: (() => void) | undefined;
  private stopping = false;
  private exitCode: number | undefined;
  private readyAnnounced = false;
  private reexecChild: ChildProcess | undefined;
  private handedOver = false;
  private readonly startedAt = Date.now();
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    const action = signalActions[sig];
    if (action) this.enqueue(action);
  };

  constructor(options: MasterOptions) {
    this.options = options;
    this.logger = options.logger;
    this.pool = new WorkerPool(this.poolOptions(options), this.logger, () => this.wake(), {
      onWorkerReady: (info) => options.hooks?.onWorkerReady?.(info),
      onWorkerExit: (info, exit) => options.hooks?.onWorkerExit?.(info, exit),
    });
  }

  /** The bound sockets, in `listen` order (port numbers are the real ones). */
  get listeners(): readonly BoundListener[] {
    return this.listenersList;
  }

  /** Queue an action, as a signal would. */
  enqueue(action: MasterAction): void {
    this.queue.push(action);
    this.wake();
  }

  snapshot(): MasterSnapshot {
    return {
      name: this.options.name,
      pid: process.pid,
      startedAt: this.startedAt,
      generation: this.pool.currentGeneration,
      workers: this.pool.target,
      listeners: this.listenersList.map((l) => l.address),
      oldbin: this.handedOver,
      workerList: this.pool.snapshot(),
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
      this.pool.stopAll(false);
      this.exitCode = ExitCode.failure;
    }
    this.cleanup();
    return this.exitCode ?? ExitCode.ok;
  }

  private poolOptions(o: MasterOptions): PoolOptions {
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
    };
  }

  private async start(): Promise<void> {
    process.title = `brigade ${this.options.name} master`;
    if (this.options.pidfile) writePidfile(this.options.pidfile);
    this.listenersList = await this.bindAll(this.options.listen, [], takeInheritedFds());
    this.pool.setListeners(this.listenersList);
    for (const sig of Object.keys(signalActions)) process.on(sig, this.onSignal);
    this.logger.info("master started", {
      pid: process.pid,
      workers: this.options.workers,
      mode: this.options.mode ?? "process",
    });
  }

  /**
   * Sockets for `specs`: reuse one already held (same key), adopt an inherited fd, or bind.
   * On failure, closes what it bound itself and throws.
   */
  private async bindAll(
    specs: ListenSpec[],
    held: readonly BoundListener[],
    inherited: Map<string, number>,
  ): Promise<BoundListener[]> {
    const out: BoundListener[] = [];
    const fresh: BoundListener[] = [];
    const reusePort = (this.options.mode ?? "process") === "thread";
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
          this.logger.info("listening", { address: l.address });
        }
        out.push(l);
      }
    } catch (error) {
      for (const l of fresh) l.close(true);
      throw error;
    }
    // Inherited sockets no longer in the config are closed, not leaked.
    for (const fd of inherited.values()) closeSync(fd);
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

  private async loop(): Promise<void> {
    for (;;) {
      while (this.queue.length > 0) await this.handle(this.queue.shift()!);
      const verdict = this.pool.tick();
      if (verdict !== undefined && this.exitCode === undefined) {
        this.exitCode = verdict;
        this.stopping = true;
        this.pool.stopAll(false);
      }
      if (!this.readyAnnounced && !this.stopping && this.pool.settled()) {
        this.readyAnnounced = true;
        this.logger.info("master ready", {
          workers: this.pool.target,
          listeners: this.listenersList.map((l) => l.address).join(","),
        });
        this.options.hooks?.onReady?.(this);
      }
      if (this.stopping && this.pool.size() === 0) return;
      if (this.queue.length === 0) await this.sleep(TICK_MS);
    }
  }

  private async handle(action: MasterAction): Promise<void> {
    // While stopping, only escalation from a graceful to a fast stop means anything.
    if (this.stopping) {
      if (action === "quit") this.pool.stopAll(false);
      return;
    }
    this.logger.info("handling action", { action });
    switch (action) {
      case "stop":
      case "quit":
        this.stopping = true;
        this.pool.stopAll(action === "stop");
        return;
      case "incr":
        this.pool.scale(1);
        return;
      case "decr":
        this.pool.scale(-1);
        return;
      case "winch":
        this.logger.info("stopping workers gracefully; the master stays (WINCH)");
        this.pool.stopAll(true, true);
        return;
      case "reopen":
        this.logger.reopen();
        this.pool.reopenLogs();
        return;
      case "reload":
        await this.reload();
        return;
      case "reexec":
        this.reexec();
        return;
    }
  }

  private async reload(): Promise<void> {
    let next = this.options;
    if (this.options.reload) {
      try {
        const changes = await this.options.reload();
        next = { ...this.options, ...changes, logger: this.logger, reload: this.options.reload };
      } catch (error) {
        this.logger.error("reload failed; keeping the running configuration", { error });
        return;
      }
    }
    let listeners: BoundListener[];
    try {
      listeners = await this.bindAll(next.listen, this.listenersList, new Map());
    } catch (error) {
      this.logger.error("reload failed; keeping the running configuration", { error });
      return;
    }
    for (const l of this.listenersList) if (!listeners.includes(l)) l.close(true);
    this.listenersList = listeners;
    this.options = next;
    this.pool.setListeners(listeners);
    this.pool.reload(this.poolOptions(next));
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
    const env = {
      ...process.env,
      [LISTEN_FDS_ENV]: JSON.stringify(
        this.listenersList.map((l, i) => ({ fd: 3 + i, key: l.key })),
      ),
    };
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      stdio: ["ignore", "inherit", "inherit", ...this.listenersList.map((l) => l.fd)],
      env,
    });
    // The new master outlives this one; its handle must not keep this process alive.
    child.unref();
    this.reexecChild = child;
    this.handedOver = true;
    this.logger.info("started a new master (USR2)", { pid: child.pid });
    child.on("error", (error) => this.logger.error("cannot start a new master", { error }));
    child.on("exit", (code, signal) => {
      this.reexecChild = undefined;
      if (this.stopping) return;
      this.handedOver = false;
      if (pidfile) movePidfile(`${pidfile}.oldbin`, pidfile);
      this.logger.warn("the new master exited; this master goes on", { code, signal });
    });
  }

  private cleanup(): void {
    for (const sig of Object.keys(signalActions)) process.off(sig, this.onSignal);
    // After a handover the new master owns the unix socket files: close, never unlink.
    for (const l of this.listenersList) l.close(!this.handedOver);
    const pidfile = this.options.pidfile;
    if (pidfile) {
      removePidfile(pidfile);
      removePidfile(`${pidfile}.oldbin`);
    }
    this.logger.info("master stopped", { code: this.exitCode ?? ExitCode.ok });
  }
}

/** Run a master until it stops; resolves with the exit code for `process.exit`. */
export function runMaster(options: MasterOptions): Promise<number> {
  return new Master(options).run();
}
