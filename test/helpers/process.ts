/**
 * Test helpers for real processes and sockets: spawn a Node child and read its output line by
 * line, wait for a line, kill what we started (by pid, in t.after, even when the test fails),
 * pick a free port, and a plain HTTP GET with keep-alive off. Every wait is bounded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import type { TestContext } from "node:test";

export interface Spawned {
  child: ChildProcess;
  pid: number;
  /** Every stdout and stderr line so far, in arrival order. */
  lines: string[];
  /** Resolves on exit, with the exit code (or 128 + signal number style: null code, signal). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Wait for a line matching `re`, looking at lines from index `from` on (default 0).
   * Rejects after `timeoutMs` or when the process exits first, quoting the output.
   */
  waitForLine(re: RegExp, opts?: { from?: number; timeoutMs?: number }): Promise<LineMatch>;
  /** All lines as one string, for assertion messages. */
  output(): string;
}

export interface LineMatch {
  line: string;
  match: RegExpMatchArray;
  index: number;
}

/** Kill `pid` with SIGKILL when the test ends, unless it is already gone. */
export function killOnExit(t: TestContext, pid: number | undefined): void {
  t.after(() => {
    if (pid === undefined) return;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  });
}

/** Spawn `process.execPath` with `args`; killed (SIGKILL) in t.after if still running. */
export function spawnNode(
  t: TestContext,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Spawned {
  const child = spawn(process.execPath, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  if (child.pid === undefined) throw new Error(`cannot spawn ${args.join(" ")}`);
  killOnExit(t, child.pid);
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let done = false;
  const feed = (stream: NodeJS.ReadableStream): void => {
    let buf = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      buf += chunk;
      let i = buf.indexOf("\n");
      while (i >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
      }
      for (const w of waiters) w();
    });
  };
  feed(child.stdout!);
  feed(child.stderr!);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      // Let the pipes flush their last lines before anyone reads them.
      setImmediate(() => {
        done = true;
        for (const w of waiters) w();
        resolve({ code, signal });
      });
    });
  });
  const output = (): string => lines.join("\n");
  const waitForLine = (
    re: RegExp,
    { from = 0, timeoutMs = 15_000 }: { from?: number; timeoutMs?: number } = {},
  ): Promise<LineMatch> =>
    new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = (): void => {
        for (let i = from; i < lines.length; i++) {
          const m = lines[i]!.match(re);
          if (m) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve({ line: lines[i]!, match: m, index: i });
            return;
          }
        }
        if (done) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`process exited before a line matched ${re}\n${output()}`));
        }
      };
      timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no line matched ${re} within ${timeoutMs} ms\n${output()}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return { child, pid: child.pid, lines, exited, waitForLine, output };
}

/** A TCP port free right now on 127.0.0.1 (the OS picks it; a race is possible but rare). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface GetResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** GET over a fresh connection (keep-alive off): a TCP port or a unix socket path. */
export function httpGet(
  target: { port: number; host?: string } | { socketPath: string },
  path = "/",
  timeoutMs = 10_000,
): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        ...("socketPath" in target
          ? { socketPath: target.socketPath }
          : { host: target.host ?? "127.0.0.1", port: target.port }),
        path,
        agent: false,
        headers: { connection: "close" },
        timeout: timeoutMs,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on("error", reject);
  });
}

/** Poll `fn` every `intervalMs` until it returns a truthy value; rejects after `timeoutMs`. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Is `pid` a live process? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Request loops for a test that changes a server under load: one loop per entry of `loops`
 * (its value given to `send`), each sending `send(...)` after the previous answer until
 * `stop()`, or `maxRequests` in all, or `maxMs`, whichever comes first. A 200's body (trimmed
 * when `trim`) goes to `bodies`, anything else to `errors`.
 */
export function boundedLoad<L>(
  send: (loop: L) => Promise<{ status: number; body: string }>,
  options: { loops: readonly L[]; maxRequests: number; maxMs: number; trim?: boolean },
) {
  const bodies: string[] = [];
  const errors: string[] = [];
  let stopped = false;
  const end = Date.now() + options.maxMs;
  const loop = async (which: L): Promise<void> => {
    while (!stopped && bodies.length + errors.length < options.maxRequests && Date.now() < end) {
      try {
        const r = await send(which);
        if (r.status === 200) bodies.push(options.trim ? r.body.trim() : r.body);
        else errors.push(`status ${r.status}: ${r.body}`);
      } catch (e) {
        errors.push(String(e));
      }
    }
  };
  const done = Promise.all(options.loops.map(loop));
  return {
    bodies,
    errors,
    async stop(): Promise<void> {
      stopped = true;
      await done;
    },
  };
}

/**
 * How many of process `pid`'s descriptors are the socket listening on `host`:`port` (an IPv4
 * address, 127.0.0.1 by default; matched by inode through /proc/net/tcp and /proc/<pid>/fd).
 * Linux only.
 */
export function listeningDescriptors(pid: number, port: number, host = "127.0.0.1"): number {
  // /proc/net/tcp writes the address as the hex of its 32 bits in host (little-endian) order.
  const ip = host
    .split(".")
    .reverse()
    .map((b) => Number(b).toString(16).toUpperCase().padStart(2, "0"))
    .join("");
  const local = `${ip}:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  let inode: string | undefined;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[3] === "0A") inode = f[9];
  }
  if (inode === undefined) throw new Error(`nothing listens on ${host}:${port}`);
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
    } catch {
      return false;
    }
  }).length;
}
