/**
 * Memory per idle keep-alive connection (issue 10's target: at most 2× nginx's):
 * `node bench/idle.ts [--connections 10000] [--cases nginx,brigade,node]`.
 *
 * For each server (one worker each): warm it up, measure the RSS of its process tree, open N
 * connections that each send one request, read the response and then stay idle (keep-alive),
 * let it settle, measure again. Reported: RSS added per connection, against nginx's. The
 * connections are closed and the server stopped before the next one starts. The client is this
 * process (N sockets; `ulimit -n` must allow N plus some).
 */
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { type RunningServer, startNginx } from "./lib/peers.ts";
import { treeRss } from "./lib/process.ts";
import { startBrigadeWeb } from "./lib/suite.ts";

const { values } = parseArgs({
  options: {
    connections: { type: "string", default: "10000" },
    cases: { type: "string", default: "nginx,brigade,node" },
    settle: { type: "string", default: "3" },
  },
});
const n = Number(values.connections);
const settleMs = Number(values.settle) * 1000;

function brigade(engine: "brigade" | "node") {
  return () =>
    startBrigadeWeb({
      name: `brigade web (${engine})`,
      config: (port) => ({
        web: {
          workers: 1,
          engine,
          servers: [{ listen: [`127.0.0.1:${port}`], return: "200 hello" }],
        },
      }),
    });
}

const starters: Record<string, { label: string; start: () => Promise<RunningServer> }> = {
  nginx: {
    label: "nginx (1 worker)",
    start: () =>
      startNginx({
        conf: `worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile ${n + 1000};
events { worker_connections ${n + 500}; }
http {
  access_log off;
  client_body_temp_path {dir}/tmp/client_body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  keepalive_timeout 300s;
  keepalive_requests 100000;
  server { listen 127.0.0.1:{port} backlog=4096; location / { return 200 "hello"; } }
}
${typeof process.getuid === "function" && process.getuid() === 0 ? "user root;" : ""}
`,
      }),
  },
  brigade: { label: "brigade web (engine brigade, 1 worker)", start: brigade("brigade") },
  node: { label: "brigade web (engine node, 1 worker)", start: brigade("node") },
};

/** One connection that made one request and now idles; resolves once the response is in. */
function idleConnection(port: number, sockets: Socket[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    sockets.push(s);
    let got = "";
    const onData = (d: Buffer) => {
      got += d.toString("latin1");
      if (/\r\n\r\nhello$/.test(got)) {
        s.off("data", onData);
        resolve();
      }
    };
    s.on("data", onData);
    s.once("error", reject);
    s.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  });
}

async function open(port: number, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let at = 0; at < count; at += 500) {
    const batch = Math.min(500, count - at);
    await Promise.all(Array.from({ length: batch }, () => idleConnection(port, sockets)));
  }
  return sockets;
}

async function measure(name: string): Promise<{ label: string; before: number; after: number }> {
  const s = starters[name];
  if (!s) throw new Error(`unknown case ${name}`);
  const server = await s.start();
  try {
    // Warm-up: code paths compiled, pools allocated, so the delta is the connections'.
    const warm = await open(server.port, 500);
    for (const w of warm) w.destroy();
    await sleep(settleMs);
    const before = treeRss(server.pids);
    const sockets = await open(server.port, n);
    await sleep(settleMs);
    const after = treeRss(server.pids);
    for (const c of sockets) c.destroy();
    return { label: s.label, before, after };
  } finally {
    await server.stop();
  }
}

const rows: { label: string; before: number; after: number }[] = [];
for (const name of values.cases.split(",")) {
  process.stderr.write(`  ${name}: ${n} idle keep-alive connections...\n`);
  rows.push(await measure(name.trim()));
}
const per = (r: { before: number; after: number }) => (r.after - r.before) / n;
const base = rows[0]!;
process.stdout.write(
  `\n### ${n} idle keep-alive connections, RSS of the server's process tree\n\n| server | RSS before MiB | RSS after MiB | per connection KiB | vs ${base.label.split(" ")[0]} |\n|---|---:|---:|---:|---:|\n`,
);
for (const r of rows) {
  process.stdout.write(
    `| ${r.label} | ${(r.before / 2 ** 20).toFixed(1)} | ${(r.after / 2 ** 20).toFixed(1)} | ${(per(r) / 1024).toFixed(2)} | ${(per(r) / per(base)).toFixed(2)}× |\n`,
  );
}
