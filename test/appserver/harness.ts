/**
 * Run the real `brigade app` command line for a test: started with `--log-format text` (and
 * whatever the test adds), read line by line, its master and every worker it spawned killed when
 * the test ends. Ports come from its own log (`listening address=...`): bind `127.0.0.1:0`.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type Spawned, spawnNode } from "../helpers/process.ts";

export const bin = new URL("../../bin/brigade.ts", import.meta.url).pathname;
export const fixtureApp = new URL("../fixtures/appserver/app.ts", import.meta.url).pathname;
export const root = new URL("../../", import.meta.url).pathname;

export interface RunningApp extends Spawned {
  /** TCP ports bound, in log order. */
  ports: number[];
  port: number;
  /** The metrics port, when `--metrics-bind` was given. */
  metricsPort: number | undefined;
  /** Pids of the workers that logged `worker ready` and have not logged `worker exited`. */
  workers(): number[];
  /** TERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** A temp dir removed after the test, optionally with files in it. */
export function tempDir(t: TestContext, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-app-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** Start `brigade app ...args`; with `waitReady` (default) resolve once the master is ready. */
export async function startApp(
  t: TestContext,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; waitReady?: boolean } = {},
): Promise<RunningApp> {
  const proc = spawnNode(t, [bin, "app", "--log-format", "text", ...args], {
    cwd: options.cwd,
    env: options.env,
  });
  t.after(() => {
    for (const line of proc.lines) {
      const m = / worker spawned .*pid=(\d+)/.exec(line);
      if (!m) continue;
      try {
        process.kill(Number(m[1]), "SIGKILL");
      } catch {
        // already gone
      }
    }
  });
  const running: RunningApp = {
    ...proc,
    ports: [],
    port: 0,
    metricsPort: undefined,
    workers() {
      const live = new Set<number>();
      for (const line of proc.lines) {
        const ready = / worker ready .*pid=(\d+)/.exec(line);
        if (ready) live.add(Number(ready[1]));
        const exited = / worker exited .*pid=(\d+)/.exec(line);
        if (exited) live.delete(Number(exited[1]));
      }
      return [...live];
    },
    async stop() {
      try {
        process.kill(proc.pid, "SIGTERM");
      } catch {
        // already gone
      }
      return (await proc.exited).code;
    },
  };
  if (options.waitReady ?? true) {
    await proc.waitForLine(/master ready/, { timeoutMs: 30_000 });
    for (const line of proc.lines) {
      const m = / listening .*address=[^ ]*:(\d+)$/.exec(line);
      if (m) running.ports.push(Number(m[1]));
      const metrics = /metrics at \/metrics .*address=[^ ]*:(\d+)/.exec(line);
      if (metrics) running.metricsPort = Number(metrics[1]);
    }
    running.port = running.ports[0] ?? 0;
  }
  return running;
}

export interface Reply {
  status: number;
  body: string;
  bytes: Buffer;
  headers: http.IncomingHttpHeaders;
}

/** One request on a fresh connection; rejects on a socket error or after `timeoutMs`. */
export function request(
  port: number,
  path = "/",
  options: {
    method?: string;
    body?: string | Buffer;
    headers?: Record<string, string>;
    timeoutMs?: number;
    agent?: http.Agent;
    socketPath?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: options.method ?? "GET",
        headers: options.agent ? options.headers : { connection: "close", ...options.headers },
        agent: options.agent ?? false,
        socketPath: options.socketPath,
        timeout: options.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const bytes = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            body: bytes.toString("utf8"),
            bytes,
            headers: res.headers,
          });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${path} timed out`)));
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Write raw bytes on a new connection and read everything until the server closes it. */
export function raw(port: number, data: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${Buffer.concat(chunks)}`));
    }, timeoutMs);
    s.on("connect", () => s.write(data));
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", () => {
      // a reset after the answer: what was read is the result
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("latin1"));
    });
  });
}

/** The status code of a raw HTTP response. */
export function statusOf(response: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1] ?? 0);
}

/** The pid a fixture response names (`... pid=123`). */
export function pidOf(body: string): number {
  return Number(/pid=(\d+)/.exec(body)?.[1] ?? 0);
}
