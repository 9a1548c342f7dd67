/**
 * `node bench/apprss.ts [requests=5000]`: resident memory per worker of the app server and its
 * peers (issue 3), each serving the same hello after `requests` keep-alive requests of warm-up:
 * the master's RSS and each worker's, from /proc. For thread mode (one process) the per-worker
 * cost is the difference between 2 threads and 1. Prints a Markdown table.
 */
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { processRss, processTree } from "./lib/process.ts";
import type { Case } from "./lib/suite.ts";
import { brigadeApp, cases } from "./suites/app.ts";

const warm = Number(process.argv[2] ?? 5000);

async function hammer(url: string, n: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  let left = n;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      request(url, { agent }, (res) => {
        res.resume();
        res.on("end", resolve);
      })
        .on("error", reject)
        .end();
    });
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (left-- > 0) await one();
    }),
  );
  agent.destroy();
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

/** kB fields of /proc/<pid>/status or smaps_rollup, in bytes (0 when absent). */
function procField(pid: number, file: string, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
      readFileSync(`/proc/${pid}/${file}`, "utf8"),
    );
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
const rows: string[] = [];
const measured: Case[] = [
  ...cases.filter((c) => c.name !== "brigade app sync x2"),
  brigadeApp(
    "brigade app threads x1",
    "bench/servers/appNode.ts",
    ["-w", "1", "--worker-mode", "thread"],
    "1 thread",
  ),
];
const threadTotals = new Map<string, number>();
for (const c of measured) {
  const server = await c.start();
  try {
    await hammer(server.url, warm);
    await new Promise((r) => setTimeout(r, 1500));
    const tree = processTree(server.pids[0]!);
    const rss = tree
      .map((p) => ({
        pid: p,
        rss: processRss(p),
        anon: procField(p, "status", "RssAnon"),
        pss: procField(p, "smaps_rollup", "Pss"),
      }))
      .filter((p) => p.rss > 0);
    // The root may be a launcher (`timeout`, a shell): the master is the largest non-worker.
    const total = rss.reduce((s, p) => s + p.rss, 0);
    if (c.name.includes("threads")) threadTotals.set(c.name, total);
    const sorted = [...rss].sort((a, b) => b.rss - a.rss);
    const each = (k: "rss" | "anon" | "pss") => sorted.map((p) => mib(p[k])).join(" / ");
    rows.push(
      `| ${c.name} | ${rss.length} | ${mib(total)} | ${each("rss")} | ${each("anon")} | ${each("pss")} |`,
    );
  } finally {
    await server.stop();
  }
}
const t2 = threadTotals.get("brigade app threads x2");
const t1 = threadTotals.get("brigade app threads x1");
process.stdout.write(
  [
    `Memory after ${warm} keep-alive requests, MiB, processes largest RSS first. RSS counts the`,
    "node binary's pages, which processes share; RssAnon is private memory; PSS splits shared pages.",
    "",
    "| case | processes | RSS total | RSS each | RssAnon each | PSS each |",
    "|---|---:|---:|---|---|---|",
    ...rows,
    "",
    t1 !== undefined && t2 !== undefined
      ? `One more worker thread costs ${mib(t2 - t1)} MiB (threads x2 - threads x1).`
      : "",
    "",
  ].join("\n"),
);
