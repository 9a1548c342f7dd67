/**
 * `node bench/sharedState.ts [--calls 100000] [--concurrency 64] [--workers 2]`
 *
 * What it costs to share rate-limit state across web workers, per decision, for each candidate
 * mechanism (docs/access.md has the choice and the figures):
 *
 * - `local`: each worker its own SharedStore (no sharing at all: the floor, and wrong, since a
 *   client then gets N times its limit);
 * - `ipc/call`: child processes, one IPC message to the master per decision;
 * - `ipc/batch`: child processes, the shipped SharedStateClient (one message per event-loop turn);
 * - `port/batch`: worker_threads, the same client over the threads' message ports;
 * - `sab`: worker_threads sharing a SharedArrayBuffer hash table of buckets under an Atomics
 *   spinlock (threads only: processes cannot share memory in Node).
 *
 * Each worker runs `concurrency` loops, each awaiting one leaky-bucket decision after another
 * (1000 keys, a rate high enough that all pass), `calls` decisions per worker in all. Reported:
 * wall time per decision over all workers, CPU per decision (workers + master), and the latency
 * of one decision at rest (a single loop). Runs are bounded by `calls`.
 */
import { fork } from "node:child_process";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import {
  type RateCheck,
  type RateRule,
  type SharedBatch,
  type SharedReplies,
  SharedStateClient,
  SharedStore,
} from "../src/process/sharedState.ts";

type Mode = "local" | "ipc/call" | "ipc/batch" | "port/batch" | "sab";
interface Job {
  mode: Mode;
  calls: number;
  concurrency: number;
  sab?: SharedArrayBuffer;
}
interface Result {
  wallMs: number;
  cpuUs: number;
  latencyUs: number;
}

const KEYS = 1000;
const rule: RateRule = { zone: "bench", rate: 1e9, burst: 100, delay: 100 };
const checkFor = (i: number): RateCheck => ({ rule, key: `10.0.${(i % KEYS) >> 8}.${i % 256}` });

// ---- the SharedArrayBuffer candidate: open addressing, a spinlock, two float64 per slot ----

const SLOTS = 4096;
function sabLayout(sab: SharedArrayBuffer) {
  return {
    lock: new Int32Array(sab, 0, 1),
    hashes: new Int32Array(sab, 8, SLOTS),
    state: new Float64Array(sab, 8 + SLOTS * 4, SLOTS * 2),
  };
}
const sabBytes = 8 + SLOTS * 4 + SLOTS * 16;
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 1; // never 0: 0 is an empty slot
}
function sabRate(t: ReturnType<typeof sabLayout>, c: RateCheck, now: number): boolean {
  const h = hash(c.key);
  while (Atomics.compareExchange(t.lock, 0, 0, 1) !== 0) {
    // spin: the critical section is a few dozen instructions
  }
  try {
    let i = (h >>> 0) % SLOTS;
    while (t.hashes[i] !== 0 && t.hashes[i] !== h) i = (i + 1) % SLOTS;
    if (t.hashes[i] === 0) {
      t.hashes[i] = h;
      t.state[i * 2] = 0;
      t.state[i * 2 + 1] = now;
      return true;
    }
    const excess = Math.max(
      0,
      t.state[i * 2]! - (c.rule.rate * (now - t.state[i * 2 + 1]!)) / 1000 + 1,
    );
    if (excess > c.rule.burst) return false;
    t.state[i * 2] = excess;
    t.state[i * 2 + 1] = now;
    return true;
  } finally {
    Atomics.store(t.lock, 0, 0);
  }
}

// ---- worker side ----

type Reply = { r: SharedReplies };
async function runJob(
  job: Job,
  send: (m: unknown) => void,
  onMessage: (fn: (m: Reply) => void) => void,
) {
  let decide: (c: RateCheck) => Promise<unknown>;
  if (job.mode === "local") {
    const store = new SharedStore();
    decide = (c) => Promise.resolve(store.rate([c], performance.now()));
  } else if (job.mode === "sab") {
    const t = sabLayout(job.sab!);
    decide = (c) => Promise.resolve(sabRate(t, c, performance.now()));
  } else if (job.mode === "ipc/call") {
    // The same wire, one message per decision.
    const waiting = new Map<number, (v: unknown) => void>();
    let next = 1;
    onMessage((m) => {
      for (let i = 0; i < m.r.length; i += 4) {
        waiting.get(m.r[i]!)?.(m.r[i + 1]);
        waiting.delete(m.r[i]!);
      }
    });
    let defined = false;
    decide = (c) =>
      new Promise((resolve) => {
        const i = next++;
        waiting.set(i, resolve);
        const def = defined ? [] : [0, 1, rule.zone, rule.rate, rule.burst, rule.delay, 0];
        defined = true;
        send({ t: "ss", q: [...def, 2, i, 1, 1, c.key] });
      });
  } else {
    const client = new SharedStateClient({
      send(q) {
        send({ t: "ss", q });
        return true;
      },
      timeoutMs: 60_000,
    });
    onMessage((m) => client.receive(m.r));
    decide = (c) => client.rate([c]);
  }
  // Latency at rest: one loop, one decision at a time.
  const restN = 2000;
  const r0 = performance.now();
  for (let i = 0; i < restN; i++) await decide(checkFor(i));
  const latencyUs = ((performance.now() - r0) * 1000) / restN;

  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let issued = 0;
  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      while (issued < job.calls) await decide(checkFor(issued++));
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs, cpuUs: cpu.user + cpu.system, latencyUs } satisfies Result;
}

if (!isMainThread) {
  const job = workerData as Job;
  const result = await runJob(
    job,
    (m) => parentPort!.postMessage(m),
    (fn) => parentPort!.on("message", fn),
  );
  parentPort!.postMessage({ t: "done", result });
} else if (process.send && process.argv[2] === "--child") {
  process.once("message", async (job: Job) => {
    const result = await runJob(
      job,
      (m) => process.send!(m),
      (fn) => process.on("message", fn),
    );
    process.send!({ t: "done", result }, () => process.exit(0));
  });
} else {
  const { values } = parseArgs({
    options: {
      calls: { type: "string", default: "100000" },
      concurrency: { type: "string", default: "64" },
      workers: { type: "string", default: "2" },
    },
  });
  const calls = Number(values.calls);
  const concurrency = Number(values.concurrency);
  const workers = Number(values.workers);
  const self = new URL(import.meta.url).pathname;

  async function runMode(mode: Mode): Promise<{ results: Result[]; masterCpuUs: number }> {
    const store = new SharedStore();
    const cpu0 = process.cpuUsage();
    const sab = mode === "sab" ? new SharedArrayBuffer(sabBytes) : undefined;
    const results = await Promise.all(
      Array.from(
        { length: workers },
        (_, w) =>
          new Promise<Result>((resolve, reject) => {
            const job: Job = { mode, calls, concurrency, ...(sab ? { sab } : {}) };
            const serve = (q: SharedBatch) => ({
              t: "ss",
              r: store.serve(w + 1, q, performance.now()),
            });
            const threads = mode === "port/batch" || mode === "sab";
            if (threads) {
              const wk = new Worker(self, { workerData: job });
              wk.on("message", (m: { t: string; q: SharedBatch; result: Result }) => {
                if (m.t === "ss") wk.postMessage(serve(m.q));
                else if (m.t === "done") {
                  resolve(m.result);
                  void wk.terminate();
                }
              });
              wk.on("error", reject);
            } else {
              const child = fork(self, ["--child"], { serialization: "json" });
              child.on("message", (m: { t: string; q: SharedBatch; result: Result }) => {
                if (m.t === "ss") child.send(serve(m.q));
                else if (m.t === "done") resolve(m.result);
              });
              child.on("error", reject);
              child.send(job);
            }
          }),
      ),
    );
    const cpu = process.cpuUsage(cpu0);
    return { results, masterCpuUs: cpu.user + cpu.system };
  }

  const modes: Mode[] = ["local", "ipc/call", "ipc/batch", "port/batch", "sab"];
  console.log(
    `calls=${calls} per worker, workers=${workers}, concurrency=${concurrency} per worker, node ${process.version}`,
  );
  console.log(
    "| mechanism | wall ns/decision | CPU ns/decision (workers + master) | latency at rest µs |",
  );
  console.log("| --- | ---: | ---: | ---: |");
  for (const mode of modes) {
    const { results, masterCpuUs } = await runMode(mode);
    const total = calls * workers;
    const wall = Math.max(...results.map((r) => r.wallMs));
    const workerCpu = results.reduce((a, r) => a + r.cpuUs, 0);
    // Thread modes: the process's CPU already includes the threads'.
    const threads = mode === "port/batch" || mode === "sab";
    const cpuUs = threads ? masterCpuUs : workerCpu + masterCpuUs;
    const latency = results.reduce((a, r) => a + r.latencyUs, 0) / results.length;
    console.log(
      `| ${mode} | ${Math.round((wall * 1e6) / total)} | ${Math.round((cpuUs * 1000) / total)} | ${latency.toFixed(1)} |`,
    );
  }
}
