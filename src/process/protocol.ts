/**
 * Messages between the master and a worker: Node's IPC channel for child processes, the worker's
 * message port for threads. JSON-able only, so both transports carry them unchanged.
 */
import type { LoggerOptions } from "../core/logger.ts";
import type { SharedBatch, SharedReplies } from "./sharedState.ts";

/**
 * What a worker passes to `server.listen()` for one listen spec: an inherited descriptor (process
 * mode), or its own SO_REUSEPORT socket on the master's address (thread mode).
 */
export type WorkerListen =
  | { fd: number; also?: number[] }
  | { host: string; port: number; reusePort: true };

/** Everything a worker needs to start, sent once (IPC message, or `workerData` for threads). */
export interface WorkerInit {
  name: string;
  id: number;
  generation: number;
  workerModule: string;
  data: unknown;
  listeners: WorkerListen[];
  /** Milliseconds between heartbeats. */
  heartbeatMs: number;
  log: LoggerOptions;
  /**
   * The master may open this worker's inspector (SIGUSR1) to read the stack of a blocked event
   * loop before killing it: the worker must not ignore SIGUSR1, and closes an inspector it finds
   * open while its loop runs (a stray signal).
   */
  stackOnTimeout?: boolean;
}

export type ToWorker =
  | { t: "init"; init: WorkerInit }
  | { t: "stop"; graceful: boolean }
  | { t: "reopen" }
  /** Answers to shared-state calls (sharedState.ts). */
  | { t: "ss"; r: SharedReplies }
  /** Sent with a handle: a fresh copy of listening socket `index` (answers `listener`). */
  | { t: "listener"; index: number; error?: string }
  /** A message for the worker module (`ctx.onMessage(topic, fn)`), from the master's tier. */
  | { t: "msg"; topic: string; body: unknown };

export type FromWorker =
  | { t: "ready" }
  | { t: "hb"; stats: Record<string, number>; rss: number; heapUsed: number }
  /** Shared-state calls made during one event-loop turn (sharedState.ts). */
  | { t: "ss"; q: SharedBatch }
  /** Ask for a fresh copy of listening socket `index` (process mode). */
  | { t: "listener"; index: number }
  /** Replace me: start my successor, and stop me gracefully once it is ready. */
  | { t: "retire"; reason: string }
  /** A message from the worker module (`ctx.send(topic, body)`) for the master's tier. */
  | { t: "msg"; topic: string; body: unknown };
