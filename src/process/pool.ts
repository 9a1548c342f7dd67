/**
 * One group of identical workers: spawn, heartbeat watch, reap, respawn with backoff, scale, and
 * generational replacement on reload. The pool never waits: the master's loop calls `tick()`
 * after every action and on a short timer, and the pool moves its state machine one step.
 * Child exits and messages arrive as events; they only record facts and wake the loop.
 *
 * Reload (`reload()`): the generation number goes up, and the new generation replaces the old
 * one by the pool's `reloadStrategy`:
 * - `all` (default): `tick()` starts a full set of workers of the new generation beside the old
 *   ones, and only once every slot 1..N of the new generation is ready does it ask the old
 *   workers to stop gracefully.
 * - `rolling`: one slot at a time, in slot order: the slot's new worker starts beside the old
 *   one, and once it is ready the old one is stopped gracefully and the next slot begins. The
 *   first new worker is a canary: for `canaryMs` after it is ready, the `canary` hook compares it
 *   with the old workers on every tick and may fail it; the old worker of its slot keeps serving
 *   meanwhile (N+1 workers).
 * If a new worker exits before it is ready, or the canary fails, the reload is rolled back: the
 * new workers are stopped, the previous options come back, and the old workers go on serving.
 * When a rolling reload fails after some slots were already replaced, those slots are rolled
 * back the same rolling way (a new generation with the previous options, no canary), so
 * capacity never dips.
 *
 * Per-worker sockets (`workerListen`): besides the pool's shared listening sockets, each worker
 * can get sockets of its own (an app worker's unix socket, fed to a load balancer in front),
 * bound by the pool before the spawn and closed (unix: unlinked) when the worker is reaped.
 *
 * Stopping with an announcement (`onWorkerStopping`): before a ready worker is asked to stop
 * gracefully, the hook runs and the stop message waits (up to 5 s) for its promise: time
 * to take the worker out of a load balancer's rotation before it stops accepting.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { ExitCode } from "../core/exitCodes.ts";
import type { Logger, LoggerOptions } from "../core/logger.ts";
import { type BoundListener, bindListenerSync, type ListenSpec } from "./listen.ts";
import type { FromWorker, ToWorker, WorkerInit, WorkerListen } from "./protocol.ts";
import { SharedStore } from "./sharedState.ts";
import { captureBlockedStack } from "./stack.ts";
import { BLOCKED_REPORT_KEY } from "./worker.ts";

export type WorkerState = "booting" | "ready" | "draining" | "stopping";

/** What the master knows about one worker at a moment (for `brigade status`). */
export interface WorkerInfo {
  /** The pool it belongs to (`PoolOptions.name`). */
  pool: string;
  id: number;
  generation: number;
  /** OS process id; in thread mode the master's pid (see `threadId`). */
  pid: number;
  threadId: number | undefined;
  state: WorkerState;
  startedAt: number;
  ageMs: number;
  readyAt: number | undefined;
  /** Milliseconds since the last heartbeat. */
  silentMs: number;
  requests: number;
  /** Bytes, from the last heartbeat. In thread mode this is the whole process's RSS. */
  rss: number;
  heapUsed: number;
  stats: Record<string, number>;
  /** Why it asked to be replaced, while its successor boots. */
  retiring: string | undefined;
  /** The addresses of its own sockets (`workerListen`), in order; empty without. */
  ownListeners: string[];
}

export interface WorkerExit {
  code: number | null;
  signal: string | null;
  /** Why it ended, for the log: "stopped", "timeout", "boot failure", "exit code 1", ... */
  reason: string;
  /** Did it announce ready before ending? */
  booted: boolean;
}

export interface PoolOptions {
  name: string;
  workers: number;
  workerModule: string;
  workerData: unknown;
  /** Seconds without heartbeat before a worker is killed; 0 = never. */
  timeout: number;
  gracefulTimeout: number;
  mode: "process" | "thread";
  /** Consecutive boot failures tolerated before the pool gives up (ExitCode.workerBoot). */
  bootRetries: number;
  /** How workers open their own logger. */
  log: LoggerOptions;
  /** Node flags for worker processes. */
  execArgv: string[];
  /**
   * Process mode: how many descriptors of each shared listening socket a worker gets (the first
   * and `acceptors - 1` more, `WorkerListen.also`). libuv takes one connection per listening
   * handle and event-loop turn, so a worker with one handle takes a burst of N new connections
   * over N turns, each turn also serving every ready connection; with k it takes k per turn.
   * A number for every shared socket, or one per socket (the web tier: one for a TLS listener).
   * Its own sockets (`workerListen`) get one. Thread mode: one (each thread binds its own).
   */
  acceptors?: number | ((listener: BoundListener) => number);
  /**
   * Before killing a worker process for a timeout, read its blocked JavaScript stack and its
   * `onBlocked` report through the inspector (see stack.ts) and log them. Process mode only.
   */
  stackOnTimeout: boolean;
  /** How a reload replaces the workers (see the module comment). Default `all`. */
  reloadStrategy?: "all" | "rolling";
  /** Rolling reloads: how long the first new worker is watched by the `canary` hook (0: not). */
  canaryMs?: number;
  /**
   * Sockets of each worker's own, after the shared ones in `ctx.listeners`: called before each
   * spawn with the slot and a serial number unique in the pool (so a successor in the same slot
   * gets a different path). TCP addresses must be IP literals. Process mode only.
   */
  workerListen?: (slot: number, serial: number) => ListenSpec[];
}

/** What the canary hook decides on one look. */
export type CanaryVerdict =
  | { verdict: "pass" }
  | { verdict: "wait" }
  | { verdict: "fail"; reason: string };

export interface PoolHooks {
  onWorkerSpawn?(info: WorkerInfo): void;
  onWorkerReady?(info: WorkerInfo): void;
  onWorkerExit?(info: WorkerInfo, exit: WorkerExit): void;
  /**
   * A worker is about to stop (graceful) or being stopped or killed (not graceful). For a graceful
   * stop of a ready worker the stop message waits for the returned promise (at most 5 s).
   */
  onWorkerStopping?(info: WorkerInfo, reason: string, graceful: boolean): Promise<void> | void;
  /** A message a worker sent with `ctx.send(topic, body)`. */
  onWorkerMessage?(info: WorkerInfo, topic: string, body: unknown): void;
  /**
   * Rolling reloads: judge the canary (the first new worker) against the old ready workers;
   * `final` on the last look, after `canaryMs` (then "wait" counts as "pass").
   */
  canary?(
    candidate: WorkerInfo,
    incumbents: WorkerInfo[],
    look: { sinceMs: number; final: boolean },
  ): CanaryVerdict;
  /** A reload ended: every worker replaced, or rolled back (with why). */
  onReloadEnd?(pool: string, result: { generation: number; ok: boolean; reason?: string }): void;
}

interface Proc {
  pid: number;
  threadId: number | undefined;
  send(msg: ToWorker): void;
  /** Send a message with a socket handle (process mode); false when that is not possible. */
  sendHandle(msg: ToWorker, handle: object): boolean;
  /** A signal for a process; any signal terminates a thread. */
  kill(signal: NodeJS.Signals): void;
}

interface Rec {
  proc: Proc;
  /** Unique for the pool's life: who holds shared-state counts. */
  owner: number;
  id: number;
  generation: number;
  state: WorkerState;
  startedAt: number;
  readyAt: number | undefined;
  lastBeat: number;
  beaten: boolean;
  stats: Record<string, number>;
  rss: number;
  heapUsed: number;
  /** When a stopping worker gets SIGKILL. */
  deadline: number | undefined;
  /** Set when the master ends it on purpose; the exit is then not a failure. */
  killReason: string | undefined;
  /** The sockets it inherited (a reload may change the pool's), for `listener` requests. */
  listeners: readonly BoundListener[];
  /** Set when the worker asked to be replaced (`retire`): why. */
  retiring: string | undefined;
  /** Its own sockets (`workerListen`), closed when it is reaped. */
  own: BoundListener[];
}

/** A rolling reload in progress. */
interface Rolling {
  /** The slot being replaced now (1-based); past `desired` when done. */
  slot: number;
  /** When the canary became ready (undefined: no canary, or not yet ready). */
  canarySince: number | undefined;
  /** The canary has been judged (or there is none). */
  canaryDone: boolean;
  /** Slots already switched to the new generation (their old worker is stopped). */
  switched: number;
}

const entryUrl = new URL("./workerEntry.ts", import.meta.url);
/** A worker not heard from yet gets at least this long: Node's own startup must not count. */
const FIRST_BEAT_GRACE_MS = 30_000;
/** A fast stop waits this long before SIGKILL. */
const FAST_STOP_MS = 1000;
/** How long a graceful stop may wait for `onWorkerStopping` (taking a worker out of rotation). */
const ANNOUNCE_MS = 5000;
/** How long reading a timed-out worker's stack may delay its SIGKILL. */
const STACK_CAPTURE_MS = 10_000;
/** Exit reasons that are planned replacements, logged at info level. */
const plannedReasons = new Set(["stopped", "scaled down", "replaced"]);
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 5000;

export class WorkerPool {
  private options: PoolOptions;
  private readonly logger: Logger;
  private readonly wake: () => void;
  private readonly hooks: PoolHooks;
  private readonly records = new Set<Rec>();
  private readonly exits: { rec: Rec; code: number | null; signal: string | null }[] = [];
  private readonly backoff = new Map<number, { failures: number; notBefore: number }>();
  private listeners: readonly BoundListener[] = [];
  private generation = 1;
  private desired: number;
  private bootFailures = 0;
  private stopping = false;
  private previous: { options: PoolOptions; generation: number; desired: number } | undefined;
  private rolling: Rolling | undefined;
  private serial = 0;
  /** False until `start()`: a pool waiting for another to be ready spawns nothing. */
  private started = true;
  private nextOwner = 1;
  /** Counters shared by all workers (sharedState.ts); kept across reloads. */
  readonly shared = new SharedStore();

  constructor(options: PoolOptions, logger: Logger, wake: () => void, hooks: PoolHooks = {}) {
    this.options = options;
    this.desired = options.workers;
    this.logger = logger;
    this.wake = wake;
    this.hooks = hooks;
  }

  get name(): string {
    return this.options.name;
  }

  /** Hold off spawning until `start()` (a pool that starts after another one). */
  hold(): void {
    this.started = false;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.wake();
  }

  get isStarted(): boolean {
    return this.started;
  }

  /** A reload (of either strategy) is in progress. */
  get reloading(): boolean {
    return this.previous !== undefined || this.rolling !== undefined;
  }

  /** Send a topic message to one worker (by slot; every worker of that slot) or to all. */
  send(topic: string, body: unknown, id?: number): void {
    for (const r of this.records) {
      if (id === undefined || r.id === id) r.proc.send({ t: "msg", topic, body });
    }
  }

  /** The sockets new workers inherit; workers already running keep theirs. */
  setListeners(listeners: readonly BoundListener[]): void {
    this.listeners = listeners;
  }

  get currentOptions(): PoolOptions {
    return this.options;
  }

  get currentGeneration(): number {
    return this.generation;
  }

  /** Target worker count (after TTIN/TTOU/WINCH). */
  get target(): number {
    return this.desired;
  }

  /** Live workers, of any generation and state. */
  size(): number {
    return this.records.size;
  }

  /** Are all slots 1..target held by ready workers of the current generation, and no others? */
  settled(): boolean {
    let ready = 0;
    for (const r of this.records) {
      if (r.generation !== this.generation || r.state !== "ready") return false;
      ready++;
    }
    return ready === this.desired;
  }

  scale(delta: number): void {
    this.desired = Math.max(0, this.desired + delta);
    this.logger.info("scaling workers", { workers: this.desired });
  }

  /** Start replacing every worker with one running `options`. */
  reload(options: PoolOptions): void {
    if (this.reloading) {
      // A reload during a reload: the newest options win, from the workers running now.
      this.logger.info("a reload is in progress; it goes on with the newest options");
    }
    if (this.previous === undefined) {
      this.previous = { options: this.options, generation: this.generation, desired: this.desired };
    }
    this.options = options;
    this.desired = options.workers;
    this.generation++;
    this.bootFailures = 0;
    this.backoff.clear();
    const rolling = (options.reloadStrategy ?? "all") === "rolling";
    this.rolling = rolling
      ? { slot: 1, canarySince: undefined, canaryDone: (options.canaryMs ?? 0) <= 0, switched: 0 }
      : undefined;
    this.logger.info("reloading workers", {
      generation: this.generation,
      workers: this.desired,
      strategy: rolling ? "rolling" : "all",
    });
  }

  /** Stop every worker (graceful: drain within gracefulTimeout; else within a second). */
  stopAll(graceful: boolean, keepRunning = false): void {
    if (!keepRunning) this.stopping = true;
    this.desired = 0;
    for (const r of this.records) this.stopWorker(r, graceful, "stopped");
  }

  /** Pass USR1 on: workers reopen their log files. */
  reopenLogs(): void {
    for (const r of this.records) r.proc.send({ t: "reopen" });
  }

  snapshot(now = Date.now()): WorkerInfo[] {
    return [...this.records].map((r) => this.info(r, now)).sort((a, b) => a.id - b.id);
  }

  /**
   * Advance one step: reap exits, kill silent or overdue workers, then spawn/stop to match the
   * target. Returns an exit code when the pool gives up (boot failures, app load failure).
   */
  tick(now = Date.now()): number | undefined {
    const verdict = this.reap(now);
    if (verdict !== undefined) return verdict;
    this.murder(now);
    if (!this.stopping) this.manage(now);
    return undefined;
  }

  private info(r: Rec, now: number): WorkerInfo {
    return {
      pool: this.options.name,
      id: r.id,
      generation: r.generation,
      pid: r.proc.pid,
      threadId: r.proc.threadId,
      state: r.state,
      startedAt: r.startedAt,
      ageMs: now - r.startedAt,
      readyAt: r.readyAt,
      silentMs: now - r.lastBeat,
      requests: r.stats.requests ?? 0,
      rss: r.rss,
      heapUsed: r.heapUsed,
      stats: { ...r.stats },
      retiring: r.retiring,
      ownListeners: r.own.map((l) => l.address),
    };
  }

  private reap(now: number): number | undefined {
    while (this.exits.length > 0) {
      const { rec, code, signal } = this.exits.shift()!;
      this.records.delete(rec);
      for (const l of rec.own) l.close(true);
      this.shared.dropOwner(rec.owner);
      const booted = rec.readyAt !== undefined;
      const requested = rec.killReason !== undefined;
      let reason = rec.killReason ?? (signal ? `signal ${signal}` : `exit code ${code}`);
      if (!requested && !booted) reason = `boot failure (${reason})`;
      const exit: WorkerExit = { code, signal, reason, booted };
      const fields = { worker: rec.id, pid: rec.proc.pid, generation: rec.generation, reason };
      if (requested && (plannedReasons.has(rec.killReason!) || rec.retiring !== undefined)) {
        this.logger.info("worker exited", fields);
      } else {
        this.logger.warn("worker exited", fields);
      }
      this.hooks.onWorkerExit?.(this.info(rec, now), exit);
      if (requested || this.stopping) continue;

      // During a reload a new worker failing (even to load the app) must not take down the
      // old workers that still serve: the reload is abandoned instead.
      if (!booted && rec.generation === this.generation && this.previous && this.hasOlder()) {
        this.abandonReload("a new worker did not boot", reason);
        continue;
      }
      // The canary died while being watched: that is a verdict too.
      if (
        booted &&
        this.rolling &&
        !this.rolling.canaryDone &&
        rec.generation === this.generation &&
        this.hasOlder()
      ) {
        this.abandonReload("the canary worker exited", reason);
        continue;
      }
      if (code === ExitCode.appLoad) {
        this.logger.fatal("the app cannot be loaded; stopping", { worker: rec.id });
        return ExitCode.appLoad;
      }
      const slot = this.backoff.get(rec.id) ?? { failures: 0, notBefore: 0 };
      if (booted && rec.readyAt !== undefined && now - rec.readyAt > BACKOFF_MAX_MS * 2) {
        slot.failures = 0;
      }
      slot.failures++;
      slot.notBefore = now + Math.min(BACKOFF_BASE_MS * 2 ** (slot.failures - 1), BACKOFF_MAX_MS);
      this.backoff.set(rec.id, slot);
      if (!booted) {
        this.bootFailures++;
        if (this.bootFailures >= this.options.bootRetries) {
          this.logger.fatal("workers failed to boot; giving up", { failures: this.bootFailures });
          return ExitCode.workerBoot;
        }
      }
    }
    return undefined;
  }

  private hasOlder(): boolean {
    for (const r of this.records) if (r.generation < this.generation) return true;
    return false;
  }

  private abandonReload(what: string, detail: string): void {
    const prev = this.previous!;
    const failed = this.generation;
    const reason = `${what}: ${detail}`;
    if (this.rolling && this.rolling.switched > 0) {
      // Some slots run the new version already and their old workers are gone: replace them
      // back, the rolling way, so that capacity never dips.
      this.logger.error(`reload failed: ${what}; rolling back to the previous version`, {
        generation: failed,
        cause: detail,
      });
      for (const r of this.records) {
        if (r.generation === failed && r.state === "booting") {
          this.stopWorker(r, false, "reload abandoned");
        }
      }
      // No `previous` now: if the old version cannot boot either, that is a boot failure.
      this.options = prev.options;
      this.desired = prev.desired;
      this.generation++;
      this.previous = undefined;
      this.bootFailures = 0;
      this.backoff.clear();
      this.rolling = { slot: 1, canarySince: undefined, canaryDone: true, switched: 0 };
      this.hooks.onReloadEnd?.(this.options.name, { generation: failed, ok: false, reason });
      return;
    }
    this.logger.error(`reload failed: ${what}; keeping the old workers`, {
      generation: failed,
      cause: detail,
    });
    for (const r of this.records) {
      if (r.generation === failed) {
        // A canary that served requests drains them; one still booting just goes.
        this.stopWorker(r, r.state === "ready", "reload abandoned");
      }
    }
    this.options = prev.options;
    this.generation = prev.generation;
    this.desired = prev.desired;
    this.previous = undefined;
    this.rolling = undefined;
    this.bootFailures = 0;
    this.hooks.onReloadEnd?.(this.options.name, { generation: failed, ok: false, reason });
  }

  private murder(now: number): void {
    for (const r of this.records) {
      if (r.deadline !== undefined && now >= r.deadline) {
        this.logger.warn("worker did not stop in time; killing", { worker: r.id, pid: r.proc.pid });
        r.deadline = undefined;
        r.proc.kill("SIGKILL");
        continue;
      }
      if (this.options.timeout <= 0 || r.killReason === "timeout") continue;
      const limit = this.options.timeout * 1000;
      const silent = now - r.lastBeat;
      if (silent > (r.beaten ? limit : Math.max(limit, FIRST_BEAT_GRACE_MS))) {
        r.killReason = "timeout";
        r.state = "stopping";
        void this.hooks.onWorkerStopping?.(this.info(r, now), "timeout", false);
        const fields = { worker: r.id, pid: r.proc.pid, silentMs: silent };
        if (!this.options.stackOnTimeout || r.proc.threadId !== undefined || !r.beaten) {
          this.logger.error("worker timed out (no heartbeat); killing", fields);
          r.proc.kill("SIGKILL");
          continue;
        }
        // Read what it is stuck in, then kill it; the deadline is a backstop.
        r.deadline = now + STACK_CAPTURE_MS + 1000;
        const rec = r;
        void captureBlockedStack(r.proc.pid, {
          timeoutMs: STACK_CAPTURE_MS,
          reportExpression: `globalThis[Symbol.for(${JSON.stringify(BLOCKED_REPORT_KEY)})]?.()`,
        }).then((found) => {
          const blocked = new Error("event loop blocked");
          blocked.name = "BlockedWorker";
          blocked.stack = found.stack ? `BlockedWorker: event loop blocked in\n${found.stack}` : "";
          this.logger.error("worker timed out (no heartbeat); killing", {
            ...fields,
            ...(found.report ?? {}),
            ...(found.error ? { stackError: found.error } : {}),
            ...(found.stack ? { blocked } : {}),
          });
          rec.proc.kill("SIGKILL");
        });
      }
    }
  }

  private manage(now: number): void {
    if (!this.started) return;
    const current = new Map<number, Rec>();
    for (const r of this.records) {
      if (
        r.generation === this.generation &&
        (r.state === "booting" || r.state === "ready") &&
        r.retiring === undefined
      ) {
        current.set(r.id, r);
      }
    }
    const rolling = this.rolling;
    for (let id = 1; id <= this.desired; id++) {
      if (current.has(id)) continue;
      // A rolling reload replaces one slot at a time: later slots keep their old worker.
      if (rolling && id > rolling.slot && this.olderIn(id) !== undefined) continue;
      const slot = this.backoff.get(id);
      if (slot && now < slot.notBefore) {
        setTimeout(this.wake, slot.notBefore - now).unref();
        continue;
      }
      this.spawn(id, now);
    }
    for (const r of current.values()) {
      if (r.id > this.desired) this.stopWorker(r, true, "scaled down");
    }
    // A retiring worker serves on until its successor in the slot is ready.
    for (const r of this.records) {
      if (r.retiring === undefined || r.state !== "ready") continue;
      if (r.id > this.desired || current.get(r.id)?.state === "ready") {
        this.stopWorker(r, true, r.retiring);
      }
    }
    if (rolling) {
      this.advanceRolling(rolling, current, now);
      return;
    }
    if (this.previous && this.hasOlder()) {
      let allReady = true;
      for (let id = 1; id <= this.desired; id++) {
        if (current.get(id)?.state !== "ready") allReady = false;
      }
      if (allReady) {
        for (const r of this.records) {
          if (r.generation < this.generation) this.stopWorker(r, true, "stopped");
        }
        this.logger.info("reload complete; old workers are draining", {
          generation: this.generation,
        });
        this.previous = undefined;
        this.hooks.onReloadEnd?.(this.options.name, { generation: this.generation, ok: true });
      }
    } else if (this.previous) {
      this.previous = undefined;
      this.hooks.onReloadEnd?.(this.options.name, { generation: this.generation, ok: true });
    }
  }

  /** A ready worker of an older generation in slot `id`, if any. */
  private olderIn(id: number): Rec | undefined {
    for (const r of this.records) {
      if (r.id === id && r.generation < this.generation && r.state === "ready") return r;
    }
    return undefined;
  }

  private advanceRolling(rolling: Rolling, current: Map<number, Rec>, now: number): void {
    while (rolling.slot <= this.desired) {
      const fresh = current.get(rolling.slot);
      if (fresh?.state !== "ready") return;
      const old = [...this.records].filter(
        (r) => r.id === rolling.slot && r.generation < this.generation,
      );
      if (!rolling.canaryDone) {
        const incumbents = [...this.records].filter(
          (r) => r.generation < this.generation && r.state === "ready",
        );
        if (incumbents.length === 0) {
          rolling.canaryDone = true;
        } else {
          rolling.canarySince ??= fresh.readyAt ?? now;
          const sinceMs = now - rolling.canarySince;
          const final = sinceMs >= (this.options.canaryMs ?? 0);
          const look = this.hooks.canary?.(
            this.info(fresh, now),
            incumbents.map((r) => this.info(r, now)),
            { sinceMs, final },
          ) ?? { verdict: final ? "pass" : "wait" };
          if (look.verdict === "fail") {
            this.abandonReload("the canary failed", look.reason);
            return;
          }
          if (look.verdict === "wait" && !final) {
            setTimeout(this.wake, 250).unref();
            return;
          }
          rolling.canaryDone = true;
          this.logger.info("canary passed; rolling on", {
            worker: fresh.id,
            pid: fresh.proc.pid,
            generation: this.generation,
          });
        }
      }
      for (const r of old) this.stopWorker(r, true, "replaced");
      rolling.switched++;
      rolling.slot++;
    }
    // Every slot switched: old workers beyond the new count (a reload that scales down) go too.
    for (const r of this.records) {
      if (r.generation < this.generation) this.stopWorker(r, true, "replaced");
    }
    this.logger.info("rolling reload complete", { generation: this.generation });
    this.rolling = undefined;
    this.previous = undefined;
    this.hooks.onReloadEnd?.(this.options.name, { generation: this.generation, ok: true });
  }

  private stopWorker(r: Rec, graceful: boolean, reason: string): void {
    if (r.state === "stopping" || (r.state === "draining" && graceful)) return;
    const wasReady = r.state === "ready";
    r.killReason ??= reason;
    r.state = graceful ? "draining" : "stopping";
    const send = (): void => {
      r.deadline = Date.now() + (graceful ? this.options.gracefulTimeout * 1000 : FAST_STOP_MS);
      r.proc.send({ t: "stop", graceful });
      setTimeout(this.wake, r.deadline - Date.now() + 5).unref();
    };
    const announced = this.hooks.onWorkerStopping?.(this.info(r, Date.now()), reason, graceful);
    if (!graceful || !wasReady || announced === undefined) {
      send();
      return;
    }
    // Out of rotation first, then the stop (bounded: a hook that hangs delays it by ANNOUNCE_MS).
    let sent = false;
    const once = (): void => {
      if (sent) return;
      sent = true;
      // A fast stop meanwhile has already sent its own message.
      if (r.state === "draining") send();
    };
    const timer = setTimeout(once, ANNOUNCE_MS);
    timer.unref();
    Promise.resolve(announced).then(
      () => {
        clearTimeout(timer);
        once();
      },
      (error: unknown) => {
        this.logger.error("onWorkerStopping failed", { worker: r.id, error });
        clearTimeout(timer);
        once();
      },
    );
  }

  private spawn(id: number, now: number): void {
    const o = this.options;
    let own: BoundListener[] = [];
    if (o.workerListen) {
      const serial = ++this.serial;
      try {
        for (const spec of o.workerListen(id, serial)) own.push(bindListenerSync(spec));
      } catch (error) {
        for (const l of own) l.close(true);
        own = [];
        this.logger.error("cannot bind a worker's own socket", { worker: id, error });
        const slot = this.backoff.get(id) ?? { failures: 0, notBefore: 0 };
        slot.failures++;
        slot.notBefore = now + Math.min(BACKOFF_BASE_MS * 2 ** (slot.failures - 1), BACKOFF_MAX_MS);
        this.backoff.set(id, slot);
        return;
      }
    }
    const heartbeatMs =
      o.timeout > 0 ? Math.max(100, Math.min(1000, (o.timeout * 1000) / 4)) : 1000;
    const init: WorkerInit = {
      name: o.name,
      id,
      generation: this.generation,
      workerModule: o.workerModule,
      data: o.workerData,
      listeners: [],
      heartbeatMs,
      log: o.log,
      stackOnTimeout: o.stackOnTimeout && o.mode === "process",
    };
    const rec: Rec = {
      proc: undefined as unknown as Proc,
      owner: this.nextOwner++,
      id,
      generation: this.generation,
      state: "booting",
      startedAt: now,
      readyAt: undefined,
      lastBeat: now,
      beaten: false,
      stats: { requests: 0 },
      rss: 0,
      heapUsed: 0,
      deadline: undefined,
      killReason: undefined,
      listeners: [...this.listeners, ...own],
      retiring: undefined,
      own,
    };
    const onMessage = (msg: FromWorker): void => this.onMessage(rec, msg);
    const onExit = (code: number | null, signal: string | null): void => {
      this.exits.push({ rec, code, signal });
      this.wake();
    };
    rec.proc =
      o.mode === "thread"
        ? this.spawnThread(init, onMessage, onExit)
        : this.spawnProcess(init, own, onMessage, onExit);
    this.records.add(rec);
    this.logger.info("worker spawned", {
      worker: id,
      pid: rec.proc.pid,
      ...(rec.proc.threadId !== undefined ? { thread: rec.proc.threadId } : {}),
      generation: this.generation,
      ...(own.length > 0 ? { listen: own.map((l) => l.address).join(",") } : {}),
    });
    this.hooks.onWorkerSpawn?.(this.info(rec, now));
  }

  private onMessage(rec: Rec, msg: FromWorker): void {
    rec.lastBeat = Date.now();
    rec.beaten = true;
    if (msg.t === "ss") {
      const r = this.shared.serve(rec.owner, msg.q, performance.now());
      if (r.length > 0) rec.proc.send({ t: "ss", r });
    } else if (msg.t === "hb") {
      rec.stats = msg.stats;
      rec.rss = msg.rss;
      rec.heapUsed = msg.heapUsed;
    } else if (msg.t === "listener") {
      const l = rec.listeners[msg.index];
      const sent = l?.handle !== undefined && rec.proc.sendHandle(msg, l.handle);
      if (!sent) {
        rec.proc.send({ t: "listener", index: msg.index, error: "no socket handle to send" });
      }
    } else if (msg.t === "msg") {
      this.hooks.onWorkerMessage?.(this.info(rec, rec.lastBeat), msg.topic, msg.body);
    } else if (msg.t === "retire") {
      if (rec.retiring === undefined && rec.state === "ready") {
        rec.retiring = msg.reason;
        this.logger.info("worker asks to be replaced", {
          worker: rec.id,
          pid: rec.proc.pid,
          reason: msg.reason,
        });
        this.wake();
      }
    } else if (msg.t === "ready" && rec.state === "booting") {
      rec.state = "ready";
      rec.readyAt = rec.lastBeat;
      this.bootFailures = 0;
      this.backoff.delete(rec.id);
      this.logger.info("worker ready", { worker: rec.id, pid: rec.proc.pid });
      this.hooks.onWorkerReady?.(this.info(rec, rec.lastBeat));
      this.wake();
    }
  }

  private spawnProcess(
    init: WorkerInit,
    own: readonly BoundListener[],
    onMessage: (msg: FromWorker) => void,
    onExit: (code: number | null, signal: string | null) => void,
  ): Proc {
    // Descriptors 0-2 are stdio, 3 is IPC; listening sockets follow from 4, in spec order, then
    // the worker's own, then the further descriptors of the shared ones (`acceptors`).
    const sockets = [...this.listeners, ...own];
    const acceptors = this.options.acceptors ?? 1;
    const extra: number[] = [];
    init.listeners = sockets.map((l, i): WorkerListen => {
      if (i >= this.listeners.length) return { fd: 4 + i };
      const k = typeof acceptors === "number" ? acceptors : acceptors(l);
      if (k <= 1) return { fd: 4 + i };
      const also: number[] = [];
      for (let j = 1; j < k; j++) {
        also.push(4 + sockets.length + extra.length);
        extra.push(l.fd);
      }
      return { fd: 4 + i, also };
    });
    // publish-uid=http: the master reads the address from /json/list; nothing on stderr.
    const inspect = init.stackOnTimeout
      ? ["--inspect-port=127.0.0.1:0", "--inspect-publish-uid=http"]
      : [];
    const child: ChildProcess = spawn(
      process.execPath,
      [...this.options.execArgv, ...inspect, fileURLToPath(entryUrl)],
      {
        stdio: ["ignore", "inherit", "inherit", "ipc", ...sockets.map((l) => l.fd), ...extra],
        serialization: "json",
      },
    );
    let exited = false;
    const exit = (code: number | null, signal: string | null): void => {
      if (exited) return;
      exited = true;
      onExit(code, signal);
    };
    child.on("message", (m) => onMessage(m as FromWorker));
    child.on("exit", exit);
    child.on("error", (error) => {
      this.logger.error("worker process error", { worker: init.id, error });
      if (child.pid === undefined) exit(ExitCode.failure, null);
    });
    const send = (msg: ToWorker): void => {
      if (!child.connected) return;
      child.send(msg, (error) => {
        // The worker may exit between the check and the write: its exit event tells the rest.
        if (error) this.logger.debug("cannot message worker", { worker: init.id, error });
      });
    };
    send({ t: "init", init });
    const logger = this.logger;
    return {
      pid: child.pid ?? -1,
      threadId: undefined,
      send,
      sendHandle(msg, handle) {
        if (!child.connected) return false;
        // keepOpen: the master's own descriptor must stay open; the worker gets a copy.
        child.send(msg, handle as never, { keepOpen: true }, (error) => {
          if (error) logger.debug("cannot send a socket", { worker: init.id, error });
        });
        return true;
      },
      kill(signal) {
        if (!exited) child.kill(signal);
      },
    };
  }

  private spawnThread(
    init: WorkerInit,
    onMessage: (msg: FromWorker) => void,
    onExit: (code: number | null, signal: string | null) => void,
  ): Proc {
    // Threads share the process's descriptor table: a thread closing its server on an inherited
    // fd would close the master's socket. So each thread binds its own socket with SO_REUSEPORT
    // beside the master's (bound with the same flag), and unix sockets are refused in this mode.
    init.listeners = this.listeners.map((l): WorkerListen => {
      if (l.spec.kind !== "tcp") throw new Error("thread mode supports TCP listeners only");
      return { host: l.spec.host, port: l.port ?? l.spec.port, reusePort: true };
    });
    const worker = new Worker(entryUrl, { workerData: init });
    let exited = false;
    worker.on("message", (m) => onMessage(m as FromWorker));
    worker.on("error", (error) => {
      this.logger.error("worker thread error", { worker: init.id, error });
    });
    worker.on("exit", (code) => {
      exited = true;
      onExit(code, null);
    });
    return {
      pid: process.pid,
      threadId: worker.threadId,
      send(msg) {
        if (!exited) worker.postMessage(msg);
      },
      sendHandle() {
        return false;
      },
      kill() {
        if (!exited) void worker.terminate();
      },
    };
  }
}
