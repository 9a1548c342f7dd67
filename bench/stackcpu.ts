/**
 * `node bench/stackcpu.ts [rounds=3] [--compare] [--threads] [--only a,b] [--duration 5]`: CPU
 * time per request of each side of bench/suites/stack.ts (nginx + gunicorn, brigade up on each
 * HTTP engine), summed over every process of the server's tree, from /proc tick counts around a
 * 5 s wrk run at 64 connections. Unlike req/s, this hardly depends on what else the machine runs,
 * so it is the steadier comparison on a shared machine: the ratio of CPU per request is the ratio
 * of throughput the same cores would give, once the server is the bottleneck. Prints a table (µs
 * per request, median of the rounds) and writes it to bench/results/stackcpu-<date>.md.
 *
 * It also breaks each case's CPU down by process role (master, web worker, app worker, nginx
 * worker, ...; from each process' title or command line), user and kernel time apart (fields 14
 * and 15 of /proc/<pid>/stat), summed over the processes of a role.
 *
 * - `--compare` adds the pieces of the stack run alone, for the same `/hello`: a bare node:http
 *   hello (bench/servers/nodeHttp.ts, one process), `brigade app` with the same app on 2 workers
 *   (wrk straight at it), and `brigade web` (1 worker) proxying to that `brigade app` over a unix
 *   socket, and the same front before the bare node:http hello on a unix socket (what the app
 *   worker adds over node:http, under the same load pattern), so the stack's own overhead (peer
 *   tables, load reports, metrics, the embedded default's try_files) shows against the tiers it
 *   is made of.
 * - `--against DIR` adds `brigade up` run from another checkout (DIR/bin/brigade.ts, with its
 *   node_modules), e.g. a `git worktree` of main, as the case "brigade up @DIR": before and after
 *   a change, measured in the same run.
 * - `--threads` splits each role's CPU by thread (main, libuv pool, V8 workers), from
 *   /proc/<pid>/task/<tid>/stat.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type RunningServer, startCommand } from "./lib/peers.ts";
import { processTree } from "./lib/process.ts";
import { median } from "./lib/report.ts";
import { benchFile, type Case, type Server, startBrigadeWeb } from "./lib/suite.ts";
import { runWrk } from "./lib/wrk.ts";
import { brigadeUp, cases as stackCases } from "./suites/stack.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    compare: { type: "boolean", default: false },
    threads: { type: "boolean", default: false },
    only: { type: "string" },
    against: { type: "string" },
    duration: { type: "string", default: "5" },
    connections: { type: "string", default: "64" },
  },
});
const rounds = Number(positionals[0] ?? 3);
const durationSec = Number(values.duration);
const connections = Number(values.connections);
const TICK_US = 10_000; // USER_HZ 100

/** `brigade app bench/servers/appNode.ts -w 2`, on TCP for wrk and on a unix socket. */
function brigadeApp(): Promise<RunningServer> {
  return startCommand({
    name: "brigade app",
    command: process.execPath,
    args: [
      benchFile("bin/brigade.ts"),
      "app",
      benchFile("bench/servers/appNode.ts"),
      "-b",
      "127.0.0.1:{port}",
      "-b",
      "unix:{dir}/app.sock",
      "-w",
      "2",
      "--log-level",
      "warn",
    ],
  });
}

/** `brigade web`, 1 worker, proxying to `socket` with the stack's `app` group settings. */
async function webInFront(upstream: RunningServer, socket: string): Promise<Server> {
  let web: RunningServer;
  try {
    // The stack's `app` group (src/stack/plan.ts appGroup), with the one shared socket.
    web = await startBrigadeWeb({
      config: (port) => ({
        web: {
          workers: 1,
          listen: [`127.0.0.1:${port}`],
          upstreams: {
            app: {
              peers: [`unix:${socket}`],
              policy: { type: "leastConnections" },
              keepalive: { idle: 1024, timeout: 1, requests: 1_000_000 },
            },
          },
          servers: [{ proxy: "app" }],
        },
      }),
    });
  } catch (err) {
    await upstream.stop();
    throw err;
  }
  return {
    url: web.url,
    pids: [web.pid, upstream.pid],
    async stop() {
      await web.stop();
      await upstream.stop();
    },
  };
}

const nodeHttp = (): Promise<RunningServer> =>
  startCommand({
    name: "node:http",
    command: process.execPath,
    args: [benchFile("bench/servers/nodeHttp.ts"), "{port}", "{dir}/app.sock"],
  });

const compareCases: Case[] = [
  { name: "node:http bare", start: nodeHttp },
  { name: "brigade app x2", start: brigadeApp },
  {
    name: "brigade web → node:http (unix)",
    start: async () => {
      const up = await nodeHttp();
      return webInFront(up, join(up.dir, "app.sock"));
    },
  },
  {
    name: "brigade web → brigade app (unix)",
    start: async () => {
      const up = await brigadeApp();
      return webInFront(up, join(up.dir, "app.sock"));
    },
  },
];

/** `brigade up` as bench/suites/stack.ts starts it, from the checkout at `dir`. */
function brigadeUpAt(dir: string): Case {
  return { name: `brigade up @${dir}`, start: () => brigadeUp([], resolve(dir)) };
}

const stackWanted = [
  "nginx + gunicorn",
  "brigade up",
  "brigade up, 1 web + 2 app",
  "brigade up, node engine",
  "nginx ×2 + node:http",
];
const only = values.only?.split(",").map((s) => s.trim());
const all = [
  ...stackCases.filter((c) => stackWanted.includes(c.name)),
  ...(values.against !== undefined ? [brigadeUpAt(values.against)] : []),
  ...(values.compare ? compareCases : []),
].filter(
  (c) =>
    only === undefined ||
    only.includes(c.name) ||
    c.name === "nginx + gunicorn" ||
    c.name.startsWith("brigade up @"),
);
const paths = (c: Case) =>
  stackWanted.includes(c.name) || c.name.startsWith("brigade up @")
    ? ["/static.txt", "/hello"]
    : ["/hello"];

function readStat(path: string): { comm: string; user: number; sys: number } | undefined {
  try {
    const stat = readFileSync(path, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return {
      comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
      user: Number(f[11]),
      sys: Number(f[12]),
    };
  } catch {
    return undefined;
  }
}

/** What a process is, from its title (brigade, nginx) or command line. */
function roleOf(pid: number, root: boolean): string {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return "gone";
  }
  const line = argv.join(" ").trim();
  // brigade workers set their title: "brigade app worker 2"
  const titled = line.match(/^(brigade \S+ worker)\b/);
  if (titled) return titled[1]!;
  const nginx = line.match(/^nginx: (\w+) process/);
  if (nginx) return `nginx ${nginx[1]}`;
  const brigade = argv.findIndex((a) => a.endsWith("bin/brigade.ts"));
  if (brigade >= 0) return `brigade ${argv[brigade + 1] ?? ""} master`;
  if (argv.some((a) => a.endsWith("gunicorn"))) return root ? "gunicorn master" : "gunicorn worker";
  if (argv.includes("-e")) return "node -e (helper)";
  const script = argv.find((a) => /\.(ts|js|py)$/.test(a));
  return script ? script.slice(script.lastIndexOf("/") + 1) : (argv[0] ?? "?");
}

/** A thread's kind: main (named as the process), libuv pool, V8 helpers, ... */
function threadKind(comm: string, main: boolean): string {
  if (main) return "main";
  if (comm.startsWith("libuv-worker")) return "libuv pool";
  if (comm.startsWith("V8 ")) return "V8 workers";
  return comm.replace(/\d+$/, "");
}

interface Sample {
  /** role (and ` · thread kind`) → user, sys ticks, per pid (summed later). */
  byKey: Map<string, { user: number; sys: number }>;
}

/** CPU ticks of every process of the trees, keyed `pid\0role[\0thread]`. */
function sample(roots: readonly number[]): Sample {
  const byKey = new Map<string, { user: number; sys: number }>();
  for (const root of roots) {
    for (const pid of processTree(root)) {
      const role = roleOf(pid, pid === root);
      if (!values.threads) {
        const s = readStat(`/proc/${pid}/stat`);
        if (s) byKey.set(`${pid}\0${role}`, s);
        continue;
      }
      let tids: string[] = [];
      try {
        tids = readdirSync(`/proc/${pid}/task`);
      } catch {
        // gone
      }
      for (const tid of tids) {
        const s = readStat(`/proc/${pid}/task/${tid}/stat`);
        if (!s) continue;
        const kind = threadKind(s.comm, tid === String(pid));
        byKey.set(`${pid}:${tid}\0${role} · ${kind}`, s);
      }
    }
  }
  return { byKey };
}

/** µs per request by role, user and sys apart, between two samples. */
function perRole(
  a: Sample,
  b: Sample,
  requests: number,
): Map<string, { user: number; sys: number; pids: Set<string> }> {
  const out = new Map<string, { user: number; sys: number; pids: Set<string> }>();
  for (const [key, after] of b.byKey) {
    const before = a.byKey.get(key) ?? { user: 0, sys: 0 };
    const role = key.slice(key.indexOf("\0") + 1);
    const x = out.get(role) ?? { user: 0, sys: 0, pids: new Set<string>() };
    x.pids.add(key.slice(0, key.indexOf(":") >= 0 ? key.indexOf(":") : key.indexOf("\0")));
    x.user += ((after.user - before.user) * TICK_US) / requests;
    x.sys += ((after.sys - before.sys) * TICK_US) / requests;
    out.set(role, x);
  }
  return out;
}

const started = new Map<string, { c: Case; s: Server }>();
const totals = new Map<string, number[]>();
const roles = new Map<string, Map<string, { user: number[]; sys: number[] }>>();
/** Processes seen per case and role (the most in any round). */
const processes = new Map<string, number>();
try {
  for (const c of all) {
    process.stderr.write(`starting ${c.name}\n`);
    started.set(c.name, { c, s: await c.start() });
  }
  for (let r = 0; r < rounds; r++) {
    // Each round starts one case later, so that no case always runs right after the same one.
    const order = [...started];
    const rotated = [...order.slice(r % order.length), ...order.slice(0, r % order.length)];
    for (const [name, { c, s }] of rotated) {
      for (const path of paths(c)) {
        const url = new URL(path, s.url).href;
        if (r === 0) await runWrk({ url, connections, durationSec: 1 }); // warm-up
        const before = sample(s.pids);
        const w = await runWrk({ url, connections, durationSec });
        const after = sample(s.pids);
        const requests = Math.max(1, w.requests);
        const byRole = perRole(before, after, requests);
        let us = 0;
        for (const v of byRole.values()) us += v.user + v.sys;
        const key = `${name}\0${path}`;
        totals.set(key, [...(totals.get(key) ?? []), us]);
        const rk = roles.get(key) ?? new Map();
        roles.set(key, rk);
        for (const [role, v] of byRole) {
          const x = rk.get(role) ?? { user: [], sys: [] };
          x.user.push(v.user);
          x.sys.push(v.sys);
          rk.set(role, x);
          const pk = `${name}\0${role}`;
          processes.set(pk, Math.max(processes.get(pk) ?? 0, v.pids.size));
        }
        process.stderr.write(
          `  [${r + 1}/${rounds}] ${name} ${path}: ${us.toFixed(1)} µs/request (${Math.round(w.requestsPerSec)} req/s)${w.errors ? `, ${w.errors} errors` : ""}\n`,
        );
      }
    }
  }
} finally {
  await Promise.allSettled([...started.values()].map(({ s }) => s.stop()));
}
const names = [...started.keys()];
const base = (p: string) => median(totals.get(`nginx + gunicorn\0${p}`) ?? []);
const lines = [
  `## CPU per request, ${new Date().toISOString()} (\`node bench/stackcpu.ts ${process.argv.slice(2).join(" ") || rounds}\`)`,
  "",
  `Summed over each server's process tree; ${connections} connections, ${durationSec} s wrk runs; median of ${rounds} rounds.`,
  "",
  "| case | /static.txt µs/req | vs nginx + gunicorn | /hello µs/req | vs nginx + gunicorn |",
  "| --- | ---: | ---: | ---: | ---: |",
];
for (const name of names) {
  const cells = ["/static.txt", "/hello"].flatMap((p) => {
    const v = totals.get(`${name}\0${p}`);
    if (!v) return ["-", "-"];
    return [median(v).toFixed(1), `${(base(p) / median(v)).toFixed(2)}× as cheap`];
  });
  lines.push(`| ${name} | ${cells.join(" | ")} |`);
}
lines.push(
  "",
  "### By process role",
  "",
  "µs of CPU per request, summed over the processes of each role (medians of the rounds, so the parts need not add up to the total exactly); user and kernel (system) time apart.",
  "",
  "| case | path | role | processes | user µs | kernel µs | total µs |",
  "| --- | --- | --- | ---: | ---: | ---: | ---: |",
);
for (const name of names) {
  for (const p of ["/static.txt", "/hello"]) {
    const rk = roles.get(`${name}\0${p}`);
    if (!rk) continue;
    const rows = [...rk].map(([role, v]) => ({
      role,
      user: median(v.user),
      sys: median(v.sys),
    }));
    rows.sort((a, b) => b.user + b.sys - (a.user + a.sys));
    for (const r of rows) {
      lines.push(
        `| ${name} | ${p} | ${r.role} | ${processes.get(`${name}\0${r.role}`) ?? "?"} | ${r.user.toFixed(1)} | ${r.sys.toFixed(1)} | ${(r.user + r.sys).toFixed(1)} |`,
      );
    }
  }
}
const text = `${lines.join("\n")}\n`;
process.stdout.write(`\n${text}`);
// A new file each run: stackcpu-<date>.md, then -b, -c, ... (earlier results are kept).
const day = new Date().toISOString().slice(0, 10);
const results = new URL("./results/", import.meta.url);
let file = `stackcpu-${day}.md`;
for (let i = 1; existsSync(new URL(file, results)); i++) {
  file = `stackcpu-${day}-${String.fromCharCode(97 + i)}.md`;
}
writeFileSync(new URL(file, results), text);
process.stderr.write(`wrote bench/results/${file}\n`);
