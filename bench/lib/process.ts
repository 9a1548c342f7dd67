/**
 * Child-process plumbing shared by the bench launchers and the test helpers: free ports, waiting
 * until *our* child listens, process trees and their memory from /proc, and stopping by PID.
 *
 * Linux only where /proc is read (process trees, RSS, socket ownership); elsewhere readiness falls
 * back to "the port accepts a connection" and the tree is just the root PID.
 */
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * A loopback port that was free a moment ago. Another process may take it before the caller
 * binds it: `waitForListen` checks the listener belongs to the child, and launchers retry.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Parent PID of every process visible in /proc. */
function parentMap(): Map<number, number> {
  const out = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readText(`/proc/${name}/stat`);
    if (!stat) continue;
    // The command name is in parentheses and may contain spaces: fields restart after the last ")".
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(rest[1]);
    if (Number.isFinite(ppid)) out.set(Number(name), ppid);
  }
  return out;
}

/** `pid` and all its live descendants (just `[pid]` when /proc is not there). */
export function processTree(pid: number): number[] {
  const parents = parentMap();
  if (parents.size === 0) return [pid];
  if (!parents.has(pid)) return [];
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** Kernel start time of a process (clock ticks since boot), to tell a PID from its reuse. */
function startTime(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  return stat?.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

/** Resident memory of one process in bytes (0 when it is gone). */
export function processRss(pid: number): number {
  const status = readText(`/proc/${pid}/status`);
  const m = status?.match(/^VmRSS:\s+(\d+)\s+kB/m);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Summed resident memory of the process trees rooted at `pids`, in bytes. */
export function treeRss(pids: readonly number[]): number {
  const seen = new Set<number>();
  for (const pid of pids) for (const p of processTree(pid)) seen.add(p);
  let total = 0;
  for (const p of seen) total += processRss(p);
  return total;
}

/** Socket inodes listening on `port` (IPv4 or IPv6) per /proc/net; undefined without /proc. */
function listeningInodes(port: number): Set<string> | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let any = false;
  const inodes = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = readText(file);
    if (text === undefined) continue;
    any = true;
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] local address "ADDR:PORT", f[3] state (0A = LISTEN), f[9] inode
      if (f[3] === "0A" && f[1]?.endsWith(`:${hexPort}`) && f[9]) inodes.add(f[9]);
    }
  }
  return any ? inodes : undefined;
}

function treeOwnsSocket(pid: number, inodes: Set<string>): boolean {
  for (const p of processTree(pid)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = readlinkSync(`/proc/${p}/fd/${fd}`).match(/^socket:\[(\d+)\]$/);
        if (m?.[1] && inodes.has(m[1])) return true;
      } catch {
        // fd closed while we looked
      }
    }
  }
  return false;
}

function accepts(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

/** What a child wrote to stdout/stderr, kept short for error messages. */
export class OutputTail {
  private text = "";
  private readonly limit: number;
  constructor(child: ChildProcess, limit = 4000) {
    this.limit = limit;
    const add = (chunk: Buffer) => {
      this.text = (this.text + chunk.toString("utf8")).slice(-this.limit);
    };
    child.stdout?.on("data", add);
    child.stderr?.on("data", add);
  }
  toString(): string {
    return this.text;
  }
}

/**
 * Resolves once `child`'s process tree listens on `port` (checked through /proc socket
 * ownership, so a stranger who took the port does not count) and accepts a connection.
 * Rejects if the child exits first or `timeoutMs` passes; the error carries `output`.
 */
export async function waitForListen(
  child: ChildProcess,
  port: number,
  options: { host?: string; timeoutMs?: number; output?: OutputTail; what?: string } = {},
): Promise<void> {
  const host = options.host ?? "127.0.0.1";
  const what = options.what ?? "server";
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  const describe = () => (options.output ? `\n--- output ---\n${options.output}` : "");
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${what} exited (${child.exitCode ?? child.signalCode}) before listening on ${port}${describe()}`,
      );
    }
    const pid = child.pid;
    const inodes = listeningInodes(port);
    const ours = inodes === undefined || (pid !== undefined && treeOwnsSocket(pid, inodes));
    if (ours && (await accepts(port, host))) return;
    await sleep(25);
  }
  throw new Error(`${what} did not listen on ${host}:${port} in time${describe()}`);
}

/**
 * Stop a child we started: `signal` to its PID, then after `graceMs` SIGKILL to every PID of its
 * tree as seen when we began (so orphaned workers go too). Resolves when the root has exited.
 * Safe to call more than once and after the child already exited.
 */
export async function stopChild(
  child: ChildProcess,
  options: { signal?: NodeJS.Signals; graceMs?: number } = {},
): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const tree = processTree(pid).map((p) => ({ pid: p, started: startTime(p) }));
  const killTree = (which: typeof tree) => {
    for (const p of which) {
      // Only a process still the one we saw: a PID may be reused once it is gone.
      if (p.started !== undefined && startTime(p.pid) !== p.started) continue;
      try {
        process.kill(p.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const done = new Promise<void>((resolve) => {
    if (exited()) resolve();
    else child.once("exit", () => resolve());
  });
  if (!exited()) child.kill(options.signal ?? "SIGTERM");
  const grace = new AbortController();
  const timer = sleep(options.graceMs ?? 5000, "timeout" as const, { signal: grace.signal }).catch(
    () => "cancelled" as const,
  );
  const first = await Promise.race([done, timer]);
  grace.abort();
  if (first === "timeout") {
    killTree(tree);
    await done;
  }
  // Workers outlive a master killed hard; reap what is left of the tree we saw.
  killTree(tree.slice(1));
}
