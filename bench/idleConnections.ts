/**
 * Memory per idle keep-alive connection, one worker each: `brigade web` against nginx.
 *
 *   node bench/idleConnections.ts [--connections 10000] [--servers nginx,brigade]
 *
 * For each server (started side by side, each serving a 1 KiB file): RSS of its process tree
 * after a warm-up, then N connections are opened, each sends one keep-alive request and reads
 * the response, and is then left idle; RSS again once all are idle (after a settle pause). The
 * figure is (after - before) / N. Every connection is closed and the servers stopped at the end;
 * the whole run is bounded (a server that cannot take the connections fails its row).
 */
import { connect, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { type RunningServer, startCommand, startNginx } from "./lib/peers.ts";
import { treeRss } from "./lib/process.ts";
import { benchFile } from "./lib/suite.ts";
import { staticDir } from "./suites/static.ts";

const { values } = parseArgs({
  options: {
    connections: { type: "string", default: "10000" },
    servers: { type: "string", default: "nginx,brigade" },
    settle: { type: "string", default: "2" },
  },
});
const total = Number(values.connections);
const settleMs = Number(values.settle) * 1000;

const starters: Record<string, () => Promise<RunningServer>> = {
  nginx: () =>
    startNginx({
      conf: `worker_processes 1;
${process.getuid?.() === 0 ? "user root;" : ""}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile ${total + 1000};
events { worker_connections ${total + 500}; }
http {
  access_log off;
  client_body_temp_path {dir}/tmp/client_body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  sendfile on;
  open_file_cache max=1000 inactive=60s;
  keepalive_timeout 300s;
  server { listen 127.0.0.1:{port}; root ${staticDir()}; }
}
`,
    }),
  brigade: () =>
    startCommand({
      name: "brigade web",
      command: process.execPath,
      args: [
        benchFile("bin/brigade.ts"),
        "web",
        "--root",
        staticDir(),
        "--listen",
        "127.0.0.1:{port}",
        "--workers",
        "1",
      ],
    }),
};

const request = Buffer.from("GET /1k.txt HTTP/1.1\r\nHost: bench\r\n\r\n");

/** Open one connection, make one request, resolve once its whole response is read. */
function openIdle(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1" });
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("timed out"));
    }, 10_000);
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.once("connect", () => s.write(request));
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(buf.subarray(0, end).toString("latin1"));
      if (!length || buf.length < end + 4 + Number(length[1])) return;
      clearTimeout(timer);
      s.off("data", onData);
      s.on("data", () => {});
      resolve(s);
    };
    s.on("data", onData);
  });
}

async function measure(name: string, server: RunningServer): Promise<string> {
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 20; i++) (await openIdle(server.port)).destroy();
    await new Promise((r) => setTimeout(r, settleMs));
    const before = treeRss(server.pids);
    const batch = 200;
    for (let i = 0; i < total; i += batch) {
      const n = Math.min(batch, total - i);
      sockets.push(...(await Promise.all(Array.from({ length: n }, () => openIdle(server.port)))));
    }
    await new Promise((r) => setTimeout(r, settleMs));
    const after = treeRss(server.pids);
    const per = (after - before) / total;
    return `| ${name} | ${(before / 2 ** 20).toFixed(1)} | ${(after / 2 ** 20).toFixed(1)} | ${(per / 1024).toFixed(2)} |`;
  } catch (err) {
    return `| ${name} | failed after ${sockets.length} connections: ${(err as Error).message} | | |`;
  } finally {
    for (const s of sockets) s.destroy();
  }
}

const rows: string[] = [];
const servers: [string, RunningServer][] = [];
try {
  for (const name of values.servers.split(",")) {
    const start = starters[name];
    if (!start)
      throw new Error(`unknown server ${name}; known: ${Object.keys(starters).join(", ")}`);
    servers.push([name, await start()]);
  }
  for (const [name, server] of servers) rows.push(await measure(name, server));
} finally {
  for (const [, s] of servers) await s.stop();
}
console.log(`${total} idle keep-alive connections, one worker each\n`);
console.log("| server | RSS before MiB | RSS with the connections MiB | KiB per connection |");
console.log("| --- | ---: | ---: | ---: |");
for (const r of rows) console.log(r);
