/**
 * `node bench/slowclients.ts [seconds=10]`: the slow-client case of issue 3. Against each
 * server (2 workers), 20 clients send their request head one byte every 200 ms, while 4 fast
 * clients send ordinary requests (a new connection each, 2 s timeout) for the whole run. A sync
 * worker held by a slow client serves nobody else: gunicorn's fast clients get nothing. Prints
 * what the fast clients got, and how many slow requests were answered.
 */
import net from "node:net";
import { startGunicorn } from "./lib/peers.ts";
import type { Case } from "./lib/suite.ts";
import { brigadeApp } from "./suites/app.ts";

const seconds = Number(process.argv[2] ?? 10);
const slowClients = 20;
const fastClients = 4;
const byteEveryMs = 200;

const wsgiHello = `def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]
`;

const servers: Case[] = [
  {
    name: "gunicorn sync x2",
    start: () => startGunicorn({ app: wsgiHello, args: ["-k", "sync", "-w", "2"] }),
  },
  brigadeApp("brigade app sync x2", "bench/servers/appNode.ts", ["-w", "2", "-k", "sync"], ""),
  brigadeApp("brigade app x2", "bench/servers/appNode.ts", ["-w", "2"], ""),
];

/** One exchange on a new connection; resolves true on a 200 within `timeoutMs`. */
function exchange(port: number, head: string, perByteMs: number, timeoutMs: number) {
  return new Promise<boolean>((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let got = "";
    let i = 0;
    let timer: NodeJS.Timeout | undefined;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      clearTimeout(deadline);
      s.destroy();
      resolve(ok);
    };
    const deadline = setTimeout(() => done(false), timeoutMs);
    s.on("connect", () => {
      if (perByteMs === 0) {
        s.write(head);
        return;
      }
      const next = () => {
        if (s.destroyed) return;
        s.write(head[i++]!);
        if (i < head.length) timer = setTimeout(next, perByteMs);
      };
      next();
    });
    s.on("data", (c: Buffer) => {
      got += c.toString("latin1");
      if (/^HTTP\/1\.[01] 200/.test(got) && got.includes("hello")) done(true);
    });
    s.on("error", () => done(false));
    s.on("close", () => done(/^HTTP\/1\.[01] 200/.test(got)));
  });
}

const head = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
const rows: string[] = [];
for (const c of servers) {
  const server = await c.start();
  const port = Number(new URL(server.url).port);
  try {
    const end = Date.now() + seconds * 1000;
    let slowDone = 0;
    const slow = Array.from({ length: slowClients }, async () => {
      while (Date.now() < end) {
        if (await exchange(port, head, byteEveryMs, end - Date.now() + 1000)) slowDone++;
      }
    });
    // Let the slow clients connect first, as they would on a busy server.
    await new Promise((r) => setTimeout(r, 500));
    let ok = 0;
    let failed = 0;
    const latencies: number[] = [];
    const fast = Array.from({ length: fastClients }, async () => {
      while (Date.now() < end) {
        const t0 = performance.now();
        if (await exchange(port, head, 0, 2000)) {
          ok++;
          latencies.push(performance.now() - t0);
        } else failed++;
      }
    });
    await Promise.all([...slow, ...fast]);
    latencies.sort((a, b) => a - b);
    const p50 = latencies[Math.floor(latencies.length / 2)];
    rows.push(
      `| ${c.name} | ${ok} | ${(ok / (seconds - 0.5)).toFixed(0)} | ${failed} | ${p50 === undefined ? "-" : p50.toFixed(1)} | ${slowDone} |`,
    );
    process.stderr.write(
      `${c.name}: fast ok ${ok}, fast failed ${failed}, slow answered ${slowDone}\n`,
    );
  } finally {
    await server.stop();
  }
}
process.stdout.write(
  [
    `${slowClients} slow clients (a byte every ${byteEveryMs} ms) and ${fastClients} fast ones, ${seconds} s, 2 workers each:`,
    "",
    "| server | fast requests served | fast req/s | fast requests failed (2 s timeout) | fast p50 ms | slow requests answered |",
    "|---|---:|---:|---:|---:|---:|",
    ...rows,
    "",
  ].join("\n"),
);
