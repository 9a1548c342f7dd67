/**
 * CPU time per request: `node bench/cpu.ts [suite] [--duration 5] [--rounds 3] [--connections 64]`
 * (suite default `engine`). For every case and path of the suite, drive it with wrk and read the
 * CPU time (user + system, from /proc) its process tree spent meanwhile: microseconds of server
 * CPU per request. On a machine shared with other work, throughput mostly measures the share of
 * the CPU a server was given; CPU per request measures what a request costs it, which is what
 * "as fast as nginx" means once the machine is the server's alone. Linux only.
 *
 * A case with several process trees (a proxy and its upstream: `pids` is `[front, upstream]`)
 * also gets the front's own share (the first tree), the proxy's cost without its upstream's.
 * `--only a,b` runs just the named cases (the suite's baseline is added). `--against DIR` adds
 * the suite's Brigade cases run from the checkout at DIR (`Suite.against`; kept by `--only`),
 * measured in turn with the others: an A/B of two branches.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { processTree } from "./lib/process.ts";
import type { Server, Suite } from "./lib/suite.ts";
import { runWrk } from "./lib/wrk.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    duration: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    connections: { type: "string", default: "64" },
    only: { type: "string" },
    against: { type: "string" },
  },
});
const name = positionals[0] ?? "engine";
const loaded = ((await import(`./suites/${name}.ts`)) as { default: Suite }).default;
const only = values.only?.split(",").map((s) => s.trim());
if (values.against !== undefined && loaded.against === undefined) {
  throw new Error(`suite ${name} has no cases to run --against another checkout`);
}
const against = values.against === undefined ? [] : loaded.against!(resolve(values.against));
const suite: Suite = {
  ...loaded,
  cases: [
    ...loaded.cases.filter(
      (c) => only === undefined || c.name === loaded.baseline || only.includes(c.name),
    ),
    ...against,
  ],
};
const durationSec = Number(values.duration);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux

/** utime + stime (or only stime) of every process in the trees, in microseconds. */
function cpuUs(pids: readonly number[], systemOnly = false): number {
  let ticks = 0;
  const seen = new Set<number>();
  for (const root of pids) for (const p of processTree(root)) seen.add(p);
  for (const p of seen) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += (systemOnly ? 0 : Number(f[11])) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks * TICK_US;
}

const started = new Map<string, Server>();
const results: Record<
  string,
  { usPerReq: number[]; frontUs: number[]; frontSysUs: number[]; rps: number[] }
> = {};
try {
  for (const c of suite.cases) {
    process.stderr.write(`  starting ${c.name}\n`);
    started.set(c.name, await c.start());
  }
  const paths = suite.paths ?? [undefined];
  for (let r = 0; r < rounds; r++) {
    for (const c of suite.cases) {
      const server = started.get(c.name)!;
      for (const path of paths) {
        const url = path === undefined ? server.url : new URL(path, server.url).href;
        const key = `${c.name}${path ?? ""}`;
        if (r === 0) await runWrk({ url, connections, durationSec: 1 }); // warm-up
        const front = server.pids.slice(0, 1);
        const before = cpuUs(server.pids);
        const frontBefore = cpuUs(front);
        const frontSysBefore = cpuUs(front, true);
        const w = await runWrk({ url, connections, durationSec });
        const used = cpuUs(server.pids) - before;
        const frontUsed = cpuUs(front) - frontBefore;
        const frontSys = cpuUs(front, true) - frontSysBefore;
        const x = results[key] ?? { usPerReq: [], frontUs: [], frontSysUs: [], rps: [] };
        results[key] = x;
        x.usPerReq.push(used / w.requests);
        x.frontUs.push(frontUsed / w.requests);
        x.frontSysUs.push(frontSys / w.requests);
        x.rps.push(w.requestsPerSec);
        process.stderr.write(
          `  [${r + 1}/${rounds}] ${key}: ${(used / w.requests).toFixed(1)} µs CPU/request (front ${(frontUsed / w.requests).toFixed(1)}, of it kernel ${(frontSys / w.requests).toFixed(1)}), ${Math.round(w.requestsPerSec)} req/s\n`,
        );
      }
    }
  }
} finally {
  await Promise.allSettled([...started.values()].map((s) => s.stop()));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = suite.baseline;
const rows = Object.entries(results);
let out = `\n### server CPU per request, wrk -c${connections}, ${rounds}×${durationSec}s, medians (lower is better)\n\n| case | path | µs CPU / request | vs ${base} | front only µs | of it kernel µs | front vs ${base}'s | req/s |\n|---|---|---:|---:|---:|---:|---:|---:|\n`;
for (const [key, x] of rows) {
  const c = [...suite.cases]
    .sort((a, b) => b.name.length - a.name.length)
    .find((k) => key.startsWith(k.name))!;
  const path = key.slice(c.name.length) || "-";
  const baseline = results[`${base}${path === "-" ? "" : path}`];
  const ratio = baseline ? median(x.usPerReq) / median(baseline.usPerReq) : Number.NaN;
  const frontRatio = baseline ? median(x.frontUs) / median(baseline.frontUs) : Number.NaN;
  out += `| ${c.name} | ${path} | ${median(x.usPerReq).toFixed(1)} | ${ratio.toFixed(2)}× | ${median(x.frontUs).toFixed(1)} | ${median(x.frontSysUs).toFixed(1)} | ${frontRatio.toFixed(2)}× | ${Math.round(median(x.rps))} |\n`;
}
process.stdout.write(out);
