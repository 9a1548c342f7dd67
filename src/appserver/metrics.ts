/**
 * Metrics: each worker counts into its `ctx.stats` (flat numbers, sent to the master with every
 * heartbeat); the master sums them over its workers, keeps the counts of workers that have ended
 * (so counters never go back), and serves them in the Prometheus text format on `metricsBind`.
 *
 * Worker stats keys: `requests`, `status_1xx`..`status_5xx`, `le_0`..`le_N` (requests per
 * latency bucket, not cumulative; the last is above every bound), `duration_sum` (seconds),
 * `bad_requests`, and the gauges `inflight`, `connections`, `lag_p99`, `lag_max` (seconds).
 */
import type { ELDHistogram } from "node:perf_hooks";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { MasterSnapshot, WorkerExit, WorkerInfo } from "../process/master.ts";
import type { WorkerStats } from "../process/worker.ts";

/** Latency bucket upper bounds, in seconds (Prometheus' defaults). */
export const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const counterKeys = new Set(["requests", "duration_sum", "bad_requests"]);
/** Precomputed keys: no string is built per request. */
const statusKeys = [
  "status_1xx",
  "status_1xx",
  "status_2xx",
  "status_3xx",
  "status_4xx",
  "status_5xx",
];
const bucketKeys = Array.from({ length: latencyBuckets.length + 1 }, (_, i) => `le_${i}`);
const isCounter = (k: string) =>
  counterKeys.has(k) || k.startsWith("status_") || k.startsWith("le_");

/**
 * The worker side: counts requests into `stats`, and samples event-loop lag. The lag histogram
 * (a 10 ms libuv timer) runs only while the worker has work: it starts with a request or a
 * connection and stops after a sample period with none started and none in flight, so an idle
 * worker is not woken 100 times a second (nginx idles at zero wakeups). An idle worker's lag is
 * reported as 0.
 */
export class RequestMetrics {
  private readonly stats: WorkerStats;
  private readonly lag: ELDHistogram;
  private readonly timer: NodeJS.Timeout;
  /** Whether the lag histogram is enabled. */
  private lagOn = false;
  /** Requests + connections started since the last sample. */
  private started = 0;

  constructor(stats: WorkerStats, sampleMs = 1000) {
    this.stats = stats;
    stats.inflight = 0;
    stats.connections = 0;
    stats.duration_sum = 0;
    stats.bad_requests = 0;
    for (let c = 1; c <= 5; c++) stats[`status_${c}xx`] = 0;
    for (let i = 0; i <= latencyBuckets.length; i++) stats[`le_${i}`] = 0;
    stats.lag_p99 = 0;
    stats.lag_max = 0;
    this.lag = monitorEventLoopDelay({ resolution: 10 });
    this.timer = setInterval(() => this.sampleLag(), sampleMs);
    this.timer.unref();
  }

  /** Whether event-loop lag is being sampled now (it is while the worker has work). */
  get sampling(): boolean {
    return this.lagOn;
  }

  private sampleLag(): void {
    // The histogram is in nanoseconds and includes the sampling resolution itself; an empty
    // one (just enabled, or off) reads as 0.
    const h = this.lag;
    this.stats.lag_p99 = h.count === 0 ? 0 : Math.max(0, (h.percentile(99) - 10e6) / 1e9);
    this.stats.lag_max = h.count === 0 ? 0 : Math.max(0, (h.max - 10e6) / 1e9);
    h.reset();
    if (this.lagOn && this.started === 0 && this.stats.inflight === 0) {
      h.disable();
      this.lagOn = false;
    }
    this.started = 0;
  }

  private work(): void {
    this.started++;
    if (!this.lagOn) {
      this.lagOn = true;
      this.lag.enable();
    }
  }

  requestStarted(): void {
    this.stats.inflight!++;
    this.work();
  }

  /** A request that reached the app (or was refused by a limit) ended. */
  requestEnded(status: number, seconds: number): void {
    const s = this.stats;
    s.inflight!--;
    s.requests++;
    this.count(status, seconds);
  }

  /** A request node:http could not parse, answered with `status`. */
  badRequest(status: number): void {
    this.stats.bad_requests!++;
    if (status > 0) {
      this.stats.requests++;
      this.count(status, 0);
    }
  }

  private count(status: number, seconds: number): void {
    const s = this.stats;
    const cls = Math.min(5, Math.max(1, Math.floor(status / 100)));
    s[statusKeys[cls]!]!++;
    let i = 0;
    while (i < latencyBuckets.length && seconds > latencyBuckets[i]!) i++;
    s[bucketKeys[i]!]!++;
    s.duration_sum! += seconds;
  }

  connectionOpened(): void {
    this.stats.connections!++;
    this.work();
  }

  connectionClosed(): void {
    this.stats.connections!--;
  }

  stop(): void {
    clearInterval(this.timer);
    this.sampleLag();
    this.lag.disable();
    this.lagOn = false;
  }
}

/** The master side: live workers' stats plus the counters of workers that have ended. */
export class MetricsAggregator {
  private readonly ended: Record<string, number> = {};
  private readonly exits = new Map<string, number>();
  private readonly startedAt = Date.now();

  /** Call from the master's onWorkerExit hook. */
  workerExited(info: WorkerInfo, exit: WorkerExit): void {
    for (const [k, v] of Object.entries(info.stats)) {
      if (isCounter(k)) this.ended[k] = (this.ended[k] ?? 0) + v;
    }
    this.exits.set(exit.reason, (this.exits.get(exit.reason) ?? 0) + 1);
  }

  /** The totals of every counter: ended workers plus live ones. */
  totals(workers: readonly WorkerInfo[]): Record<string, number> {
    const out: Record<string, number> = { ...this.ended };
    for (const w of workers) {
      for (const [k, v] of Object.entries(w.stats)) {
        if (isCounter(k) || k === "inflight" || k === "connections") out[k] = (out[k] ?? 0) + v;
      }
    }
    return out;
  }

  /** Prometheus text exposition format 0.0.4. */
  render(snap: MasterSnapshot): string {
    const t = this.totals(snap.workerList);
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) lines.push(`${name}${labels} ${num(value)}`);
    };
    metric(
      "brigade_app_requests_total",
      "counter",
      "Requests answered, by status class (including those refused before the app).",
      [1, 2, 3, 4, 5].map((c) => [`{status="${c}xx"}`, t[`status_${c}xx`] ?? 0]),
    );
    let cumulative = 0;
    const buckets: [string, number][] = latencyBuckets.map((le, i) => {
      cumulative += t[`le_${i}`] ?? 0;
      return [`_bucket{le="${le}"}`, cumulative];
    });
    cumulative += t[`le_${latencyBuckets.length}`] ?? 0;
    lines.push(
      "# HELP brigade_app_request_duration_seconds From the request head to the end of the response.",
      "# TYPE brigade_app_request_duration_seconds histogram",
    );
    for (const [suffix, v] of buckets) {
      lines.push(`brigade_app_request_duration_seconds${suffix} ${num(v)}`);
    }
    lines.push(
      `brigade_app_request_duration_seconds_bucket{le="+Inf"} ${num(cumulative)}`,
      `brigade_app_request_duration_seconds_sum ${num(t.duration_sum ?? 0)}`,
      `brigade_app_request_duration_seconds_count ${num(cumulative)}`,
    );
    metric("brigade_app_requests_in_flight", "gauge", "Requests being served now.", [
      ["", t.inflight ?? 0],
    ]);
    metric("brigade_app_connections", "gauge", "Client connections open now.", [
      ["", t.connections ?? 0],
    ]);
    metric(
      "brigade_app_bad_requests_total",
      "counter",
      "Requests that could not be parsed or broke a limit, answered before the app.",
      [["", t.bad_requests ?? 0]],
    );
    const states = new Map<string, number>();
    for (const w of snap.workerList) states.set(w.state, (states.get(w.state) ?? 0) + 1);
    metric(
      "brigade_app_workers",
      "gauge",
      "Worker processes, by state.",
      ["booting", "ready", "draining", "stopping"].map((s) => [
        `{state="${s}"}`,
        states.get(s) ?? 0,
      ]),
    );
    metric(
      "brigade_app_worker_exits_total",
      "counter",
      "Workers that have ended, by reason.",
      [...this.exits].map(([reason, n]) => [`{reason="${labelValue(reason)}"}`, n]),
    );
    const per = (w: WorkerInfo) => `{worker="${w.id}",pid="${w.pid}"}`;
    metric(
      "brigade_app_worker_resident_memory_bytes",
      "gauge",
      "Resident memory (RSS) of each worker, from its last heartbeat.",
      snap.workerList.map((w) => [per(w), w.rss]),
    );
    metric(
      "brigade_app_worker_heap_used_bytes",
      "gauge",
      "V8 heap in use in each worker.",
      snap.workerList.map((w) => [per(w), w.heapUsed]),
    );
    metric(
      "brigade_app_worker_event_loop_lag_seconds",
      "gauge",
      "Event-loop delay of each worker over the last second (p99 and max).",
      snap.workerList.flatMap((w): [string, number][] => [
        [`{worker="${w.id}",pid="${w.pid}",stat="p99"}`, w.stats.lag_p99 ?? 0],
        [`{worker="${w.id}",pid="${w.pid}",stat="max"}`, w.stats.lag_max ?? 0],
      ]),
    );
    metric(
      "brigade_app_worker_requests_in_flight",
      "gauge",
      "Requests each worker is serving now.",
      snap.workerList.map((w) => [per(w), w.stats.inflight ?? 0]),
    );
    metric("brigade_app_master_start_time_seconds", "gauge", "When the master started.", [
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
