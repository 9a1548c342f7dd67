/**
 * Where a proxied request's time goes: `node bench/proxyprofile.ts [--duration 10] [--connections 64]
 * [--engine brigade|node] [--upstream-client brigade|undici] [--top 40]`. Starts the node:http hello
 * upstream (bench/servers/nodeHttp.ts) and `brigade web` (1 worker, the proxy suite's config) with
 * `--cpu-prof` in the worker (through NODE_OPTIONS), drives it with wrk, stops it gracefully so the
 * profile is written, and prints self time by function and by file (share of non-idle samples),
 * plus the worker's CPU per request. Linux only (CPU time from /proc).
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { processTree } from "./lib/process.ts";
import { helloUpstream } from "./lib/proxied.ts";
import { startBrigadeWeb } from "./lib/suite.ts";
import { runWrk } from "./lib/wrk.ts";

const { values } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    connections: { type: "string", default: "64" },
    engine: { type: "string", default: "brigade" },
    "upstream-client": { type: "string" },
    top: { type: "string", default: "40" },
    path: { type: "string", default: "/" },
  },
});

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

function ticks(pids: readonly number[]): number {
  let n = 0;
  for (const root of pids) {
    for (const p of processTree(root)) {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        n += Number(f[11]) + Number(f[12]);
      } catch {
        // gone
      }
    }
  }
  return n;
}

const dir = mkdtempSync(join(tmpdir(), "brigade-proxyprof-"));
const profDir = join(dir, "prof");
const up = await helloUpstream();
const env: Record<string, string | undefined> = {
  ...process.env,
  NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profDir}`,
  BRIGADE_WEB_ENGINE: values.engine!,
};
if (values["upstream-client"]) env.BRIGADE_UPSTREAM_CLIENT = values["upstream-client"];
const web = await startBrigadeWeb({
  env,
  config: (port) => ({
    web: {
      workers: 1,
      listen: [`127.0.0.1:${port}`],
      upstreams: { app: { peers: [`127.0.0.1:${up.port}`], keepalive: { idle: 64 } } },
      servers: [{ proxy: "app" }],
    },
  }),
});
let usPerReq = 0;
let rps = 0;
try {
  const url = new URL(values.path!, web.url).href;
  await runWrk({ url, connections: Number(values.connections), durationSec: 2 });
  const before = ticks([web.pid]);
  const w = await runWrk({
    url,
    connections: Number(values.connections),
    durationSec: Number(values.duration),
  });
  usPerReq = ((ticks([web.pid]) - before) * 10_000) / w.requests;
  rps = w.requestsPerSec;
} finally {
  await web.stop();
  await up.stop();
}

// The worker's profile is the one with the most busy time (the master idles after its start).
const busy = (p: Profile) => {
  const idleIds = new Set(
    p.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id),
  );
  let t = 0;
  for (let i = 0; i < p.samples.length; i++)
    if (!idleIds.has(p.samples[i]!)) t += p.timeDeltas[i] ?? 0;
  return t;
};
const files = readdirSync(profDir)
  .map((f) => join(profDir, f))
  .map((f) => {
    const p = JSON.parse(readFileSync(f, "utf8")) as Profile;
    return { f, p, busy: busy(p) };
  })
  .sort((a, b) => b.busy - a.busy);
const profile = files[0]!.p;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!;
  self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const root = process.cwd();
const where = (n: Node) => {
  const u = n.callFrame.url;
  if (u === "") return "(native)";
  if (u.startsWith("node:")) return u;
  return relative(root, new URL(u).pathname);
};
const fn = new Map<string, number>();
const file = new Map<string, number>();
let total = 0;
let idle = 0;
for (const [id, t] of self) {
  const n = byId.get(id)!;
  const name = n.callFrame.functionName || "(anonymous)";
  if (name === "(idle)" || name === "(program)" || name === "(garbage collector)") {
    if (name === "(idle)") idle += t;
    else {
      total += t;
      fn.set(name, (fn.get(name) ?? 0) + t);
    }
    continue;
  }
  total += t;
  const k = `${name} ${where(n)}:${n.callFrame.lineNumber + 1}`;
  fn.set(k, (fn.get(k) ?? 0) + t);
  const f = where(n);
  file.set(f, (file.get(f) ?? 0) + t);
}
const pct = (t: number) => `${((100 * t) / total).toFixed(1)}%`;
const top = Number(values.top);
let out = `brigade web (engine ${values.engine}${values["upstream-client"] ? `, upstream client ${values["upstream-client"]}` : ""}): ${usPerReq.toFixed(1)} µs CPU/request over the master+worker tree, ${Math.round(rps)} req/s; worker profile ${((100 * idle) / (idle + total)).toFixed(0)}% idle\n\nby file (self time, share of non-idle):\n`;
for (const [k, t] of [...file].sort((a, b) => b[1] - a[1]).slice(0, 25))
  out += `  ${pct(t).padStart(6)}  ${k}\n`;
out += "\nby function:\n";
for (const [k, t] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top))
  out += `  ${pct(t).padStart(6)}  ${k}\n`;
process.stdout.write(out);
process.stderr.write(`profile: ${files[0]!.f}\n`);
