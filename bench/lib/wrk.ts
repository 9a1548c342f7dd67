/**
 * Driving wrk and reading its report. One run is `wrk -t<threads> -c<connections> -d<seconds>
 * --latency <url>`, killed if it overruns its duration by more than a margin.
 */
import { spawn } from "node:child_process";
import { toolPath } from "./tools.ts";

/** What one wrk run measured. Latencies are in milliseconds. */
export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Socket errors (connect + read + write + timeout) plus non-2xx/3xx responses. */
  errors: number;
  non2xx: number;
}

const unitMs: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function durationMs(text: string): number {
  const m = text.match(/^([\d.]+)(us|ms|s|m|h)$/);
  if (!m?.[1] || !m[2]) throw new Error(`wrk: cannot read duration ${JSON.stringify(text)}`);
  return Number(m[1]) * (unitMs[m[2]] ?? Number.NaN);
}

/** Parse wrk's text report (run with `--latency`). Throws if a required figure is missing. */
export function parseWrk(text: string): WrkResult {
  const rps = text.match(/^Requests\/sec:\s+([\d.]+)/m);
  const total = text.match(/^\s*(\d+) requests in /m);
  const pct = (p: string) => {
    const m = text.match(new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m"));
    if (!m?.[1]) throw new Error(`wrk: no ${p}% latency in report (was --latency given?)`);
    return durationMs(m[1]);
  };
  if (!rps?.[1] || !total?.[1]) throw new Error(`wrk: unexpected report:\n${text}`);
  const sock = text.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const socketErrors = sock ? sock.slice(1).reduce((n, v) => n + Number(v), 0) : 0;
  const non2xx = Number(text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  return {
    requestsPerSec: Number(rps[1]),
    requests: Number(total[1]),
    p50Ms: pct("50"),
    p75Ms: pct("75"),
    p90Ms: pct("90"),
    p99Ms: pct("99"),
    errors: socketErrors + non2xx,
    non2xx,
  };
}

export interface WrkOptions {
  url: string;
  connections: number;
  /** Seconds of load. */
  durationSec: number;
  /** wrk threads. Default 1: on a small machine wrk must leave the cores to the server. */
  threads?: number;
  /** Per-request timeout in seconds. Default 5. */
  timeoutSec?: number;
  /** Aborts the run (Ctrl-C). */
  signal?: AbortSignal;
  /** Header fields sent with every request (`-H "name: value"`). */
  headers?: Record<string, string>;
  /** A Lua script file for wrk (`-s`): an absolute-form target for a forward proxy, say. */
  script?: string;
}

/** Run wrk once; bounded by its duration plus 15 s, after which it is killed and this rejects. */
export function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${options.threads ?? 1}`,
    `-c${options.connections}`,
    `-d${options.durationSec}s`,
    `--timeout`,
    `${options.timeoutSec ?? 5}s`,
    "--latency",
    ...Object.entries(options.headers ?? {}).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    ...(options.script ? ["-s", options.script] : []),
    options.url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(toolPath("wrk"), args, {
      stdio: ["ignore", "pipe", "pipe"],
      signal: options.signal,
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    const limit = setTimeout(() => child.kill("SIGKILL"), (options.durationSec + 15) * 1000);
    child.once("error", (e) => {
      clearTimeout(limit);
      reject(e);
    });
    child.once("close", (code, sig) => {
      clearTimeout(limit);
      if (code !== 0) {
        reject(new Error(`wrk ${args.join(" ")} failed (${code ?? sig}): ${err || out}`));
        return;
      }
      try {
        resolve(parseWrk(out));
      } catch (e) {
        reject(e);
      }
    });
  });
}
