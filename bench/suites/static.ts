/**
 * static: serving files of 1 KiB, 64 KiB and 1 MiB from one directory, keep-alive, each server
 * in one process (one worker): nginx tuned fairly (sendfile, tcp_nopush, open_file_cache, no
 * access log), `brigade web` with its defaults (open-file cache on, no access log), the Node
 * peers a Brigade user would otherwise reach for: express + serve-static, and sirv; and Node's
 * floor (prepared responses from memory on a bare `net` server, nothing parsed).
 *
 * Every server serves the same files; ETag and Last-Modified on everywhere, no compression.
 * The idle-connection memory comparison is a separate script: bench/idle.ts.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCommand, startNginx } from "../lib/peers.ts";
import { benchFile, type Case, defineSuite } from "../lib/suite.ts";

export const sizes = { "1k.txt": 1024, "64k.txt": 64 * 1024, "1m.txt": 1024 * 1024 };

let dir: string | undefined;

/** The files, written once per run into a temp dir removed at exit. */
export function staticDir(): string {
  if (dir) return dir;
  const d = mkdtempSync(join(tmpdir(), "brigade-bench-static-"));
  mkdirSync(d, { recursive: true });
  for (const [name, size] of Object.entries(sizes)) {
    const line = `${"0123456789abcdef".repeat(4).slice(0, 63)}\n`;
    writeFileSync(join(d, name), line.repeat(Math.ceil(size / 64)).slice(0, size));
  }
  process.once("exit", () => rmSync(d, { recursive: true, force: true }));
  dir = d;
  return d;
}

const node = process.execPath;

export const cases: Case[] = [
  {
    name: "nginx",
    description:
      "nginx, 1 worker: sendfile, tcp_nopush, open_file_cache max=1000 inactive=60s valid 60s, access_log off",
    start: () =>
      startNginx({
        workers: 1,
        http: "  sendfile on;\n  tcp_nopush on;\n  open_file_cache max=1000 inactive=60s;\n  open_file_cache_valid 60s;",
        serverBlock: `location / { root ${staticDir()}; }`,
      }),
  },
  {
    name: "brigade web",
    description:
      "`brigade web --root DIR --workers 1`: defaults (open-file cache on), no access log, `--keepalive-requests 100000` (as nginx's)",
    start: () =>
      startCommand({
        name: "brigade web",
        command: node,
        args: [
          benchFile("bin/brigade.ts"),
          "web",
          "--root",
          staticDir(),
          "--listen",
          "127.0.0.1:{port}",
          "--workers",
          "1",
          // nginx's keepalive_requests in bench/lib/peers.ts: the same connection recycling.
          "--keepalive-requests",
          "100000",
        ],
      }),
  },
  {
    name: "express static",
    description: "express 5 + serve-static (`express.static`), 1 process",
    start: () =>
      startCommand({
        name: "express static",
        command: node,
        args: [benchFile("bench/servers/expressStatic.ts"), "{port}", staticDir()],
      }),
  },
  {
    name: "sirv",
    description: "sirv 3 on node:http (`dev: false`), 1 process",
    start: () =>
      startCommand({
        name: "sirv",
        command: node,
        args: [benchFile("bench/servers/sirvStatic.ts"), "{port}", staticDir()],
      }),
  },
  {
    name: "node net raw",
    description:
      "Node's floor, not a server: a bare `net` server writing each file's prepared response (head and bytes, one Buffer) from memory (bench/servers/netRawFiles.ts)",
    start: () =>
      startCommand({
        name: "node net raw",
        command: node,
        args: [benchFile("bench/servers/netRawFiles.ts"), "{port}", staticDir()],
      }),
  },
];

export default defineSuite({
  description: "static files of 1 KiB, 64 KiB and 1 MiB, keep-alive, one worker each",
  baseline: "nginx",
  tools: ["nginx"],
  paths: Object.keys(sizes).map((n) => `/${n}`),
  cases,
});
