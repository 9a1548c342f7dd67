/**
 * An upstream group (nginx's `upstream {}`): the peers, the policy that picks among them, and
 * everything that decides whether a peer may take a request: passive and active health,
 * maxConns with the waiting queue, backups, draining, slow start; plus one connection pool per
 * peer and the hostname re-resolution that keeps the peer list current.
 *
 * A request takes a `Lease` on a peer (`acquire`), uses the peer's pool (`lease.pool`) or any
 * transport of its own, and gives the lease back with the outcome (`lease.release("failure")`),
 * which is what passive health, least connections and the queue run on. `request()` does all of
 * it for an HTTP request, with retries (retry.ts).
 *
 * Selection, for one attempt, in order (nginx's round-robin peer get, plus nginx plus's queue):
 * 1. the policy picks among the primaries that are live (not down, draining, unhealthy,
 *    unready or failed), below maxConns and not yet tried by this request;
 * 2. none: if some primary is live but busy and a queue is configured, the request waits;
 *    otherwise the backups are tried the same way;
 * 3. none: busy peers and a queue mean waiting (first come, first served, bounded in size
 *    and time: 503 past either); busy without a queue is 503 at once; nothing live is
 *    "no live upstreams" (502), and, as nginx does, failed peers are then forgiven so the
 *    next request tries them again rather than nothing ever being tried.
 */

import { isIP } from "node:net";
import type { UpstreamGroupConfig, UpstreamPeerConfig } from "../config/settings/upstream.ts";
import { upstreamPeer } from "../config/settings/upstream.ts";
import { type InOf, type Issue, invalid, parsePeerAddress } from "../config/types.ts";
import type { AbortLike } from "../core/abort.ts";
import type { Logger } from "../core/logger.ts";
import { UpstreamError } from "./errors.ts";
import { type GroupMessage, groupChannel, peerChannel, publish, resolveChannel } from "./events.ts";
import { HealthChecker } from "./health.ts";
import { Peer, type PeerState, type PeerTarget, targetName } from "./peer.ts";
import {
  createPolicy,
  type Policy,
  type SelectContext,
  type Selection,
  type SelectView,
} from "./policies/index.ts";
import { PeerPool, type ResponseHandler } from "./pool.ts";
import {
  type GroupRequest,
  type GroupResponse,
  requestWithRetries,
  sendWithRetries,
} from "./retry.ts";

/** Resolves a hostname to its addresses (IPv4 and IPv6), as `dns.promises.lookup` does. */
export type Lookup = (hostname: string) => Promise<string[]>;

export interface GroupOptions {
  /** Where state changes are logged (warn for failures, info for recoveries). */
  logger?: Logger | undefined;
  /** Milliseconds; `performance.now` by default. Tests pass their own. */
  clock?: () => number;
  /** Hostname resolution; `dns.promises.lookup(host, { all: true })` by default. */
  lookup?: Lookup;
  /** Random numbers in [0, 1) for randomTwo; `Math.random` by default. */
  random?: () => number;
}

/** The outcome of an attempt, for passive health and the retry driver. */
export type Outcome = "success" | "failure" | "neutral";

/** The right to send one attempt of one request to one peer. Give it back exactly once. */
export class Lease {
  readonly peer: Peer;
  readonly pool: PeerPool;
  /** Set-Cookie header value to add to the response (sticky), if any. */
  readonly setCookie: string | undefined;
  /** Set by the retry driver when it returns a response it judged failed (a final 502). */
  presetOutcome: Outcome | undefined;
  private readonly group: UpstreamGroup;
  private released = false;

  constructor(group: UpstreamGroup, peer: Peer, pool: PeerPool, setCookie: string | undefined) {
    this.group = group;
    this.peer = peer;
    this.pool = pool;
    this.setCookie = setCookie;
  }

  /** The attempt ended. `failure` counts against the peer (maxFails); `neutral` does not count. */
  release(outcome?: Outcome): void {
    if (this.released) return;
    this.released = true;
    this.group.finish(this.peer, outcome ?? this.presetOutcome ?? "success");
  }
}

/**
 * Someone else decides which peer a request may use (`brigade up`'s master, for sync app
 * workers shared by several web workers): set with `group.arbiter`, it replaces the group's own
 * selection and queue for `acquire`. It must give back a `Lease` of this group and answer busy
 * and unavailable as `acquire` does.
 */
export interface GroupArbiter {
  acquire(group: UpstreamGroup, ctx: SelectContext, options: AcquireOptions): Promise<Lease>;
}

export interface AcquireOptions {
  /** Peers this request already tried (the retry driver's; excluded from selection). */
  tried?: ReadonlySet<Peer>;
  /** Abort a wait in the queue. */
  signal?: AbortLike | undefined;
}

export interface PeerSnapshot {
  name: string;
  server: string;
  state: PeerState;
  backup: boolean;
  weight: number;
  effectiveWeight: number;
  active: number;
  maxConns: number;
  fails: number;
  requests: number;
  failures: number;
  healthy: boolean;
  pool: ReturnType<PeerPool["stats"]>;
}

export interface GroupSnapshot {
  name: string;
  policy: string;
  peers: PeerSnapshot[];
  queue: { waiting: number; size: number };
}

interface ServerEntry {
  spec: UpstreamPeerConfig;
  /** A hostname to resolve (TCP, not an IP literal). */
  hostname: string | undefined;
  port: number;
  peers: Peer[];
  timer: NodeJS.Timeout | undefined;
}

interface Waiter {
  ctx: SelectContext;
  tried: ReadonlySet<Peer>;
  resolve(lease: Lease): void;
  reject(err: unknown): void;
  timer: NodeJS.Timeout | undefined;
  cleanup(): void;
}

type Pick = { lease: Lease } | { wait: true } | { error: UpstreamError };

const noPeers: ReadonlySet<Peer> = new Set();

/** The {@link SelectView} of one pick: the time, whether the group is a single peer, who was tried. */
class PickView implements SelectView {
  now = 0;
  single = false;
  tried: ReadonlySet<Peer> = noPeers;
  eligible(p: Peer): boolean {
    return !this.tried.has(p) && !p.full() && p.live(this.now, this.single);
  }
  eligibleBound(p: Peer): boolean {
    return (
      !this.tried.has(p) &&
      !p.full() &&
      !p.down &&
      p.healthy &&
      p.ready &&
      !p.failed(this.now, this.single)
    );
  }
}

const defaultLookup: Lookup = async (hostname) => {
  const { lookup } = await import("node:dns/promises");
  const found = await lookup(hostname, { all: true, order: "verbatim" });
  return found.map((a) => a.address);
};

export class UpstreamGroup {
  readonly name: string;
  readonly config: UpstreamGroupConfig;
  private readonly logger: Logger | undefined;
  readonly clock: () => number;
  private readonly lookup: Lookup;
  private readonly entries: ServerEntry[] = [];
  private primary: Peer[] = [];
  private backup: Peer[] = [];
  private readonly primaryPolicy: Policy;
  private readonly backupPolicy: Policy;
  private readonly pools = new Map<Peer, PeerPool>();
  private readonly waiters: Waiter[] = [];
  private readonly drainWaiters = new Map<Peer, (() => void)[]>();
  private readonly health: HealthChecker | undefined;
  /** What policies see of a pick, one object reused by every pick (picks are synchronous). */
  private readonly view = new PickView();
  private closed = false;
  /** Selection delegated (see {@link GroupArbiter}); undefined: the group selects itself. */
  arbiter: GroupArbiter | undefined;

  /**
   * Build a group from a validated config (see `normalizeGroup` for raw input). Peers with IP or
   * unix addresses exist at once; hostnames join once `start()` has resolved them.
   */
  constructor(name: string, config: UpstreamGroupConfig, options: GroupOptions = {}) {
    this.name = name;
    this.config = config;
    this.logger = options.logger?.child({ upstream: name });
    this.clock = options.clock ?? (() => performance.now());
    this.lookup = options.lookup ?? defaultLookup;
    this.primaryPolicy = createPolicy(config.policy, options.random);
    this.backupPolicy = createPolicy(config.policy, options.random);
    for (const spec of config.peers) this.addEntry(spec);
    this.rebuild();
    this.health = config.healthCheck
      ? new HealthChecker(this, config.healthCheck, this.clock)
      : undefined;
    publish<GroupMessage>(groupChannel, { event: "created", group: this });
  }

  /** Build, resolve hostnames, start health checks and re-resolution. */
  static async create(
    name: string,
    config: UpstreamGroupConfig,
    options: GroupOptions = {},
  ): Promise<UpstreamGroup> {
    const group = new UpstreamGroup(name, config, options);
    await group.start();
    return group;
  }

  /** Resolve every hostname once, then keep re-resolving and checking in the background. */
  async start(): Promise<void> {
    await Promise.all(this.entries.map((e) => this.resolveEntry(e)));
    this.health?.start();
  }

  /** Every peer, primaries then backups. */
  get peers(): readonly Peer[] {
    return [...this.primary, ...this.backup];
  }

  /** The pool of a peer of this group. */
  poolOf(peer: Peer): PeerPool {
    let pool = this.pools.get(peer);
    if (!pool) {
      const c = this.config;
      pool = new PeerPool(peer.target, {
        idle: c.keepalive.idle,
        idleTimeout: c.keepalive.timeout * 1000,
        maxRequests: c.keepalive.requests,
        connectTimeout: c.timeouts.connect * 1000,
        sendTimeout: c.timeouts.send * 1000,
        readTimeout: c.timeouts.read * 1000,
      });
      this.pools.set(peer, pool);
    }
    return pool;
  }

  // ---- selection ----------------------------------------------------------------------------

  /**
   * A lease on a peer for one attempt: at once if a peer is eligible, after a wait in the queue
   * if all are busy, or an `UpstreamError` (`unavailable` 502, `busy` 503).
   */
  acquire(ctx: SelectContext = {}, options: AcquireOptions = {}): Promise<Lease> {
    const r = this.acquireNow(ctx, options);
    return r instanceof Lease ? Promise.resolve(r) : r;
  }

  /** `acquire`, with the lease itself rather than a promise when a peer is free at once. */
  acquireNow(ctx: SelectContext = {}, options: AcquireOptions = {}): Lease | Promise<Lease> {
    if (this.arbiter && !this.closed) return this.arbiter.acquire(this, ctx, options);
    const tried = options.tried ?? new Set<Peer>();
    const r = this.pick(ctx, tried);
    if ("lease" in r) return r.lease;
    if ("error" in r) return Promise.reject(r.error);
    const q = this.config.queue;
    if (this.waiters.length >= q.size) {
      return Promise.reject(
        new UpstreamError("busy", "select", {
          message: `every peer is at maxConns and the queue is full (${q.size})`,
          sent: false,
        }),
      );
    }
    return new Promise<Lease>((resolve, reject) => {
      const signal = options.signal;
      const onAbort = () => {
        this.removeWaiter(waiter);
        reject(
          new UpstreamError("aborted", "select", { message: "aborted in queue", sent: false }),
        );
      };
      const waiter: Waiter = {
        ctx,
        tried,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.removeWaiter(waiter);
          reject(
            new UpstreamError("busy", "select", {
              message: `no peer became free within the queue timeout (${q.timeout}s)`,
              sent: false,
            }),
          );
        }, q.timeout * 1000),
        cleanup: () => {
          clearTimeout(waiter.timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** True if some peer not in `tried` is live (capacity aside): another attempt could run. */
  canTry(tried: ReadonlySet<Peer>): boolean {
    const now = this.clock();
    const single = this.isSingle();
    return this.peers.some((p) => !tried.has(p) && p.live(now, single));
  }

  /** Closed (`close()`): every acquire fails. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** How many peers there are (the default bound of retries). */
  get size(): number {
    return this.primary.length + this.backup.length;
  }

  private isSingle(): boolean {
    return this.primary.length === 1 && this.backup.length === 0;
  }

  private pick(ctx: SelectContext, tried: ReadonlySet<Peer>): Pick {
    if (this.closed) {
      return {
        error: new UpstreamError("unavailable", "select", {
          message: "upstream group closed",
          sent: false,
        }),
      };
    }
    const now = this.clock();
    const single = this.isSingle();
    const view = this.view;
    view.now = now;
    view.single = single;
    view.tried = tried;
    const busy = (peers: Peer[]) =>
      peers.some((p) => !tried.has(p) && p.full() && p.live(now, single));
    const queueing = this.config.queue.size > 0;
    let sel: Selection | undefined;
    try {
      sel = this.primaryPolicy.select(this.primary, ctx, view);
      if (!sel && this.backup.length > 0 && !(queueing && busy(this.primary))) {
        sel = this.backupPolicy.select(this.backup, ctx, view);
      }
    } finally {
      view.tried = noPeers;
    }
    if (sel) {
      sel.peer.selected(now);
      return { lease: new Lease(this, sel.peer, this.poolOf(sel.peer), sel.cookie?.header) };
    }
    if (busy(this.primary) || busy(this.backup)) {
      if (queueing) return { wait: true };
      return {
        error: new UpstreamError("busy", "select", {
          message: "every live peer is at maxConns (no queue)",
          sent: false,
        }),
      };
    }
    // Nothing live. Forgive passive failures so the next request probes again (nginx).
    let forgiven = false;
    for (const p of this.peers) {
      if (!tried.has(p) && p.failed(now, single)) {
        p.fails = 0;
        forgiven = true;
      }
    }
    return {
      error: new UpstreamError("unavailable", "select", {
        message: forgiven
          ? "no live upstreams (all failed; they will be tried again)"
          : "no live upstreams",
        sent: false,
      }),
    };
  }

  /** @internal An attempt on `peer` ended (Lease.release). */
  finish(peer: Peer, outcome: Outcome): void {
    // The time is only read by a failure, or a success that may end a failed state (fails > 0):
    // no clock read for the usual success.
    const now = outcome === "failure" || peer.fails > 0 ? this.clock() : 0;
    const flipped = peer.finished(outcome, now);
    if (flipped)
      this.announce(
        peer,
        outcome === "failure" ? `${peer.fails} failed attempts` : "an attempt succeeded",
      );
    if (peer.active === 0) {
      const waiting = this.drainWaiters.get(peer);
      if (waiting) {
        this.drainWaiters.delete(peer);
        for (const done of waiting) done();
      }
    }
    this.pump();
  }

  /** Hand free capacity to waiting requests, oldest first. */
  pump(): void {
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!;
      const r = this.pick(w.ctx, w.tried);
      if ("wait" in r) {
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
      w.cleanup();
      if ("lease" in r) w.resolve(r.lease);
      else w.reject(r.error);
    }
  }

  private removeWaiter(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
    w.cleanup();
  }

  // ---- requests -----------------------------------------------------------------------------

  /**
   * Send an HTTP request through the group: select, send over the peer's pool, retry on the
   * next peer as `retry` allows (the body must be in memory to be replayed). The lease is
   * released when the response body ends or is destroyed.
   */
  request(req: GroupRequest): Promise<GroupResponse> {
    return requestWithRetries(this, req);
  }

  /** `request` with callbacks (no promise per step over Brigade's transport): see retry.ts. */
  send(req: GroupRequest, handler: ResponseHandler<GroupResponse>): void {
    sendWithRetries(this, req, handler);
  }

  // ---- runtime changes ----------------------------------------------------------------------

  /** Add a peer (an address or a peer object, as in the config). Hostnames are resolved first. */
  async addPeer(spec: InOf<typeof upstreamPeer>): Promise<void> {
    const entry = this.addEntry(normalizePeer(spec, this.name));
    this.rebuild();
    for (const p of entry.peers) this.announce(p, "added", true);
    await this.resolveEntry(entry);
    this.pump();
  }

  /**
   * Remove a configured peer (by its address as configured). With `drain` (the default) it
   * stops taking requests at once and is removed when its requests in flight have finished;
   * resolves then. Without, it is removed at once and its connections closed.
   */
  async removePeer(server: string, options: { drain?: boolean } = {}): Promise<void> {
    const entry = this.entries.find((e) => e.spec.address === server);
    if (!entry) throw new Error(`upstream ${this.name}: no peer ${server}`);
    this.entries.splice(this.entries.indexOf(entry), 1);
    clearTimeout(entry.timer);
    await Promise.all(entry.peers.map((p) => this.retire(p, options.drain ?? true)));
  }

  /** Stop sending new requests to a peer; resolves when its requests in flight have finished. */
  drainPeer(server: string): Promise<void> {
    const peers = this.findPeers(server);
    for (const p of peers) {
      p.draining = true;
      this.announce(p, "drain requested");
    }
    return Promise.all(peers.map((p) => this.whenIdle(p))).then(() => {});
  }

  /** Mark a peer down (or up again), as the config's `down` does. */
  setDown(server: string, down: boolean): void {
    for (const p of this.findPeers(server)) {
      p.down = down;
      if (!down) {
        p.draining = false;
        p.beginSlowStart(this.clock());
      }
      this.announce(p, down ? "marked down" : "marked up");
    }
    this.pump();
  }

  /** Readiness from the peer's owner (`brigade up`: an app worker booted or is reloading). */
  setReady(server: string, ready: boolean): void {
    for (const p of this.findPeers(server)) {
      if (p.ready === ready) continue;
      p.ready = ready;
      if (ready) {
        // A (re)started process behind the same address: its predecessor's failures are not its.
        p.fails = 0;
        p.beginSlowStart(this.clock());
      }
      this.announce(p, ready ? "ready" : "not ready");
    }
    this.pump();
  }

  /** Load reported by the peer's owner (queued requests), added to its in-flight count. */
  setLoad(server: string, load: number): void {
    for (const p of this.findPeers(server)) p.load = Math.max(0, load);
  }

  /** @internal Active health verdict changed (health.ts). */
  setHealthy(peer: Peer, healthy: boolean, reason: string): void {
    if (peer.healthy === healthy) return;
    peer.healthy = healthy;
    if (healthy) {
      peer.fails = 0;
      peer.beginSlowStart(this.clock());
    }
    this.announce(peer, reason);
    if (healthy) this.pump();
  }

  private findPeers(server: string): Peer[] {
    const peers = this.peers.filter((p) => p.server === server || p.name === server);
    if (peers.length === 0) throw new Error(`upstream ${this.name}: no peer ${server}`);
    return peers;
  }

  private whenIdle(peer: Peer): Promise<void> {
    if (peer.active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.drainWaiters.get(peer) ?? [];
      list.push(resolve);
      this.drainWaiters.set(peer, list);
    });
  }

  /** Take a peer out of selection now; close it once idle (at once without `drain`). */
  private async retire(peer: Peer, drain: boolean): Promise<void> {
    peer.draining = true;
    this.announce(peer, drain ? "draining before removal" : "removed");
    if (drain) await this.whenIdle(peer);
    this.primary = this.primary.filter((p) => p !== peer);
    this.backup = this.backup.filter((p) => p !== peer);
    for (const e of this.entries) e.peers = e.peers.filter((p) => p !== peer);
    this.primaryPolicy.rebuild(this.primary);
    this.backupPolicy.rebuild(this.backup);
    const pool = this.pools.get(peer);
    this.pools.delete(peer);
    if (pool) {
      if (drain) await pool.close();
      else pool.destroy();
    }
    this.health?.forget(peer);
    if (peer.announced !== "removed") {
      peer.announced = undefined;
      this.announce(peer, "removed", false, "removed");
    }
    this.pump();
  }

  // ---- peers from config and DNS ------------------------------------------------------------

  private addEntry(spec: UpstreamPeerConfig): ServerEntry {
    const address = parsePeerAddress(spec.address);
    if (!address) throw new Error(`upstream ${this.name}: bad peer address ${spec.address}`);
    const entry: ServerEntry = {
      spec,
      hostname: address.kind === "tcp" && isIP(address.host) === 0 ? address.host : undefined,
      port: address.kind === "tcp" ? address.port : 0,
      peers: [],
      timer: undefined,
    };
    if (entry.hostname === undefined) {
      entry.peers.push(this.makePeer(spec, address as PeerTarget));
    }
    this.entries.push(entry);
    return entry;
  }

  private makePeer(spec: UpstreamPeerConfig, target: PeerTarget): Peer {
    const peer = new Peer(spec.address, target, {
      weight: spec.weight,
      maxConns: spec.maxConns,
      maxFails: spec.maxFails ?? this.config.maxFails,
      failTimeout: (spec.failTimeout ?? this.config.failTimeout) * 1000,
      backup: spec.backup,
      down: spec.down,
      slowStart: spec.slowStart * 1000,
    });
    peer.announced = peer.state(this.clock());
    return peer;
  }

  private rebuild(): void {
    const all = this.entries.flatMap((e) => e.peers);
    this.primary = all.filter((p) => !p.backup);
    this.backup = all.filter((p) => p.backup);
    this.primaryPolicy.rebuild(this.primary);
    this.backupPolicy.rebuild(this.backup);
  }

  /** Resolve a hostname entry now, then again every `resolveInterval`. */
  private async resolveEntry(entry: ServerEntry): Promise<void> {
    if (entry.hostname === undefined || this.closed) return;
    const host = entry.hostname;
    let addresses: string[];
    try {
      addresses = [...new Set(await this.lookup(host))];
      if (addresses.length === 0) throw new Error("no addresses");
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      this.logger?.warn("upstream host not resolved; keeping its current addresses", {
        server: entry.spec.address,
        error: message,
      });
      publish(resolveChannel, {
        group: this.name,
        server: entry.spec.address,
        addresses: entry.peers.map((p) => p.name),
        added: [],
        removed: [],
        error: message,
      });
      this.scheduleResolve(entry);
      return;
    }
    if (this.closed || !this.entries.includes(entry)) return;
    const targets = addresses.map(
      (ip): PeerTarget => ({ kind: "tcp", host: ip, port: entry.port }),
    );
    const current = new Map(entry.peers.map((p) => [p.name, p]));
    const fresh = new Set(targets.map(targetName));
    const added: Peer[] = [];
    for (const t of targets) {
      if (current.has(targetName(t))) continue;
      const peer = this.makePeer(entry.spec, t);
      // A name that changed is a new backend warming up; the first resolution is not.
      if (current.size > 0) peer.beginSlowStart(this.clock());
      added.push(peer);
    }
    const removed = entry.peers.filter((p) => !fresh.has(p.name));
    if (added.length > 0 || removed.length > 0) {
      entry.peers = [...entry.peers.filter((p) => fresh.has(p.name)), ...added];
      // Removed ones stay selectable by nothing but finish their requests (retire drains).
      for (const p of removed) entry.peers.push(p);
      this.rebuild();
      for (const p of added) this.announce(p, `resolved ${entry.hostname}`, true);
      publish(resolveChannel, {
        group: this.name,
        server: entry.spec.address,
        addresses: targets.map(targetName),
        added: added.map((p) => p.name),
        removed: removed.map((p) => p.name),
      });
      if (this.logger && (removed.length > 0 || current.size > 0)) {
        this.logger.info("upstream host re-resolved", {
          server: entry.spec.address,
          added: added.map((p) => p.name),
          removed: removed.map((p) => p.name),
        });
      }
      for (const p of removed) void this.retire(p, true);
      this.health?.start();
      this.pump();
    }
    this.scheduleResolve(entry);
  }

  private scheduleResolve(entry: ServerEntry): void {
    clearTimeout(entry.timer);
    const interval = this.config.resolveInterval;
    if (interval <= 0 || this.closed) return;
    entry.timer = setTimeout(() => void this.resolveEntry(entry), interval * 1000);
    entry.timer.unref();
  }

  // ---- state, events, shutdown --------------------------------------------------------------

  /** Publish and log a peer's state if it changed. */
  private announce(peer: Peer, reason: string, isNew = false, forced?: PeerState): void {
    const state = forced ?? peer.state(this.clock(), this.isSingle());
    const previous = isNew ? undefined : peer.announced;
    if (state === previous && !isNew) return;
    peer.announced = state;
    publish(peerChannel, {
      group: this.name,
      peer: peer.name,
      server: peer.server,
      state,
      previous,
      reason,
    });
    const fields = { peer: peer.name, server: peer.server, state, previous, reason };
    if (!this.logger) return;
    if (state === "failed") {
      this.logger.warn(
        `upstream peer temporarily disabled for ${peer.failTimeout / 1000}s`,
        fields,
      );
    } else if (state === "unhealthy")
      this.logger.warn("upstream peer failed its health check", fields);
    else this.logger.info(`upstream peer ${state}`, fields);
  }

  snapshot(): GroupSnapshot {
    const now = this.clock();
    const single = this.isSingle();
    return {
      name: this.name,
      policy: this.config.policy.type,
      peers: this.peers.map((p) => ({
        name: p.name,
        server: p.server,
        state: p.state(now, single),
        backup: p.backup,
        weight: p.weight,
        effectiveWeight: p.currentEffectiveWeight(now),
        active: p.active,
        maxConns: p.maxConns,
        fails: p.fails,
        requests: p.requests,
        failures: p.failures,
        healthy: p.healthy,
        pool: this.poolOf(p).stats(),
      })),
      queue: { waiting: this.waiters.length, size: this.config.queue.size },
    };
  }

  /**
   * Stop: refuse new requests, fail waiting ones, stop checks and re-resolution, and close the
   * pools (idle connections now, busy ones when their responses end).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    publish<GroupMessage>(groupChannel, { event: "closed", group: this });
    this.health?.stop();
    for (const e of this.entries) clearTimeout(e.timer);
    for (const w of this.waiters.splice(0)) {
      w.cleanup();
      w.reject(
        new UpstreamError("unavailable", "select", {
          message: "upstream group closed",
          sent: false,
        }),
      );
    }
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}

/** Validate one peer given at runtime like a config entry; throws with the problems. */
function normalizePeer(spec: InOf<typeof upstreamPeer>, group: string): UpstreamPeerConfig {
  const issues: Issue[] = [];
  const out = upstreamPeer.check(spec, ["peer"], issues);
  if (out === invalid) {
    throw new Error(
      `upstream ${group}: ${issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  return out;
}
