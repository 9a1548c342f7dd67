/**
 * Shared state: counters that hold across all the workers of a master (nginx's shared memory
 * zones, for limit_req and limit_conn), so that a client cannot multiply a limit by the number of
 * workers.
 *
 * Worker processes share no memory, so the state lives in the master: a {@link SharedStore}
 * (plain synchronous data structures), reached from each worker through a {@link SharedState}
 * client that batches every call made during one turn of the event loop into one message and
 * resolves each call from the master's one batched reply. Thread workers use the same path over
 * their message port. docs/access.md has the measurements behind this choice.
 *
 * Two primitives, each atomic over a list of keys (all pass and are counted, or none is):
 * - `rate`: leaky buckets (nginx's limit_req algorithm): each bucket holds an `excess` that
 *   drains at `rate` per second; a request adds 1; above `burst` it is refused (nothing is
 *   counted), above `delay` it is held for `(excess - delay) / rate` seconds.
 * - `acquire` / `release`: concurrency counters with a ceiling (limit_conn), owned per worker, so
 *   the master gives back what a worker held when it exits (crash included).
 *
 * The store outlives worker generations: a reload (HUP) keeps every bucket and counter, as nginx
 * keeps its zones. Each zone is bounded in keys (least recently used key evicted first).
 *
 * If the master does not answer in time (its loop blocked, the channel gone), calls fail open:
 * they resolve as allowed with `degraded: true`, since refusing every request of a site because
 * its limiter is unreachable is worse than letting them through for a moment.
 */

/** A leaky bucket's parameters: made once (at config time) and used for many keys. */
export interface RateRule {
  /** The zone: buckets of one zone share a key space and a size bound. */
  readonly zone: string;
  /** Requests per second the bucket drains (fractions allowed: 1 r/m is 1/60). */
  readonly rate: number;
  /** Excess requests accepted beyond the rate (queued or delayed); more are refused. */
  readonly burst: number;
  /** Excess requests passed without delay; `burst` for nginx's nodelay, 0 to delay all. */
  readonly delay: number;
  /** Most keys the zone keeps (default 100 000); the least recently used goes first. */
  readonly size?: number;
}

/** One bucket to check and count: a rule and the key within its zone (an address, a header...). */
export interface RateCheck {
  readonly rule: RateRule;
  readonly key: string;
}

export type RateVerdict =
  | { readonly ok: true; readonly delayMs: number; readonly degraded?: boolean }
  | {
      readonly ok: false;
      /** The index of the first check that refused. */
      readonly index: number;
      /** When that bucket would accept again. */
      readonly retryAfterMs: number;
    };

/** A concurrency counter's parameters. */
export interface CountRule {
  readonly zone: string;
  /** The ceiling: an acquire that would pass it is refused. */
  readonly max: number;
  readonly size?: number;
}

export interface CountItem {
  readonly rule: CountRule;
  readonly key: string;
}

export type CountVerdict =
  | { readonly ok: true; readonly degraded?: boolean }
  | { readonly ok: false; readonly index: number; readonly count: number };

/** What a worker uses. Calls in one event-loop turn travel to the master as one message. */
export interface SharedState {
  rate(checks: readonly RateCheck[]): Promise<RateVerdict>;
  acquire(items: readonly CountItem[]): Promise<CountVerdict>;
  /** Give back what `acquire` took (each item once); unknown or already released: ignored. */
  release(items: readonly CountItem[]): void;
}

export const DEFAULT_ZONE_SIZE = 100_000;

interface Bucket {
  excess: number;
  last: number;
}

/** A Map used as an LRU: touching a key moves it to the end; eviction takes from the front. */
function touch<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
}

function evict<V>(map: Map<string, V>, size: number, canEvict: (v: V) => boolean): boolean {
  if (map.size < size) return true;
  for (const [k, v] of map) {
    if (canEvict(v)) {
      map.delete(k);
      if (map.size < size) return true;
    } else {
      // A key in use near the old end: the others are younger still.
      return false;
    }
  }
  return map.size < size;
}

/**
 * The master's half: plain state, no I/O. `now` is milliseconds on a monotonic clock
 * (`performance.now()`); tests pass their own.
 */
export class SharedStore {
  private readonly buckets = new Map<string, Map<string, Bucket>>();
  private readonly counters = new Map<string, Map<string, number>>();
  /** owner -> "zone\0key" -> count held. */
  private readonly held = new Map<number, Map<string, number>>();
  /** owner -> the rules it defined on the wire, by id. */
  private readonly rules = new Map<number, Map<number, RateRule | CountRule>>();

  rate(checks: readonly RateCheck[], now: number): RateVerdict {
    const found: (Bucket | undefined)[] = [];
    const next: number[] = [];
    for (let i = 0; i < checks.length; i++) {
      const { rule, key } = checks[i]!;
      const b = this.zoneOf(this.buckets, rule.zone).get(key);
      // nginx: a new key starts at excess 0 (the first request is not excess).
      const excess = b ? Math.max(0, b.excess - (rule.rate * (now - b.last)) / 1000 + 1) : 0;
      if (excess > rule.burst + 1e-9) {
        return {
          ok: false,
          index: i,
          retryAfterMs: Math.max(1, Math.ceil(((excess - rule.burst) * 1000) / rule.rate)),
        };
      }
      found.push(b);
      next.push(excess);
    }
    let delayMs = 0;
    for (let i = 0; i < checks.length; i++) {
      const { rule, key } = checks[i]!;
      const zone = this.zoneOf(this.buckets, rule.zone);
      let b = found[i];
      if (b === undefined) {
        // At the bound, the least recently used bucket goes.
        evict(zone, rule.size ?? DEFAULT_ZONE_SIZE, () => true);
        b = { excess: 0, last: now };
      }
      b.excess = next[i]!;
      b.last = now;
      touch(zone, key, b);
      if (b.excess > rule.delay) {
        delayMs = Math.max(delayMs, ((b.excess - rule.delay) * 1000) / rule.rate);
      }
    }
    return { ok: true, delayMs: Math.ceil(delayMs) };
  }

  acquire(owner: number, items: readonly CountItem[]): CountVerdict {
    for (let i = 0; i < items.length; i++) {
      const { rule, key } = items[i]!;
      const zone = this.zoneOf(this.counters, rule.zone);
      const count = zone.get(key);
      if ((count ?? 0) + 1 > rule.max) return { ok: false, index: i, count: count ?? 0 };
      // A new key needs room; idle keys (count 0) make it. Every key in use: refuse rather
      // than forget a live count.
      if (count === undefined && !evict(zone, rule.size ?? DEFAULT_ZONE_SIZE, (n) => n === 0)) {
        return { ok: false, index: i, count: 0 };
      }
    }
    let mine = this.held.get(owner);
    if (!mine) {
      mine = new Map();
      this.held.set(owner, mine);
    }
    for (const { rule, key } of items) {
      const zone = this.zoneOf(this.counters, rule.zone);
      touch(zone, key, (zone.get(key) ?? 0) + 1);
      const hk = `${rule.zone}\0${key}`;
      mine.set(hk, (mine.get(hk) ?? 0) + 1);
    }
    return { ok: true };
  }

  release(owner: number, items: readonly CountItem[]): void {
    const mine = this.held.get(owner);
    if (!mine) return;
    for (const { rule, key } of items) {
      const hk = `${rule.zone}\0${key}`;
      const n = mine.get(hk);
      if (n === undefined) continue;
      if (n <= 1) mine.delete(hk);
      else mine.set(hk, n - 1);
      this.decrement(rule.zone, key, 1);
    }
    if (mine.size === 0) this.held.delete(owner);
  }

  /** A worker is gone: give back every count it held, forget its rules. */
  dropOwner(owner: number): void {
    this.rules.delete(owner);
    const mine = this.held.get(owner);
    if (!mine) return;
    this.held.delete(owner);
    for (const [hk, n] of mine) {
      const sep = hk.indexOf("\0");
      this.decrement(hk.slice(0, sep), hk.slice(sep + 1), n);
    }
  }

  /** The current count of a counter (for tests and status). */
  count(zone: string, key: string): number {
    return this.counters.get(zone)?.get(key) ?? 0;
  }

  /** Keys held in a zone of either kind (for tests and status). */
  keys(zone: string): number {
    return (this.buckets.get(zone)?.size ?? 0) + (this.counters.get(zone)?.size ?? 0);
  }

  /** Serve one batch from a worker (the master's side of the wire, below). */
  serve(owner: number, q: SharedBatch, now: number): SharedReplies {
    const out: SharedReplies = [];
    let rules = this.rules.get(owner);
    if (!rules) {
      rules = new Map();
      this.rules.set(owner, rules);
    }
    const pairs = (at: number, n: number): (RateCheck & CountItem)[] => {
      const list: (RateCheck & CountItem)[] = [];
      for (let k = 0; k < n; k++) {
        const rule = rules.get(q[at + 2 * k] as number);
        if (rule) list.push({ rule, key: q[at + 2 * k + 1] as string } as RateCheck & CountItem);
      }
      return list;
    };
    let i = 0;
    while (i < q.length) {
      const op = q[i];
      if (op === Op.defineRate) {
        const size = q[i + 6] as number;
        rules.set(q[i + 1] as number, {
          zone: q[i + 2] as string,
          rate: q[i + 3] as number,
          burst: q[i + 4] as number,
          delay: q[i + 5] as number,
          ...(size > 0 ? { size } : {}),
        });
        i += 7;
      } else if (op === Op.defineCount) {
        const size = q[i + 4] as number;
        rules.set(q[i + 1] as number, {
          zone: q[i + 2] as string,
          max: q[i + 3] as number,
          ...(size > 0 ? { size } : {}),
        });
        i += 5;
      } else if (op === Op.rate || op === Op.acquire) {
        const id = q[i + 1] as number;
        const n = q[i + 2] as number;
        const list = pairs(i + 3, n);
        if (op === Op.rate) {
          const v = this.rate(list, now);
          if (v.ok) out.push(id, 1, v.delayMs, 0);
          else out.push(id, 0, v.index, v.retryAfterMs);
        } else {
          const v = this.acquire(owner, list);
          if (v.ok) out.push(id, 1, 0, 0);
          else out.push(id, 0, v.index, v.count);
        }
        i += 3 + 2 * n;
      } else if (op === Op.release) {
        const n = q[i + 1] as number;
        this.release(owner, pairs(i + 2, n));
        i += 2 + 2 * n;
      } else {
        break; // not ours: a newer worker speaking a newer wire; ignore the rest
      }
    }
    return out;
  }

  private zoneOf<V>(zones: Map<string, Map<string, V>>, name: string): Map<string, V> {
    let z = zones.get(name);
    if (!z) {
      z = new Map();
      zones.set(name, z);
    }
    return z;
  }

  private decrement(zoneName: string, key: string, n: number): void {
    const zone = this.counters.get(zoneName);
    const count = zone?.get(key);
    if (zone === undefined || count === undefined) return;
    // Keep the key at 0 rather than delete it: eviction takes idle keys when the zone fills.
    zone.set(key, Math.max(0, count - n));
  }
}

// ---- the wire -----------------------------------------------------------------------------
//
// Compact on purpose (JSON over IPC costs by the byte: docs/access.md). A batch is one flat
// array of operations; a worker defines each rule once, then names it by number:
//   0 id zone rate burst delay size     define a rate rule (size 0: the default)
//   1 id zone max size                  define a count rule
//   2 call n (rule key){n}              rate
//   3 call n (rule key){n}              acquire
//   4 n (rule key){n}                   release (no answer)
// The answer is a flat array of (call, ok, a, b) quadruples: rate ok (delayMs, 0) or refused
// (index, retryAfterMs); acquire ok (0, 0) or refused (index, count).

const Op = { defineRate: 0, defineCount: 1, rate: 2, acquire: 3, release: 4 } as const;

export type SharedBatch = (string | number)[];
export type SharedReplies = number[];

interface Pending {
  resolve(v: RateVerdict | CountVerdict): void;
  kind: "rate" | "acq";
  sentAt: number;
}

export interface SharedStateClientOptions {
  /** Send one batch to the master; false when the channel is gone. */
  send(batch: SharedBatch): boolean;
  /** A call unanswered this long resolves as allowed, `degraded` (default 1000 ms). */
  timeoutMs?: number;
  /** Told once per degraded period (first fail-open after a good answer). */
  onDegraded?(reason: string): void;
}

/**
 * The worker's half over a message channel. Calls are queued and sent once per event-loop turn
 * (setImmediate: after the poll phase has read every request that arrived together), so under
 * load one message carries many decisions and at rest a call costs one round trip.
 */
export class SharedStateClient implements SharedState {
  private readonly options: SharedStateClientOptions;
  private readonly timeoutMs: number;
  private queue: SharedBatch = [];
  private scheduled = false;
  private nextId = 1;
  private ruleIds = new Map<RateRule | CountRule, number>();
  private readonly pending = new Map<number, Pending>();
  private sweeper: NodeJS.Timeout | undefined;
  private degraded = false;

  constructor(options: SharedStateClientOptions) {
    this.options = options;
    this.timeoutMs = options.timeoutMs ?? 1000;
  }

  rate(checks: readonly RateCheck[]): Promise<RateVerdict> {
    return this.call(Op.rate, checks) as Promise<RateVerdict>;
  }

  acquire(items: readonly CountItem[]): Promise<CountVerdict> {
    return this.call(Op.acquire, items) as Promise<CountVerdict>;
  }

  release(items: readonly CountItem[]): void {
    if (items.length === 0) return;
    const ids = items.map((it) => this.ruleId(it.rule));
    this.queue.push(Op.release, items.length);
    for (let k = 0; k < items.length; k++) this.queue.push(ids[k]!, items[k]!.key);
    this.schedule();
  }

  /** Feed an answer batch from the master. */
  receive(r: SharedReplies): void {
    for (let i = 0; i + 3 < r.length; i += 4) {
      const p = this.pending.get(r[i]!);
      if (!p) continue; // answered already (timed out and failed open)
      this.pending.delete(r[i]!);
      this.degraded = false;
      const ok = r[i + 1] === 1;
      if (p.kind === "rate") {
        p.resolve(
          ok
            ? { ok: true, delayMs: r[i + 2]! }
            : { ok: false, index: r[i + 2]!, retryAfterMs: r[i + 3]! },
        );
      } else {
        p.resolve(ok ? { ok: true } : { ok: false, index: r[i + 2]!, count: r[i + 3]! });
      }
    }
  }

  /** The channel is gone: every outstanding call fails open now. */
  lost(): void {
    this.failOpen([...this.pending.keys()], "the master is gone");
  }

  private ruleId(rule: RateRule | CountRule): number {
    let id = this.ruleIds.get(rule);
    if (id !== undefined) return id;
    id = this.ruleIds.size + 1;
    this.ruleIds.set(rule, id);
    if ("rate" in rule) {
      this.queue.push(Op.defineRate, id, rule.zone, rule.rate, rule.burst, rule.delay);
    } else {
      this.queue.push(Op.defineCount, id, rule.zone, rule.max);
    }
    this.queue.push(rule.size ?? 0);
    return id;
  }

  private call(op: number, list: readonly (RateCheck | CountItem)[]): Promise<unknown> {
    return new Promise((resolve) => {
      const ids = list.map((c) => this.ruleId(c.rule));
      const i = this.nextId++;
      this.pending.set(i, {
        resolve,
        kind: op === Op.rate ? "rate" : "acq",
        sentAt: performance.now(),
      });
      this.queue.push(op, i, list.length);
      for (let k = 0; k < list.length; k++) this.queue.push(ids[k]!, list[k]!.key);
      this.schedule();
      this.sweeper ??= setInterval(() => this.sweep(), Math.max(10, this.timeoutMs / 4)).unref();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    if (!this.options.send(batch)) {
      // Definitions in the lost batch must be sent again with the next use.
      this.ruleIds = new Map();
      this.failOpen([...this.pending.keys()], "no channel to the master");
    }
  }

  private sweep(): void {
    const limit = performance.now() - this.timeoutMs;
    const late: number[] = [];
    for (const [i, p] of this.pending) if (p.sentAt <= limit) late.push(i);
    if (late.length > 0) this.failOpen(late, `no answer from the master in ${this.timeoutMs} ms`);
    if (this.pending.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private failOpen(ids: number[], reason: string): void {
    if (ids.length === 0) return;
    if (!this.degraded) {
      this.degraded = true;
      this.options.onDegraded?.(reason);
    }
    for (const i of ids) {
      const p = this.pending.get(i);
      if (!p) continue;
      this.pending.delete(i);
      p.resolve(
        p.kind === "rate" ? { ok: true, delayMs: 0, degraded: true } : { ok: true, degraded: true },
      );
    }
  }
}

/**
 * A store in this process, for a server with no master (tests, a single-process embedding): the
 * counts then hold for this process only.
 */
export class LocalSharedState implements SharedState {
  readonly store: SharedStore;
  private readonly owner: number;

  constructor(store: SharedStore = new SharedStore(), owner = 0) {
    this.store = store;
    this.owner = owner;
  }

  rate(checks: readonly RateCheck[]): Promise<RateVerdict> {
    return Promise.resolve(this.store.rate(checks, performance.now()));
  }

  acquire(items: readonly CountItem[]): Promise<CountVerdict> {
    return Promise.resolve(this.store.acquire(this.owner, items));
  }

  release(items: readonly CountItem[]): void {
    this.store.release(this.owner, items);
  }
}
