/**
 * `node bench/stackcpu.ts [rounds=3]`: CPU time per request of each side of bench/suites/stack.ts
 * (nginx + gunicorn, brigade up on each HTTP engine), summed over every process of the server's
 * tree, from /proc tick counts around a 5 s wrk run at 64 connections. Unlike req/s, this hardly
 * depends on what else the machine runs, so it is the steadier comparison on a shared machine:
 * the ratio of CPU per request is the ratio of throughput the same cores would give, once the
 * server is the bottleneck. Prints a table (µs per request, median of the rounds) and writes it
 * to bench/results/stackcpu-<date>.md.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { processTree } from "./lib/process.ts";
import { median } from "./lib/report.ts";
import type { Server } from "./lib/suite.ts";
import { runWrk } from "./lib/wrk.ts";
import { cases } from "./suites/stack.ts";

const rounds = Number(process.argv[2] ?? 3);
const wanted = ["nginx + gunicorn", "brigade up", "brigade up, node engine"];
const paths = ["/static.txt", "/hello"];
const TICK_US = 10_000; // USER_HZ 100

function ticks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

const treeTicks = (roots: readonly number[]) =>
  roots.flatMap((p) => processTree(p)).reduce((n, p) => n + ticks(p), 0);

const started = new Map<string, Server>();
const results = new Map<string, number[]>();
try {
  for (const c of cases.filter((x) => wanted.includes(x.name))) {
    process.stderr.write(`starting ${c.name}\n`);
    started.set(c.name, await c.start());
  }
  for (let r = 0; r < rounds; r++) {
    for (const path of paths) {
      for (const [name, s] of started) {
        const url = new URL(path, s.url).href;
        const before = treeTicks(s.pids);
        const w = await runWrk({ url, connections: 64, durationSec: 5 });
        const us = ((treeTicks(s.pids) - before) * TICK_US) / Math.max(1, w.requests);
        const key = `${name}\0${path}`;
        results.set(key, [...(results.get(key) ?? []), us]);
        process.stderr.write(
          `  [${r + 1}/${rounds}] ${name} ${path}: ${us.toFixed(1)} µs/request (${Math.round(w.requestsPerSec)} req/s)\n`,
        );
      }
    }
  }
} finally {
  await Promise.allSettled([...started.values()].map((s) => s.stop()));
}
const lines = [
  `## CPU per request, ${new Date().toISOString()} (\`node bench/stackcpu.ts ${rounds}\`)`,
  "",
  "Summed over each server's process tree; 64 connections, 5 s wrk runs; median of the rounds.",
  "",
  "| case | /static.txt µs/req | vs nginx + gunicorn | /hello µs/req | vs nginx + gunicorn |",
  "| --- | ---: | ---: | ---: | ---: |",
];
for (const name of wanted) {
  const cells = paths.flatMap((p) => {
    const v = median(results.get(`${name}\0${p}`) ?? []);
    const base = median(results.get(`nginx + gunicorn\0${p}`) ?? []);
    return [v.toFixed(1), `${(base / v).toFixed(2)}× as cheap`];
  });
  lines.push(`| ${name} | ${cells.join(" | ")} |`);
}
const text = `${lines.join("\n")}\n`;
process.stdout.write(`\n${text}`);
writeFileSync(
  new URL(`./results/stackcpu-${new Date().toISOString().slice(0, 10)}.md`, import.meta.url),
  text,
);
