/**
 * From raw wrk runs to the table people read: medians per (case, path, connections), ratios to
 * the baseline case, spread, errors, and memory.
 */
import type { WrkResult } from "./wrk.ts";

/** One wrk run in the interleaved sequence. */
export interface Run {
  case: string;
  /** The path requested when the suite lists `paths`. */
  path?: string;
  connections: number;
  /** 0-based round of the interleaving. */
  round: number;
  result?: WrkResult;
  error?: string;
}

export interface Row {
  case: string;
  path?: string;
  connections: number;
  runs: number;
  failedRuns: number;
  rps: number;
  minRps: number;
  maxRps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Median req/s over the baseline's at the same connections and path (NaN if unknown). */
  rpsRatio: number;
  /** Median p99 over the baseline's (lower is better). */
  p99Ratio: number;
}

/** Median of a non-empty list (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Rows in the order the cases and connection counts were given. */
export function summarise(runs: readonly Run[], baseline: string): Row[] {
  const groups = new Map<string, Run[]>();
  for (const run of runs) {
    const key = JSON.stringify([run.connections, run.path ?? "", run.case]);
    const list = groups.get(key) ?? [];
    list.push(run);
    groups.set(key, list);
  }
  const rows: Row[] = [];
  for (const list of groups.values()) {
    const first = list[0]!;
    const ok = list.flatMap((r) => (r.result ? [r.result] : []));
    const rps = ok.map((r) => r.requestsPerSec);
    rows.push({
      case: first.case,
      path: first.path,
      connections: first.connections,
      runs: list.length,
      failedRuns: list.length - ok.length,
      rps: median(rps),
      minRps: ok.length ? Math.min(...rps) : Number.NaN,
      maxRps: ok.length ? Math.max(...rps) : Number.NaN,
      p50Ms: median(ok.map((r) => r.p50Ms)),
      p99Ms: median(ok.map((r) => r.p99Ms)),
      errors: ok.reduce((n, r) => n + r.errors, 0),
      rpsRatio: Number.NaN,
      p99Ratio: Number.NaN,
    });
  }
  for (const row of rows) {
    const base = rows.find(
      (r) => r.case === baseline && r.connections === row.connections && r.path === row.path,
    );
    if (base) {
      row.rpsRatio = row.rps / base.rps;
      row.p99Ratio = row.p99Ms / base.p99Ms;
    }
  }
  return rows;
}

const num = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "–";
const ms = (n: number) => (Number.isFinite(n) ? (n < 1 ? n.toFixed(3) : n.toFixed(2)) : "–");

/** Markdown tables: one per connection count (and path), then memory per case. */
export function markdownTables(
  rows: readonly Row[],
  baseline: string,
  rss: Readonly<Record<string, number>>,
): string {
  const out: string[] = [];
  const sections = [...new Set(rows.map((r) => JSON.stringify([r.connections, r.path ?? ""])))];
  for (const key of sections) {
    const [connections, path] = JSON.parse(key) as [number, string];
    out.push(`### ${connections} connections${path ? `, ${path}` : ""}`, "");
    out.push(
      `| case | req/s (median) | req/s vs ${baseline} | p50 ms | p99 ms | p99 vs ${baseline} | req/s min–max | errors |`,
      "|---|---:|---:|---:|---:|---:|---:|---:|",
    );
    for (const r of rows) {
      if (r.connections !== connections || (r.path ?? "") !== path) continue;
      const failed = r.failedRuns ? ` (${r.failedRuns}/${r.runs} runs failed)` : "";
      out.push(
        `| ${r.case}${failed} | ${num(r.rps)} | ${num(r.rpsRatio, 2)}× | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${num(r.p99Ratio, 2)}× | ${num(r.minRps)}–${num(r.maxRps)} | ${r.errors} |`,
      );
    }
    out.push("");
  }
  out.push("### Memory after the run (RSS summed over each server's process tree)", "");
  out.push("| case | RSS MiB |", "|---|---:|");
  for (const [name, bytes] of Object.entries(rss)) {
    out.push(`| ${name} | ${num(bytes / 1048576, 1)} |`);
  }
  out.push("");
  return out.join("\n");
}
