/**
 * Leases on sync app workers across all the web workers of `brigade up`: a sync app worker runs
 * one request at a time, so the right to send it one is held in one place, the master, and
 * lent to one web worker at a time (gunicorn's sync workers behind nginx rely on the kernel's
 * accept queue instead; here a request waits at the front, never in a busy worker's backlog
 * while another worker is idle).
 *
 * - Web worker side, {@link LeaseClient}: the `app` group's arbiter (`GroupArbiter` of
 *   src/upstream/group.ts). A request asks the master for a lease on any ready app worker its
 *   group could use (those it already tried, or sees as not live, excluded); the master grants
 *   one at once or queues the request, first come first served over every web worker, and
 *   grants it the moment a lease of the pool frees. The web worker bounds its own waiting
 *   requests (`stack.appQueue`, beyond one per app worker) and their wait (the group's queue
 *   timeout): past either the request is answered 503, as the group's own queue does. The lease
 *   is given back when the group's lease is (the response done or aborted, an upgraded
 *   connection closed).
 * - Master side, {@link AppLeases}: which app worker is held by which request of which web
 *   worker, and the queue. A web worker that exits (killed included) gives back all it held
 *   and its waiting requests leave the queue.
 *
 * Async app pools do not use it: they take requests as they come, with no extra round trip.
 *
 * The wire (topic `stack.lease`, both ways; calls of one event-loop turn travel together):
 *   web -> master  { o: owner, q: [ 0 id n addr{n} | 1 id | 2 id ... ] }
 *                   take (excluding addresses) | cancel a waiting take | release a granted one
 *   master -> web  { o: owner, g: [ id addr ... ] }   grants
 * `owner` is a token each web worker draws, since messages go to a slot (old and new workers of
 * a slot both get them during a web reload).
 */
import { randomBytes } from "node:crypto";
import type { WorkerInfo } from "../process/master.ts";
import type { WorkerContext } from "../process/worker.ts";
import {
  type AcquireOptions,
  type GroupArbiter,
  Lease,
  type Outcome,
  type Peer,
  type PeerPool,
  type SelectContext,
  UpstreamError,
  type UpstreamGroup,
} from "../upstream/index.ts";

export const LEASE_TOPIC = "stack.lease";

const Op = { take: 0, cancel: 1, release: 2 } as const;

interface LeaseRequest {
  o: string;
  q: (number | string)[];
}

interface LeaseGrants {
  o: string;
  g: (number | string)[];
}

// ---- master side --------------------------------------------------------------------------

interface Owner {
  token: string;
  slot: number;
  /** `pid:threadId` of the web worker. */
  worker: string;
  /** Granted lease id -> app worker address. */
  held: Map<number, string>;
}

interface Waiting {
  owner: Owner;
  id: number;
  exclude: Set<string>;
}

function workerKey(info: WorkerInfo): string {
  return `${info.pid}:${info.threadId ?? 0}`;
}

export class AppLeases {
  /** App worker address -> the owner holding it. */
  private readonly holder = new Map<string, Owner>();
  /** When each address was last given back (the longest idle is lent first). */
  private readonly freedAt = new Map<string, number>();
  private readonly owners = new Map<string, Owner>();
  private queue: Waiting[] = [];
  private readonly out = new Map<Owner, (number | string)[]>();
  private tick = 0;
  private readonly peers: () => readonly string[];
  private readonly send: (slot: number, body: LeaseGrants) => void;

  constructor(peers: () => readonly string[], send: (slot: number, body: LeaseGrants) => void) {
    this.peers = peers;
    this.send = send;
  }

  /** A `stack.lease` message from a web worker. */
  receive(info: WorkerInfo, body: unknown): void {
    const m = body as LeaseRequest;
    if (typeof m?.o !== "string" || !Array.isArray(m.q)) return;
    let owner = this.owners.get(m.o);
    if (!owner) {
      owner = { token: m.o, slot: info.id, worker: workerKey(info), held: new Map() };
      this.owners.set(m.o, owner);
    }
    const q = m.q;
    let released = false;
    for (let i = 0; i < q.length; ) {
      const op = q[i];
      const id = q[i + 1] as number;
      if (op === Op.take) {
        const n = q[i + 2] as number;
        const exclude = new Set(q.slice(i + 3, i + 3 + n) as string[]);
        i += 3 + n;
        // First come, first served: a take waits behind those already waiting.
        const free = this.queue.length === 0 ? this.free(exclude) : undefined;
        if (free !== undefined) this.grant(owner, id, free);
        else this.queue.push({ owner, id, exclude });
      } else if (op === Op.cancel) {
        i += 2;
        this.queue = this.queue.filter((w) => !(w.owner === owner && w.id === id));
      } else if (op === Op.release) {
        i += 2;
        const address = owner.held.get(id);
        if (address === undefined) continue;
        owner.held.delete(id);
        if (this.holder.get(address) === owner) this.holder.delete(address);
        this.freedAt.set(address, ++this.tick);
        released = true;
      } else break;
    }
    if (released) this.grantWaiting();
    this.flush();
  }

  /** A web worker exited: what it held is free, its waiting requests are gone. */
  webExited(info: WorkerInfo): void {
    const key = workerKey(info);
    let freed = false;
    for (const [token, owner] of this.owners) {
      if (owner.worker !== key) continue;
      this.owners.delete(token);
      this.out.delete(owner);
      for (const address of owner.held.values()) {
        if (this.holder.get(address) === owner) this.holder.delete(address);
        freed = true;
      }
      this.queue = this.queue.filter((w) => w.owner !== owner);
    }
    if (freed) this.grantWaiting();
    this.flush();
  }

  /** The table of app workers changed (one is ready): waiting requests may go now. */
  pump(): void {
    // Forget when departed app workers were last free (a successor has a socket of its own).
    const live = new Set(this.peers());
    for (const a of this.freedAt.keys()) if (!live.has(a)) this.freedAt.delete(a);
    this.grantWaiting();
    this.flush();
  }

  private grantWaiting(): void {
    while (this.queue.length > 0) {
      let granted = false;
      for (let i = 0; i < this.queue.length; i++) {
        const w = this.queue[i]!;
        const free = this.free(w.exclude);
        if (free === undefined) continue;
        this.queue.splice(i, 1);
        this.grant(w.owner, w.id, free);
        granted = true;
        break;
      }
      if (!granted) return;
    }
  }

  /** Leases held and requests waiting, for status and tests. */
  stats(): { held: number; waiting: number } {
    return { held: this.holder.size, waiting: this.queue.length };
  }

  private free(exclude: ReadonlySet<string>): string | undefined {
    let best: string | undefined;
    let bestAt = Number.POSITIVE_INFINITY;
    for (const a of this.peers()) {
      if (this.holder.has(a) || exclude.has(a)) continue;
      const at = this.freedAt.get(a) ?? 0;
      if (at < bestAt) {
        best = a;
        bestAt = at;
      }
    }
    return best;
  }

  private grant(owner: Owner, id: number, address: string): void {
    this.holder.set(address, owner);
    owner.held.set(id, address);
    let list = this.out.get(owner);
    if (!list) {
      list = [];
      this.out.set(owner, list);
    }
    list.push(id, address);
  }

  /** Send the grants made, one message per web worker. */
  private flush(): void {
    if (this.out.size === 0) return;
    for (const [o, g] of this.out) this.send(o.slot, { o: o.token, g });
    this.out.clear();
  }
}

// ---- web worker side ----------------------------------------------------------------------

/** A group lease that also gives the master's lease back. */
class HeldLease extends Lease {
  private readonly giveBack: () => void;
  private given = false;

  constructor(group: UpstreamGroup, peer: Peer, pool: PeerPool, giveBack: () => void) {
    super(group, peer, pool, undefined);
    this.giveBack = giveBack;
  }

  override release(outcome?: Outcome): void {
    super.release(outcome);
    if (this.given) return;
    this.given = true;
    this.giveBack();
  }
}

interface Pending {
  /** The take's id now (a take asked again after a grant it could not use gets a new one). */
  id: number;
  group: UpstreamGroup;
  exclude: string[];
  resolve(lease: Lease): void;
  reject(err: unknown): void;
  cleanup(): void;
}

export class LeaseClient implements GroupArbiter {
  private readonly token = randomBytes(6).toString("base64url");
  private readonly ctx: WorkerContext;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private batch: (number | string)[] = [];
  private scheduled = false;

  constructor(ctx: WorkerContext) {
    this.ctx = ctx;
    ctx.onMessage(LEASE_TOPIC, (body) => {
      const m = body as LeaseGrants;
      if (m?.o === this.token && Array.isArray(m.g)) this.granted(m.g);
    });
  }

  /** Requests waiting for a lease now. */
  get waiting(): number {
    return this.pending.size;
  }

  acquire(group: UpstreamGroup, _ctx: SelectContext, options: AcquireOptions): Promise<Lease> {
    const tried = options.tried ?? new Set<Peer>();
    const now = group.clock();
    const all = group.peers;
    const single = all.length === 1;
    const exclude: string[] = [];
    let usable = 0;
    for (const p of all) {
      if (!tried.has(p) && p.live(now, single)) usable++;
      else exclude.push(p.server);
    }
    if (usable === 0) {
      return Promise.reject(
        new UpstreamError("unavailable", "select", { message: "no live upstreams", sent: false }),
      );
    }
    const q = group.config.queue;
    // One request per app worker may be granted at once; beyond, appQueue may wait.
    if (this.pending.size >= q.size + usable) {
      return Promise.reject(
        new UpstreamError("busy", "select", {
          message: `every app worker is busy and the queue is full (${q.size})`,
          sent: false,
        }),
      );
    }
    return new Promise<Lease>((resolve, reject) => {
      const signal = options.signal;
      const giveUp = (err: UpstreamError): void => {
        if (this.pending.get(entry.id) !== entry) return;
        this.pending.delete(entry.id);
        cleanup();
        this.push(Op.cancel, entry.id);
        reject(err);
      };
      const onAbort = (): void =>
        giveUp(
          new UpstreamError("aborted", "select", { message: "aborted in queue", sent: false }),
        );
      const timer = setTimeout(
        () =>
          giveUp(
            new UpstreamError("busy", "select", {
              message: `no app worker became free within the queue timeout (${q.timeout}s)`,
              sent: false,
            }),
          ),
        q.timeout * 1000,
      );
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      if (signal?.aborted) {
        cleanup();
        reject(
          new UpstreamError("aborted", "select", { message: "aborted in queue", sent: false }),
        );
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      const entry: Pending = { id: this.nextId++, group, exclude, resolve, reject, cleanup };
      this.pending.set(entry.id, entry);
      this.push(Op.take, entry.id, exclude.length, ...exclude);
    });
  }

  private granted(g: (number | string)[]): void {
    for (let i = 0; i + 1 < g.length; i += 2) {
      const id = g[i] as number;
      const address = g[i + 1] as string;
      const p = this.pending.get(id);
      if (!p) {
        // Cancelled meanwhile (timed out, aborted): not ours any more.
        this.push(Op.release, id);
        continue;
      }
      this.pending.delete(id);
      const group = p.group;
      const now = group.clock();
      const peer = group.peers.find((x) => x.server === address);
      if (!peer || group.isClosed || !peer.live(now, group.peers.length === 1)) {
        // Gone or not live here (the table moved): give it back and ask again without it.
        this.push(Op.release, id);
        const exclude = [...p.exclude, address];
        if (group.isClosed || group.peers.every((x) => exclude.includes(x.server))) {
          p.cleanup();
          p.reject(
            new UpstreamError("unavailable", "select", {
              message: "no live upstreams",
              sent: false,
            }),
          );
          continue;
        }
        p.id = this.nextId++;
        p.exclude = exclude;
        this.pending.set(p.id, p);
        this.push(Op.take, p.id, exclude.length, ...exclude);
        continue;
      }
      p.cleanup();
      peer.selected(now);
      p.resolve(new HeldLease(group, peer, group.poolOf(peer), () => this.push(Op.release, id)));
    }
  }

  private push(...ops: (number | string)[]): void {
    for (const x of ops) this.batch.push(x);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const q = this.batch;
      this.batch = [];
      if (q.length > 0) this.ctx.send(LEASE_TOPIC, { o: this.token, q });
    });
  }
}
