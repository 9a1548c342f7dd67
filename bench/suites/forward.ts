/**
 * forward: the forward proxy against Squid (Debian's squid 5), one worker each, each in front of
 * its own nginx origin (1 worker: `return 200 "hello"` at `/`, a 64 MiB file at `/big`):
 *
 * - forwarded GETs: wrk sends absolute-form requests (`GET http://127.0.0.1:<origin>/`) to the
 *   proxy, over keep-alive connections; both proxies keep connections to the origin alive.
 * - one tunnel's throughput: a CONNECT to the origin, then `GET /big` again and again through
 *   it for the run's duration; bytes/s of body received.
 * - short tunnels: 32 clients, each in a loop: connect, CONNECT, `GET /` with
 *   `Connection: close` through the tunnel, read the answer, close; tunnels/s.
 *
 * Both proxies as shipped for this: Squid with `cache deny all` and no access log; brigade web
 * with `forwardProxy: true` and no access log, on each HTTP/1 engine (`engine: "node"`, the
 * default, and `"brigade"`, our own). The tunnel drivers run in the bench process, the
 * same for both.
 */
import { execFileSync } from "node:child_process";
import net from "node:net";
import { type RunningServer, startNginx, startSquid } from "../lib/peers.ts";
import { median } from "../lib/report.ts";
import { type Case, defineSuite, type Server, startBrigadeWeb } from "../lib/suite.ts";
import { findTool } from "../lib/tools.ts";

const BIG = 64 * 1024 * 1024;

interface ForwardServer extends Server {
  proxyPort: number;
  originPort: number;
}

function origin(): Promise<RunningServer> {
  return startNginx({
    workers: 1,
    serverBlock: 'location = / { return 200 "hello"; }\n    location /big { sendfile on; }',
    files: { "html/big": Buffer.alloc(BIG, 120) },
  });
}

/** A case: a fresh origin, then `front(originPort)`, the proxy in front of it. */
function forwarded(
  name: string,
  description: string,
  front: (originPort: number) => Promise<RunningServer>,
): Case {
  return {
    name,
    description,
    async start(): Promise<ForwardServer> {
      const up = await origin();
      let proxy: RunningServer;
      try {
        proxy = await front(up.port);
      } catch (err) {
        await up.stop();
        throw err;
      }
      const target = `http://127.0.0.1:${up.port}/`;
      return {
        url: proxy.url,
        pids: proxy.pids,
        proxyPort: proxy.port,
        originPort: up.port,
        wrkScript: `wrk.path = "${target}"\nwrk.headers["Host"] = "127.0.0.1:${up.port}"\n`,
        async stop() {
          await Promise.allSettled([proxy.stop(), up.stop()]);
        },
      };
    },
  };
}

export const cases: Case[] = [
  forwarded("squid", "Squid 5, `workers 1`, `cache deny all`, access_log none", () =>
    startSquid({ workers: 1 }),
  ),
  brigade("brigade web", "node"),
  brigade("brigade web h1", "brigade"),
];

/** brigade web, one worker, forward proxy to loopback, on the given HTTP/1 engine. */
function brigade(name: string, engine: "node" | "brigade"): Case {
  return forwarded(
    name,
    `brigade web, 1 worker process, \`forwardProxy: true\` (loopback destinations opened), no access log, \`engine: "${engine}"\``,
    () =>
      startBrigadeWeb({
        name: "brigade web",
        config: (port) => ({
          web: {
            workers: 1,
            engine,
            servers: [
              {
                listen: [`127.0.0.1:${port}`],
                forwardProxy: true,
                forwardAllowDestinations: ["127.0.0.0/8"],
                forwardConnectPorts: ["1-65535"],
              },
            ],
          },
        }),
      }),
  );
}

/** CONNECT through the proxy at `proxyPort` to `target`; resolves with the open tunnel. */
function tunnel(proxyPort: number, target: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(proxyPort, "127.0.0.1");
    s.setNoDelay(true);
    let got = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error("CONNECT timed out"));
    }, 5000);
    const onData = (c: Buffer) => {
      got += c.toString("latin1");
      const end = got.indexOf("\r\n\r\n");
      if (end < 0) return;
      clearTimeout(timer);
      s.off("data", onData);
      s.pause();
      if (!/^HTTP\/1\.[01] 200/.test(got)) {
        s.destroy();
        reject(new Error(`CONNECT answered ${got.split("\r\n")[0]}`));
        return;
      }
      // Nothing follows a 200 before we speak.
      resolve(s);
    };
    s.on("data", onData);
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  });
}

/** Bytes of `/big` received through one tunnel in `ms`, as bytes per second. */
async function oneTunnel(server: ForwardServer, ms: number, signal: AbortSignal): Promise<number> {
  const s = await tunnel(server.proxyPort, `127.0.0.1:${server.originPort}`);
  const request = `GET /big HTTP/1.1\r\nHost: 127.0.0.1:${server.originPort}\r\n\r\n`;
  const start = performance.now();
  let body = 0;
  await new Promise<void>((resolve, reject) => {
    let head = "";
    let left = -1;
    const next = () => {
      if (performance.now() - start >= ms || signal.aborted) return resolve();
      head = "";
      left = -1;
      s.write(request);
    };
    s.on("data", (c: Buffer) => {
      let chunk = c;
      if (left < 0) {
        head += chunk.toString("latin1");
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        const length = Number(
          /content-length:\s*(\d+)/i.exec(head.slice(0, end))?.[1] ?? Number.NaN,
        );
        if (!Number.isFinite(length)) return reject(new Error(`no length: ${head.slice(0, 200)}`));
        chunk = Buffer.from(head.slice(end + 4), "latin1");
        left = length;
      }
      body += chunk.length;
      left -= chunk.length;
      if (left === 0) next();
    });
    s.once("error", reject);
    s.once("close", () => resolve());
    s.resume();
    next();
  });
  const seconds = (performance.now() - start) / 1000;
  s.destroy();
  return body / seconds;
}

/** Short tunnels per second: `clients` loops of CONNECT + one GET + close, for `ms`. */
async function shortTunnels(
  server: ForwardServer,
  ms: number,
  signal: AbortSignal,
  clients = 32,
): Promise<{ perSec: number; errors: number }> {
  const target = `127.0.0.1:${server.originPort}`;
  const request = `GET / HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`;
  const start = performance.now();
  let done = 0;
  let errors = 0;
  const once = async (): Promise<void> => {
    const s = await tunnel(server.proxyPort, target);
    await new Promise<void>((resolve, reject) => {
      let got = "";
      s.on("data", (c: Buffer) => {
        got += c.toString("latin1");
      });
      s.once("error", reject);
      s.once("close", () =>
        /^HTTP\/1\.1 200[\s\S]*hello$/.test(got) ? resolve() : reject(new Error(got.slice(0, 100))),
      );
      s.resume();
      s.write(request);
    });
  };
  const loop = async (): Promise<void> => {
    while (performance.now() - start < ms && !signal.aborted) {
      try {
        await once();
        done++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  return { perSec: done / ((performance.now() - start) / 1000), errors };
}

function squidVersion(): string {
  const path = findTool("squid");
  if (!path) return "squid not installed";
  try {
    return execFileSync(path, ["-v"], { encoding: "utf8" }).split("\n")[0] ?? "";
  } catch {
    return "squid (version unknown)";
  }
}

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits });

export default defineSuite({
  description:
    "the forward proxy against Squid, one worker each: forwarded GETs, one tunnel's throughput, short tunnels",
  baseline: "squid",
  tools: ["nginx", "squid"],
  cases,
  async extra(servers, ctx) {
    const names = [...servers.keys()];
    const big: Record<string, number[]> = {};
    const short: Record<string, number[]> = {};
    const errors: Record<string, number> = {};
    const ms = ctx.durationSec * 1000;
    for (const name of names) {
      // Warm-up: a second of each.
      const s = servers.get(name) as ForwardServer;
      await oneTunnel(s, 1000, ctx.signal);
      await shortTunnels(s, 1000, ctx.signal);
      big[name] = [];
      short[name] = [];
      errors[name] = 0;
    }
    for (let round = 0; round < ctx.repeats; round++) {
      for (const name of names) {
        ctx.signal.throwIfAborted();
        const s = servers.get(name) as ForwardServer;
        const bps = await oneTunnel(s, ms, ctx.signal);
        big[name]!.push(bps);
        ctx.log(`[${round + 1}/${ctx.repeats}] ${name}: one tunnel ${fmt(bps / 2 ** 20)} MiB/s`);
      }
      for (const name of names) {
        ctx.signal.throwIfAborted();
        const s = servers.get(name) as ForwardServer;
        const r = await shortTunnels(s, ms, ctx.signal);
        short[name]!.push(r.perSec);
        errors[name]! += r.errors;
        ctx.log(
          `[${round + 1}/${ctx.repeats}] ${name}: ${fmt(r.perSec)} short tunnels/s${r.errors ? ` errors ${r.errors}` : ""}`,
        );
      }
    }
    const base = names[0]!;
    const rows = names.map((name) => {
      const b = median(big[name]!);
      const t = median(short[name]!);
      return `| ${name} | ${fmt(b / 2 ** 20)} | ${(b / median(big[base]!)).toFixed(2)}× | ${fmt(Math.min(...big[name]!) / 2 ** 20)}–${fmt(Math.max(...big[name]!) / 2 ** 20)} | ${fmt(t)} | ${(t / median(short[base]!)).toFixed(2)}× | ${fmt(Math.min(...short[name]!))}–${fmt(Math.max(...short[name]!))} | ${errors[name]} |`;
    });
    const markdown = [
      `### CONNECT tunnels (${squidVersion()})`,
      "",
      `One tunnel: \`GET /big\` (64 MiB from nginx) again and again through one CONNECT tunnel for ${ctx.durationSec}s. Short tunnels: 32 clients, each CONNECT + \`GET /\` + close in a loop for ${ctx.durationSec}s. ${ctx.repeats} interleaved rounds, medians; baseline **${base}**.`,
      "",
      "| case | one tunnel MiB/s | vs squid | min–max | short tunnels/s | vs squid | min–max | errors |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
      ...rows,
      "",
    ].join("\n");
    return { markdown, data: { big, short, errors } };
  },
});
