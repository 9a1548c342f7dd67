/**
 * The stack's metrics, aggregated by the master over every worker of both tiers: workers count
 * into `ctx.stats` (the keys of src/appserver/metrics.ts, plus the web tier's `bytes_sent`,
 * `bytes_received` and `cache_<STATUS>`), heartbeats bring them to the master, and this keeps
 * the counters of workers that have ended so that no counter ever goes back.
 *
 * Two outputs: the Prometheus text format (`render`, on the admin listener's `/metrics`), and a
 * history of one sample per second over the last minutes for the dashboard (`sample`, `history`):
 * requests per second, 5xx per second and latency percentiles per tier, and the cache hit ratio.
 */
import { latencyBuckets } from "../appserver/metrics.ts";
import type { MasterSnapshot, WorkerExit, WorkerInfo } from "../process/master.ts";
import type { PeerView } from "./webWorker.ts";

export const tiers = ["web", "app"] as const;
export type Tier = (typeof tiers)[number];

const isCounter = (k: string): boolean =>
  k === "requests" ||
  k === "duration_sum" ||
  k === "bad_requests" ||
  k === "bytes_sent" ||
  k === "bytes_received" ||
  k.startsWith("status_") ||
  k.startsWith("le_") ||
  k.startsWith("cache_");

/** One second of the dashboard's charts. */
export interface Sample {
  t: number;
  /** Requests per second, per tier. */
  rps: Record<Tier, number>;
  /** 5xx answers per second, per tier. */
  errors: Record<Tier, number>;
  /** Latency percentiles (seconds) of that second's requests, per tier; null without any. */
  p50: Record<Tier, number | null>;
  p95: Record<Tier, number | null>;
  p99: Record<Tier, number | null>;
  /** Cache hits / cache lookups in that second; null without lookups. */
  cacheHitRatio: number | null;
}

const HISTORY = 300;

/** The latency below which `q` of the requests in `counts` (per bucket, not cumulative) fall. */
export function percentile(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c > 0 && seen + c >= rank) {
      // Linear within the bucket, as Prometheus' histogram_quantile.
      const lo = i === 0 ? 0 : latencyBuckets[i - 1]!;
      const hi = latencyBuckets[i] ?? latencyBuckets[latencyBuckets.length - 1]! * 2;
      return lo + (hi - lo) * ((rank - seen) / c);
    }
    seen += c;
  }
  return latencyBuckets[latencyBuckets.length - 1]!;
}

export class StackMetrics {
  private readonly ended: Record<Tier, Record<string, number>> = { web: {}, app: {} };
  private readonly exits = new Map<string, number>();
  private readonly reloads = new Map<string, number>();
  private readonly samples: Sample[] = [];
  private last: Record<Tier, Record<string, number>> | undefined;
  private lastAt = 0;
  readonly startedAt = Date.now();

  workerExited(info: WorkerInfo, exit: WorkerExit): void {
    const tier = info.pool as Tier;
    const into = this.ended[tier];
    if (!into) return;
    for (const [k, v] of Object.entries(info.stats)) {
      if (isCounter(k)) into[k] = (into[k] ?? 0) + v;
    }
    const key = `${tier}\0${exit.reason}`;
    this.exits.set(key, (this.exits.get(key) ?? 0) + 1);
  }

  reloaded(ok: boolean): void {
    const k = ok ? "complete" : "rolled back";
    this.reloads.set(k, (this.reloads.get(k) ?? 0) + 1);
  }

  /** Every counter of a tier (ended workers plus live ones), and its gauges summed. */
  totals(snap: MasterSnapshot, tier: Tier): Record<string, number> {
    const out: Record<string, number> = { ...this.ended[tier] };
    for (const w of snap.workerList) {
      if (w.pool !== tier) continue;
      for (const [k, v] of Object.entries(w.stats)) {
        if (isCounter(k) || k === "inflight" || k === "connections") out[k] = (out[k] ?? 0) + v;
      }
    }
    return out;
  }

  /** Take one dashboard sample (call about once a second). */
  sample(snap: MasterSnapshot, now = Date.now()): void {
    const cur = { web: this.totals(snap, "web"), app: this.totals(snap, "app") };
    const prev = this.last;
    const dt = (now - this.lastAt) / 1000;
    this.last = cur;
    this.lastAt = now;
    if (!prev || dt <= 0) return;
    const d = (tier: Tier, k: string) => Math.max(0, (cur[tier][k] ?? 0) - (prev[tier][k] ?? 0));
    const buckets = (tier: Tier) =>
      Array.from({ length: latencyBuckets.length + 1 }, (_, i) => d(tier, `le_${i}`));
    const per = <T>(fn: (tier: Tier) => T): Record<Tier, T> => ({ web: fn("web"), app: fn("app") });
    const hits =
      d("web", "cache_HIT") +
      d("web", "cache_STALE") +
      d("web", "cache_UPDATING") +
      d("web", "cache_REVALIDATED");
    const lookups = hits + d("web", "cache_MISS") + d("web", "cache_EXPIRED");
    this.samples.push({
      t: now,
      rps: per((t) => d(t, "requests") / dt),
      errors: per((t) => d(t, "status_5xx") / dt),
      p50: per((t) => percentile(buckets(t), 0.5)),
      p95: per((t) => percentile(buckets(t), 0.95)),
      p99: per((t) => percentile(buckets(t), 0.99)),
      cacheHitRatio: lookups > 0 ? hits / lookups : null,
    });
    if (this.samples.length > HISTORY) this.samples.shift();
  }

  history(): readonly Sample[] {
    return this.samples;
  }

  /** Prometheus text exposition format 0.0.4, both tiers (label `tier`). */
  render(
    snap: MasterSnapshot,
    views: ReadonlyMap<number, PeerView[]>,
    leases?: { held: number; waiting: number },
  ): string {
    const t = { web: this.totals(snap, "web"), app: this.totals(snap, "app") };
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${num(value)}`);
    };
    const both = (fn: (tier: Tier) => [string, number][]) => tiers.flatMap(fn);
    metric(
      "brigade_requests_total",
      "counter",
      "Requests answered, by tier and status class (web: every client request; app: those that reached the app server).",
      both((tier) =>
        [1, 2, 3, 4, 5].map((c): [string, number] => [
          `{tier="${tier}",status="${c}xx"}`,
          t[tier][`status_${c}xx`] ?? 0,
        ]),
      ),
    );
    lines.push(
      "# HELP brigade_request_duration_seconds From the request head to the end of the response, by tier.",
      "# TYPE brigade_request_duration_seconds histogram",
    );
    for (const tier of tiers) {
      let cumulative = 0;
      latencyBuckets.forEach((le, i) => {
        cumulative += t[tier][`le_${i}`] ?? 0;
        lines.push(
          `brigade_request_duration_seconds_bucket{tier="${tier}",le="${le}"} ${num(cumulative)}`,
        );
      });
      cumulative += t[tier][`le_${latencyBuckets.length}`] ?? 0;
      lines.push(
        `brigade_request_duration_seconds_bucket{tier="${tier}",le="+Inf"} ${num(cumulative)}`,
        `brigade_request_duration_seconds_sum{tier="${tier}"} ${num(t[tier].duration_sum ?? 0)}`,
        `brigade_request_duration_seconds_count{tier="${tier}"} ${num(cumulative)}`,
      );
    }
    metric(
      "brigade_requests_in_flight",
      "gauge",
      "Requests being served now, by tier.",
      both((tier) => [[`{tier="${tier}"}`, t[tier].inflight ?? 0]]),
    );
    metric(
      "brigade_connections",
      "gauge",
      "Connections open now, by tier (app: from the web tier).",
      both((tier) => [[`{tier="${tier}"}`, t[tier].connections ?? 0]]),
    );
    metric(
      "brigade_bad_requests_total",
      "counter",
      "Requests refused before they were handled (malformed, over a limit), by tier.",
      both((tier) => [[`{tier="${tier}"}`, t[tier].bad_requests ?? 0]]),
    );
    metric(
      "brigade_sent_bytes_total",
      "counter",
      "Bytes written to clients by the web tier, heads included.",
      [["", t.web.bytes_sent ?? 0]],
    );
    metric(
      "brigade_received_body_bytes_total",
      "counter",
      "Request body bytes read from clients by the web tier.",
      [["", t.web.bytes_received ?? 0]],
    );
    const cache = Object.keys(t.web)
      .filter((k) => k.startsWith("cache_"))
      .sort();
    metric(
      "brigade_cache_requests_total",
      "counter",
      "Responses of the web tier's HTTP cache, by result (HIT, MISS, EXPIRED, STALE, UPDATING, REVALIDATED, BYPASS); empty without a cache.",
      cache.map((k) => [`{result="${k.slice(6)}"}`, t.web[k] ?? 0]),
    );
    const states = new Map<string, number>();
    for (const w of snap.workerList) {
      const k = `${w.pool}\0${w.state}`;
      states.set(k, (states.get(k) ?? 0) + 1);
    }
    metric(
      "brigade_workers",
      "gauge",
      "Worker processes, by tier and state.",
      both((tier) =>
        ["booting", "ready", "draining", "stopping"].map((s): [string, number] => [
          `{tier="${tier}",state="${s}"}`,
          states.get(`${tier}\0${s}`) ?? 0,
        ]),
      ),
    );
    metric(
      "brigade_worker_exits_total",
      "counter",
      "Workers that have ended, by tier and reason.",
      [...this.exits].map(([k, n]) => {
        const [tier, reason] = k.split("\0");
        return [`{tier="${tier}",reason="${labelValue(reason!)}"}`, n];
      }),
    );
    metric(
      "brigade_reloads_total",
      "counter",
      "App reloads by outcome (complete, rolled back).",
      ["complete", "rolled back"].map((k) => [`{outcome="${k}"}`, this.reloads.get(k) ?? 0]),
    );
    const per = (w: WorkerInfo) => `tier="${w.pool}",worker="${w.id}",pid="${w.pid}"`;
    metric(
      "brigade_worker_resident_memory_bytes",
      "gauge",
      "Resident memory (RSS) of each worker, from its last heartbeat.",
      snap.workerList.map((w) => [`{${per(w)}}`, w.rss]),
    );
    metric(
      "brigade_worker_heap_used_bytes",
      "gauge",
      "V8 heap in use in each worker.",
      snap.workerList.map((w) => [`{${per(w)}}`, w.heapUsed]),
    );
    metric(
      "brigade_worker_event_loop_lag_seconds",
      "gauge",
      "Event-loop delay of each worker over the last second (p99 and max).",
      snap.workerList.flatMap((w): [string, number][] => [
        [`{${per(w)},stat="p99"}`, w.stats.lag_p99 ?? 0],
        [`{${per(w)},stat="max"}`, w.stats.lag_max ?? 0],
      ]),
    );
    metric(
      "brigade_worker_requests_in_flight",
      "gauge",
      "Requests each worker is serving now.",
      snap.workerList.map((w) => [`{${per(w)}}`, w.stats.inflight ?? 0]),
    );
    // The app workers as the web tier sees them: one sample per web worker and peer.
    const peerSamples: [string, number][] = [];
    const peerRequests: [string, number][] = [];
    for (const [pid, list] of views) {
      for (const p of list) {
        peerSamples.push([
          `{web_pid="${pid}",peer="${labelValue(p.server)}",state="${labelValue(p.state)}"}`,
          1,
        ]);
        peerRequests.push([`{web_pid="${pid}",peer="${labelValue(p.server)}"}`, p.requests]);
      }
    }
    metric(
      "brigade_upstream_peer_state",
      "gauge",
      "Each app worker as each web worker's upstream group sees it (1 for its current state: up, draining, failed, unready...).",
      peerSamples,
    );
    metric(
      "brigade_upstream_peer_requests_total",
      "counter",
      "Requests each web worker has sent to each app worker.",
      peerRequests,
    );
    if (leases) {
      metric(
        "brigade_app_leases_held",
        "gauge",
        "Sync app workers the master has lent to a request (at most one request each).",
        [["", leases.held]],
      );
      metric(
        "brigade_app_leases_waiting",
        "gauge",
        "Requests waiting at the front for a free sync app worker.",
        [["", leases.waiting]],
      );
    }
    metric("brigade_master_start_time_seconds", "gauge", "When the master started.", [
      ["", this.startedAt / 1000],
    ]);
    return `${lines.join("\n")}\n`;
  }
}

function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  return String(Math.round(v * 1e9) / 1e9);
}

function labelValue(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
