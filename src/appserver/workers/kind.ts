/**
 * A worker kind decides when a worker accepts connections and when a request may run: the
 * concurrency model, one file per kind (gunicorn's workers/ folder). The worker (../worker.ts)
 * owns the sockets, the HTTP server and the request pipeline, and tells its kind what happens.
 */
import type { Socket } from "node:net";
import type { Acceptor } from "../accept.ts";

export interface Kind {
  /** A connection was just accepted (called inside the accept callback: pausing here takes one). */
  accepted(socket: Socket): void;
  /** A connection closed. */
  closed(socket: Socket): void;
  /**
   * A request (or an upgrade) on `socket` is ready to be served; call `run` now or later (never
   * twice), or not at all when `gone()` says its client left meanwhile.
   */
  request(socket: Socket, gone: () => boolean, run: () => void): void;
  /** A request that ran has finished (its response ended, its upgraded connection closed). */
  finished(): void;
  /** Should the response to this request keep the connection open? */
  keepAlive(): boolean;
  /** Stop accepting for good (graceful stop, memory limit). */
  drain(): void;
}

export interface KindOptions {
  acceptors: readonly Acceptor[];
  /** `workerConnections` (async). */
  maxConnections: number;
  /** `keepAlive` > 0 (async). */
  keepAlive: boolean;
}
