/**
 * Judging a canary: the first app worker of a new version serves beside the old ones for
 * `stack.canary`; this compares what it answered with what they answered over the same time
 * (their counters are taken when the canary is first looked at, so only the window counts),
 * from the app workers' own counters (src/appserver/metrics.ts: `requests`, `status_5xx`,
 * `duration_sum`).
 *
 * Verdicts: `fail` as soon as the canary has answered `minRequests` and its 5xx share is over
 * twice the old workers' plus 10 points, or its mean latency over three times theirs plus 100 ms;
 * else `wait` until the time is over, then `pass` (with too little traffic to judge, too).
 */
import type { CanaryVerdict, WorkerInfo } from "../process/master.ts";

interface Window {
  canaryPid: number;
  /** Old workers' counters at the start, by pid. */
  base: Map<number, { requests: number; errors: number; seconds: number }>;
}

const counts = (w: WorkerInfo) => ({
  requests: w.stats.requests ?? 0,
  errors: w.stats.status_5xx ?? 0,
  seconds: w.stats.duration_sum ?? 0,
});

export class CanaryJudge {
  private window: Window | undefined;
  private readonly minRequests: number;

  constructor(minRequests: number) {
    this.minRequests = minRequests;
  }

  look(candidate: WorkerInfo, incumbents: WorkerInfo[], final: boolean): CanaryVerdict {
    if (this.window?.canaryPid !== candidate.pid) {
      this.window = {
        canaryPid: candidate.pid,
        base: new Map(incumbents.map((w) => [w.pid, counts(w)])),
      };
    }
    const c = counts(candidate);
    let requests = 0;
    let errors = 0;
    let seconds = 0;
    for (const w of incumbents) {
      const base = this.window.base.get(w.pid);
      if (!base) continue;
      const now = counts(w);
      requests += now.requests - base.requests;
      errors += now.errors - base.errors;
      seconds += now.seconds - base.seconds;
    }
    if (c.requests >= this.minRequests) {
      const share = c.errors / c.requests;
      const oldShare = requests > 0 ? errors / requests : 0;
      if (share > 2 * oldShare + 0.1) {
        return {
          verdict: "fail",
          reason: `${pct(share)} of its ${c.requests} answers were 5xx, against ${pct(oldShare)} of the old workers' ${requests}`,
        };
      }
      const mean = c.seconds / c.requests;
      if (requests >= this.minRequests) {
        const oldMean = seconds / requests;
        if (mean > 3 * oldMean + 0.1) {
          return {
            verdict: "fail",
            reason: `its mean latency was ${ms(mean)} over ${c.requests} requests, against ${ms(oldMean)} for the old workers`,
          };
        }
      }
    }
    if (final) {
      this.window = undefined;
      return { verdict: "pass" };
    }
    return { verdict: "wait" };
  }
}

const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
const ms = (s: number) => `${Math.round(s * 10000) / 10} ms`;
