/**
 * `node bench/accessCost.ts [--duration 3] [--repeats 3] [--connections 8,64]`
 *
 * CPU time per request of each access rule, in brigade and in nginx, each against the same
 * server without the rule: the servers of bench/suites/access.ts (one worker each), loaded in
 * turn with wrk, the CPU of each server's whole process tree (master, workers, threads) read
 * from /proc before and after each run and divided by the requests wrk completed. CPU per
 * request is much steadier than req/s on a machine shared with other work (stolen time and
 * contention change throughput, not the work a request needs), so the ratios are read from it.
 * Also reports req/s for the record. Every run is bounded by `duration`.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { processTree } from "./lib/process.ts";
import type { Server } from "./lib/suite.ts";
import { runWrk } from "./lib/wrk.ts";
import suite from "./suites/access.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "3" },
    repeats: { type: "string", default: "3" },
    connections: { type: "string", default: "8,64" },
  },
});
const durationSec = Number(values.duration);
const repeats = Number(values.repeats);
const connectionCounts = values.connections.split(",").map(Number);
const ticksPerSec = 100; // USER_HZ on Linux

/** utime + stime (and that of exited children waited for) of a tree, in seconds. */
function treeCpu(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // fields after the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited meanwhile
    }
  }
  return ticks / ticksPerSec;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const servers: { name: string; server: Server }[] = [];
try {
  for (const c of suite.cases) servers.push({ name: c.name, server: await c.start() });
  // Warm up each once (JIT, caches, bcrypt's cache of the one user).
  for (const s of servers) {
    await runWrk({
      url: s.server.url,
      connections: 64,
      durationSec: 2,
      headers: suite.headers ?? {},
    });
  }
  for (const connections of connectionCounts) {
    const cpu = new Map<string, number[]>();
    const rps = new Map<string, number[]>();
    for (let round = 0; round < repeats; round++) {
      // Rotate the order each round so no case always follows the same one.
      const order = servers.map((_, i) => servers[(i + round) % servers.length]!);
      for (const s of order) {
        const pid = s.server.pids[0]!;
        const before = treeCpu(pid);
        const r = await runWrk({
          url: s.server.url,
          connections,
          durationSec,
          headers: suite.headers ?? {},
        });
        const used = treeCpu(pid) - before;
        if (r.errors > 0) throw new Error(`${s.name}: ${r.errors} errors`);
        cpu.set(s.name, [...(cpu.get(s.name) ?? []), (used * 1e6) / r.requests]);
        rps.set(s.name, [...(rps.get(s.name) ?? []), r.requestsPerSec]);
        process.stderr.write(
          `  c${connections} ${s.name}: ${((used * 1e6) / r.requests).toFixed(1)} µs/req\n`,
        );
      }
    }
    const us = (n: string) => median(cpu.get(n) ?? [Number.NaN]);
    console.log(
      `\nCPU per request, median of ${repeats} (wrk -c${connections} -d${durationSec}s, one worker each, the server's whole process tree)\n`,
    );
    console.log(
      "| case | CPU µs/req | vs same server plain | vs nginx same rule | req/s (median) |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: |");
    for (const s of servers) {
      const [server, ...rest] = s.name.split(" ");
      const rule = rest.join(" ");
      const plain = us(`${server} plain`);
      const nginx = us(`nginx ${rule}`);
      console.log(
        `| ${s.name} | ${us(s.name).toFixed(1)} | ${(us(s.name) / plain).toFixed(2)}× | ${(us(s.name) / nginx).toFixed(2)}× | ${Math.round(median(rps.get(s.name)!)).toLocaleString("en")} |`,
      );
    }
  }
} finally {
  await Promise.all(servers.map((s) => s.server.stop()));
}
