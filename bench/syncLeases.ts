/**
 * `node bench/syncLeases.ts [requests=2000] [rounds=3]`: what the master's leases on sync app
 * workers (`stack.appLeases`, src/stack/leases.ts) cost per request under `brigade up` with two
 * web workers and two sync app workers serving a hello: the same stack with leases on and off,
 * alternated, each round `requests` requests over one keep-alive connection one after another
 * (the latency a request pays: median and mean) and then `requests` over 8 connections (the
 * throughput). Prints a Markdown table, medians of the rounds.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const requests = Number(process.argv[2] ?? 2000);
const rounds = Number(process.argv[3] ?? 3);
const bin = new URL("../bin/brigade.ts", import.meta.url).pathname;

interface Up {
  proc: ChildProcess;
  port: number;
  dir: string;
}

async function up(leases: boolean): Promise<Up> {
  const dir = mkdtempSync(join(tmpdir(), "brigade-leases-"));
  writeFileSync(join(dir, "app.ts"), 'export default { fetch: () => new Response("hello\\n") };\n');
  const proc = spawn(
    process.execPath,
    [
      bin,
      "up",
      "app.ts",
      "--listen",
      "127.0.0.1:0",
      "--admin",
      "off",
      "--runtime-dir",
      join(dir, "run"),
      "--web-workers",
      "2",
      "--app-workers",
      "2",
      "--worker-class",
      "sync",
      leases ? "--app-leases" : "--no-app-leases",
      "--log-level",
      "warn",
    ],
    { cwd: dir, stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: proc.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("brigade up did not start")), 60_000);
    lines.on("line", (line) => {
      const m = /^ {2}web +http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once("exit", () => reject(new Error("brigade up exited")));
  });
  return { proc, port, dir };
}

async function down(u: Up): Promise<void> {
  const gone = new Promise((r) => u.proc.once("exit", r));
  u.proc.kill("SIGTERM");
  await gone;
  rmSync(u.dir, { recursive: true, force: true });
}

function one(port: number, agent: Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      res.resume();
      res.on("end", resolve);
    })
      .on("error", reject)
      .end();
  });
}

async function serial(port: number, n: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await one(port, agent);
    us.push((performance.now() - t0) * 1000);
  }
  agent.destroy();
  return us;
}

async function parallel(port: number, n: number, c: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: c });
  let left = n;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (left-- > 0) await one(port, agent);
    }),
  );
  agent.destroy();
  return n / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

const results = new Map<string, { p50: number[]; mean: number[]; rps: number[] }>();
for (let r = 0; r < rounds; r++) {
  for (const leases of [true, false]) {
    const name = leases ? "leases on" : "leases off";
    const u = await up(leases);
    try {
      await serial(u.port, 200); // warm-up
      const lat = await serial(u.port, requests);
      const rps = await parallel(u.port, requests, 8);
      const e = results.get(name) ?? { p50: [], mean: [], rps: [] };
      e.p50.push(median(lat));
      e.mean.push(mean(lat));
      e.rps.push(rps);
      results.set(name, e);
      process.stderr.write(
        `round ${r + 1} ${name}: p50 ${median(lat).toFixed(0)} µs, mean ${mean(lat).toFixed(0)} µs, ${rps.toFixed(0)} req/s\n`,
      );
    } finally {
      await down(u);
    }
  }
}
console.log(
  "| 2 web + 2 sync app workers | serial p50 (µs) | serial mean (µs) | 8 conns (req/s) |",
);
console.log("|---|---|---|---|");
for (const [name, e] of results) {
  console.log(
    `| ${name} | ${median(e.p50).toFixed(0)} | ${median(e.mean).toFixed(0)} | ${median(e.rps).toFixed(0)} |`,
  );
}
