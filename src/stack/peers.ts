/**
 * The master's table of app workers that may take requests, and its delivery to the web
 * workers (src/stack/webWorker.ts applies it to their `app` upstream group).
 *
 * - An app worker joins the table when it is ready (never while booting).
 * - It leaves the table when the pool is about to stop it (reload, scale down, retirement,
 *   rollback: `onWorkerStopping`), when it is killed or dies. For a graceful stop, the stop
 *   waits until every ready web worker has acknowledged a table without it (or 2 s pass): from
 *   then on no web worker sends it a new request, and it drains what it has.
 * - A web worker gets the current table when it is spawned (before it compiles), and every new
 *   version as it is made; tables carry increasing versions so that a late one is ignored.
 */
import type { Master, WorkerInfo } from "../process/master.ts";
import type { PeerTable, PeerView } from "./webWorker.ts";

const ACK_WAIT_MS = 2000;

export class AppPeers {
  private readonly peers = new Map<number, string>();
  private version = 0;
  private readonly acked = new Map<number, number>();
  private waiters: { version: number; done: () => void }[] = [];
  /** Each web worker's view of the peers (by web worker pid), from `stack.upstream`. */
  readonly views = new Map<number, PeerView[]>();
  private master: Master | undefined;

  attach(master: Master): void {
    this.master = master;
  }

  table(): PeerTable {
    return { version: this.version, peers: [...this.peers.values()].sort() };
  }

  /** The socket of a ready app worker, by pid. */
  addressOf(pid: number): string | undefined {
    return this.peers.get(pid);
  }

  private publish(): number {
    this.version++;
    this.master?.send("web", "stack.peers", this.table());
    return this.version;
  }

  /** An app worker is ready: it takes requests from now on. */
  ready(info: WorkerInfo): void {
    const address = info.ownListeners[0];
    if (address === undefined) return;
    this.peers.set(info.pid, address);
    this.publish();
  }

  /** An app worker goes: out of the table; resolves once the web workers know (graceful). */
  leaving(info: WorkerInfo): Promise<void> | undefined {
    if (!this.peers.delete(info.pid)) return undefined;
    const version = this.publish();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.done !== resolve);
        resolve();
      }, ACK_WAIT_MS);
      timer.unref();
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ version, done });
      this.check();
    });
  }

  /** A web worker acknowledged `version`. */
  ack(info: WorkerInfo, version: number): void {
    this.acked.set(info.pid, Math.max(version, this.acked.get(info.pid) ?? 0));
    this.check();
  }

  /** A web worker was spawned: it needs the table now. */
  webSpawned(info: WorkerInfo): void {
    this.master?.send("web", "stack.peers", this.table(), info.id);
  }

  webExited(info: WorkerInfo): void {
    this.acked.delete(info.pid);
    this.views.delete(info.pid);
    this.check();
  }

  /** Requests in flight per app worker address, for the web workers' balancing. */
  load(appWorkers: readonly WorkerInfo[]): Record<string, number> {
    const out: Record<string, number> = {};
    for (const w of appWorkers) {
      const a = this.peers.get(w.pid);
      if (a !== undefined) out[a] = w.stats.inflight ?? 0;
    }
    return out;
  }

  private check(): void {
    if (this.waiters.length === 0 || !this.master) return;
    const web = this.master
      .snapshot()
      .workerList.filter((w) => w.pool === "web" && w.state === "ready");
    this.waiters = this.waiters.filter((w) => {
      const all = web.every((x) => (this.acked.get(x.pid) ?? 0) >= w.version);
      if (all) w.done();
      return !all;
    });
  }
}
