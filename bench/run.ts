/**
 * `npm run bench -- <suite> [--duration 5s] [--repeats 3] [--connections 64,256] [--quick]`
 *
 * Starts every case of `bench/suites/<suite>.ts` side by side, warms each up, then drives them
 * with wrk INTERLEAVED (round 1: A B C, round 2: A B C, ...) so that machine noise (other
 * processes, thermal, frequency) spreads over all cases instead of landing on one. Prints
 * medians and ratios to the suite's baseline, and writes bench/results/<suite>-<date>.md plus
 * a .json with every raw run. Servers are stopped by PID at the end, on error and on Ctrl-C.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { svgChart } from "./lib/chart.ts";
import { treeRss } from "./lib/process.ts";
import { markdownTables, type Run, summarise } from "./lib/report.ts";
import type { ExtraReport, Server, Suite } from "./lib/suite.ts";
import { findTool, installHint, type Tool } from "./lib/tools.ts";
import { runWrk } from "./lib/wrk.ts";

const usage = `usage: npm run bench -- <suite> [options]

  --duration <5s>        load per run (s, m suffixes; whole seconds)
  --repeats <3>          interleaved rounds per case and connection count
  --connections <64,256> wrk connection counts (one table each)
  --threads <1>          wrk threads
  --warmup <1s>          load per case before measuring (0 to skip)
  --quick                --duration 2s --repeats 1 --connections 64 --warmup 1s
  --out <dir>            where results go (default bench/results)

suites: ${listSuites().join(", ")}`;

function listSuites(): string[] {
  return readdirSync(new URL("./suites/", import.meta.url))
    .filter((f) => f.endsWith(".ts"))
    .map((f) => f.slice(0, -3))
    .sort();
}

function seconds(text: string, flag: string): number {
  const m = text.match(/^(\d+)(s|m)?$/);
  if (!m?.[1]) throw new Error(`${flag}: expected whole seconds like 5s or 1m, got ${text}`);
  return Number(m[1]) * (m[2] === "m" ? 60 : 1);
}

function positive(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: expected a positive integer`);
  return n;
}

function toolVersion(cmd: string, args: string[]): string {
  const path = findTool(cmd);
  if (!path) return "not installed";
  try {
    // nginx prints its version on stderr, the others on stdout.
    const r = spawnSync(path, args, { encoding: "utf8", timeout: 5000 });
    return `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n")[0] ?? "";
  } catch {
    return "unknown";
  }
}

/** Aborted on SIGINT/SIGTERM: stops wrk at once and ends the loop, servers stop in `finally`. */
const abort = new AbortController();

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      duration: { type: "string" },
      repeats: { type: "string" },
      connections: { type: "string" },
      threads: { type: "string", default: "1" },
      warmup: { type: "string" },
      quick: { type: "boolean", default: false },
      out: { type: "string", default: new URL("./results/", import.meta.url).pathname },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const name = positionals[0];
  if (values.help || !name) {
    process.stdout.write(`${usage}\n`);
    return values.help ? 0 : 2;
  }
  if (!listSuites().includes(name)) {
    process.stderr.write(`bench: no suite "${name}"\n\n${usage}\n`);
    return 2;
  }
  const q = values.quick;
  const durationSec = seconds(values.duration ?? (q ? "2s" : "5s"), "--duration");
  const repeats = positive(values.repeats ?? (q ? "1" : "3"), "--repeats");
  const connections = (values.connections ?? (q ? "64" : "64,256"))
    .split(",")
    .map((c) => positive(c.trim(), "--connections"));
  const threads = positive(values.threads, "--threads");
  const warmupSec = seconds(values.warmup ?? "1s", "--warmup");
  if (durationSec < 1) throw new Error("--duration: at least 1s");

  const suite = ((await import(`./suites/${name}.ts`)) as { default: Suite }).default;
  if (!suite.cases.some((c) => c.name === suite.baseline)) {
    throw new Error(`suite ${name}: baseline "${suite.baseline}" is not one of its cases`);
  }
  const needed: Tool[] = ["wrk", ...(suite.tools ?? [])];
  const missing = needed.filter((t) => !findTool(t));
  if (missing.length) {
    process.stderr.write(`bench: missing tools: ${missing.join(", ")}\n`);
    for (const t of missing) process.stderr.write(`  ${t}: ${installHint[t]}\n`);
    process.stderr.write(
      `  all at once: apt-get update && apt-get install -y ${missing.join(" ")}\n`,
    );
    return 2;
  }

  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    process.stderr.write(`\nbench: ${sig}, stopping servers...\n`);
    abort.abort(new Error(`interrupted by ${sig}`));
    // A second Ctrl-C means now; children in our process group got the signal too.
    if (interrupts > 1) process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const started = new Map<string, Server>();
  const cleanups: (() => void)[] = [];
  let extra: ExtraReport | undefined;
  const runs: Run[] = [];
  const rss: Record<string, number> = {};
  const startedAt = new Date();
  const loads = suite.cases.length * Math.max(1, suite.paths?.length ?? 1);
  const estimate = loads * (warmupSec + durationSec * repeats * connections.length);
  process.stderr.write(
    `bench ${name}: ${suite.cases.length} cases, ${connections.join("/")} connections, ${repeats}×${durationSec}s each, about ${Math.ceil(estimate / 60)} min\n`,
  );
  try {
    for (const c of suite.cases) {
      abort.signal.throwIfAborted();
      process.stderr.write(`  starting ${c.name}\n`);
      started.set(c.name, await c.start());
    }
    type Target = { case: string; path: string | undefined; url: string; script?: string };
    const scripts = mkdtempSync(join(tmpdir(), "brigade-wrk-"));
    cleanups.push(() => rmSync(scripts, { recursive: true, force: true }));
    const targets = suite.cases.flatMap((c, i): Target[] => {
      const server = started.get(c.name)!;
      let script: string | undefined;
      if (server.wrkScript !== undefined) {
        script = join(scripts, `${i}.lua`);
        writeFileSync(script, server.wrkScript);
      }
      const s = script === undefined ? {} : { script };
      if (!suite.paths) return [{ case: c.name, path: undefined, url: server.url, ...s }];
      return suite.paths.map((p) => ({
        case: c.name,
        path: p,
        url: new URL(p, server.url).href,
        ...s,
      }));
    });
    if (warmupSec > 0) {
      for (const t of targets) {
        abort.signal.throwIfAborted();
        await runWrk({
          url: t.url,
          connections: Math.max(...connections),
          durationSec: warmupSec,
          threads,
          signal: abort.signal,
          ...(suite.headers ? { headers: suite.headers } : {}),
          ...(t.script ? { script: t.script } : {}),
        });
      }
    }
    for (let round = 0; round < repeats; round++) {
      for (const conns of connections) {
        for (const t of targets) {
          abort.signal.throwIfAborted();
          const run: Run = { case: t.case, path: t.path, connections: conns, round };
          try {
            run.result = await runWrk({
              url: t.url,
              connections: conns,
              durationSec,
              threads,
              signal: abort.signal,
              ...(suite.headers ? { headers: suite.headers } : {}),
              ...(t.script ? { script: t.script } : {}),
            });
          } catch (err) {
            abort.signal.throwIfAborted();
            run.error = (err as Error).message;
          }
          runs.push(run);
          const r = run.result;
          process.stderr.write(
            `  [${round + 1}/${repeats}] c=${conns} ${t.case}${t.path ?? ""}: ${r ? `${Math.round(r.requestsPerSec)} req/s p99 ${r.p99Ms.toFixed(2)} ms${r.errors ? ` errors ${r.errors}` : ""}` : `FAILED ${run.error}`}\n`,
          );
        }
      }
    }
    if (suite.extra) {
      abort.signal.throwIfAborted();
      extra = await suite.extra(started, {
        durationSec,
        repeats,
        signal: abort.signal,
        log: (line) => process.stderr.write(`  ${line}\n`),
      });
    }
    for (const c of suite.cases) {
      const s = started.get(c.name)!;
      rss[c.name] = treeRss(s.pids);
    }
  } finally {
    await Promise.allSettled([...started.values()].map((s) => s.stop()));
    for (const fn of cleanups) fn();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  const rows = summarise(runs, suite.baseline);
  const command = `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim();
  const env = {
    date: startedAt.toISOString(),
    cpu: `${cpus().length}× ${cpus()[0]?.model ?? "?"}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    nginx: toolVersion("nginx", ["-v"]),
    gunicorn: toolVersion("gunicorn", ["--version"]),
    wrk: toolVersion("wrk", ["--version"]),
  };
  const header = [
    `## bench ${name}: ${suite.description}`,
    "",
    `\`${command}\` — ${env.date}, ${env.cpu}, ${env.memoryGiB} GiB, Node ${env.node}, ${env.nginx}, ${env.gunicorn}, ${env.wrk.split(" Copyright")[0]}`,
    "",
    `wrk -t${threads}, ${durationSec}s per run, ${repeats} interleaved rounds, ${warmupSec}s warm-up per case; medians; baseline **${suite.baseline}**.`,
    "",
    ...suite.cases.map((c) => `- **${c.name}**: ${c.description ?? ""}`),
    "",
  ].join("\n");
  const markdown = `${header}\n${markdownTables(rows, suite.baseline, rss)}${extra ? `\n${extra.markdown}` : ""}`;
  process.stdout.write(`\n${markdown}`);

  mkdirSync(values.out, { recursive: true });
  // A day's first run is <suite>-<date>, later ones -b, -c...: an earlier result is never overwritten.
  const day = `${values.out.replace(/\/$/, "")}/${name}-${startedAt.toISOString().slice(0, 10)}`;
  let base = day;
  for (let i = 0; existsSync(`${base}.md`) || existsSync(`${base}.json`); i++) {
    base = `${day}-${String.fromCharCode(98 + (i % 25))}${i >= 25 ? Math.floor(i / 25) : ""}`;
  }
  writeFileSync(`${base}.md`, markdown);
  const settings = { durationSec, repeats, connections, threads, warmupSec };
  writeFileSync(
    `${base}.json`,
    `${JSON.stringify({ suite: name, command, env, settings, rss, rows, runs, extra: extra?.data }, null, 2)}\n`,
  );
  if (suite.chart) {
    writeFileSync(
      `${base}.svg`,
      svgChart(rows, `bench ${name}: ${suite.description}`, suite.baseline),
    );
  }
  process.stderr.write(
    `\nwritten: ${base}.md, ${base}.json${suite.chart ? `, ${base}.svg` : ""}\n`,
  );
  return runs.some((r) => r.error) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const reason = abort.signal.aborted ? abort.signal.reason : err;
    process.stderr.write(`bench: ${(reason as Error)?.message ?? reason}\n`);
    process.exitCode = abort.signal.aborted ? 130 : 1;
  },
);
