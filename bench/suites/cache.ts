/**
 * cache: responses served from a shared HTTP cache, 1 KiB and 64 KiB, each server with one
 * worker in front of its own node:http origin (bench/servers/cacheOrigin.ts, `max-age=3600`):
 * nginx `proxy_cache` (disk zone, served through the page cache), Varnish (malloc storage, one
 * thread pool; Varnish has threads rather than worker processes) and `brigade web` with the
 * cache (memory tier; and memory in front of a disk tier). After the warm-up every request is
 * a hit, so what is compared is the cost of answering from the cache.
 * Brigade's cases are the quick start: `brigade web --workers 1 --proxy URL --cache
 * [--cache-dir DIR]`, with `--keepalive-requests 100000` as every nginx of the benches has
 * (bench/lib/peers.ts), as the static and engine suites do.
 */
import { join } from "node:path";
import { type RunningServer, startCommand, startNginx } from "../lib/peers.ts";
import { benchFile, type Case, defineSuite } from "../lib/suite.ts";
import { toolPath } from "../lib/tools.ts";

async function origin(): Promise<RunningServer> {
  return startCommand({
    name: "origin",
    command: process.execPath,
    args: [benchFile("bench/servers/cacheOrigin.ts"), "{port}"],
  });
}

/** Start `front` with a fresh origin; stopping it stops both. */
async function withOrigin(front: (o: RunningServer) => Promise<RunningServer>) {
  const o = await origin();
  try {
    const f = await front(o);
    return {
      url: f.url,
      pids: [...f.pids, o.pid],
      stop: async () => {
        await f.stop();
        await o.stop();
      },
    };
  } catch (e) {
    await o.stop();
    throw e;
  }
}

/** `root`: another checkout to run `bin/brigade.ts` from (bench/cpu.ts `--against`). */
function brigade(disk: boolean, root?: string): Case["start"] {
  return () =>
    withOrigin((o) =>
      startCommand({
        name: "brigade web",
        command: process.execPath,
        args: [
          root === undefined ? benchFile("bin/brigade.ts") : join(root, "bin/brigade.ts"),
          "web",
          "--listen",
          "127.0.0.1:{port}",
          "--workers",
          "1",
          "--proxy",
          `http://127.0.0.1:${o.port}`,
          "--cache",
          ...(disk ? ["--cache-dir", "{dir}/cache"] : []),
          // nginx's keepalive_requests in bench/lib/peers.ts (100000): the same connection
          // recycling. With Brigade's default 1000, wrk's 256 connections, which progress at one
          // rate, were all re-opened together every few seconds and queued to be accepted (up
          // to 179 in the listen queue; docs/benchmarks.md, cache): the erratic p99 and the
          // ~0.5 s slowest request at 256 connections.
          "--keepalive-requests",
          "100000",
        ],
        timeoutMs: 30_000,
      }),
    );
}

export default defineSuite({
  description: "cache hits: 1 KiB and 64 KiB responses from a shared HTTP cache, one worker each",
  baseline: "nginx proxy_cache",
  tools: ["nginx", "varnishd"],
  paths: ["/1k", "/64k"],
  cases: [
    {
      name: "nginx proxy_cache",
      description: "nginx, 1 worker, proxy_cache (keys_zone 10m, disk), upstream keep-alive",
      start: () =>
        withOrigin((o) =>
          startNginx({
            workers: 1,
            http: `  proxy_cache_path {dir}/cache levels=1:2 keys_zone=c:10m max_size=1g inactive=60m use_temp_path=off;
  upstream origin { server 127.0.0.1:${o.port}; keepalive 16; }
  sendfile on;`,
            serverBlock: `    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache c;
      add_header X-Cache-Status $upstream_cache_status;
    }`,
          }),
        ),
    },
    {
      name: "varnish",
      description: "varnishd, malloc 256m, thread_pools=1, default VCL",
      start: () =>
        withOrigin((o) =>
          startCommand({
            name: "varnishd",
            command: toolPath("varnishd"),
            args: [
              "-F",
              "-j",
              "none",
              "-a",
              "127.0.0.1:{port}",
              "-b",
              `127.0.0.1:${o.port}`,
              "-n",
              "{dir}/varnish",
              "-s",
              "malloc,256m",
              "-p",
              "thread_pools=1",
            ],
            timeoutMs: 30_000,
          }),
        ),
    },
    {
      name: "brigade cache",
      description:
        "brigade web --proxy URL --cache, 1 worker (memory tier, 64m), `--keepalive-requests 100000` (as nginx's)",
      start: brigade(false),
    },
    {
      name: "brigade cache+disk",
      description:
        "brigade web --proxy URL --cache --cache-dir DIR, 1 worker (memory in front of disk), `--keepalive-requests 100000`",
      start: brigade(true),
    },
  ],
  against: (dir) => [
    {
      name: `brigade cache @${dir}`,
      description: `brigade cache, run from ${dir}`,
      start: brigade(false, dir),
    },
    {
      name: `brigade cache+disk @${dir}`,
      description: `brigade cache+disk, run from ${dir}`,
      start: brigade(true, dir),
    },
  ],
});
