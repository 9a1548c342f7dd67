/**
 * Reading what a worker with a blocked event loop is doing, just before the master kills it.
 *
 * A blocked loop runs no JavaScript, so the worker cannot answer a message. Node's inspector can
 * still reach it: SIGUSR1 makes a native thread of the worker open the inspector (on the address
 * `--inspect-port=127.0.0.1:0` gave it at spawn, so a free loopback port), and inspector commands
 * reach the blocked thread through V8 interrupts. The master finds the new port through /proc (a
 * LISTEN socket of the worker's that was not there before the signal), connects over WebSocket
 * and evaluates one expression: it runs through a V8 interrupt on top of the blocked code, so
 * `new Error().stack` there is the blocked stack, and it calls the worker's `onBlocked` report
 * (the requests in flight) on the blocked thread. The caller then SIGKILLs the worker, so the
 * inspector is open only for that moment.
 *
 * Measured on the project machine: 60-450 ms from signal to stack. Everything is bounded
 * by `timeoutMs`; a failure yields `error` instead of a stack. Linux only (/proc).
 *
 * Tried first: `--report-on-signal` writes its report from a signal thread, with no JavaScript
 * stack; a watchdog worker_thread holding an inspector session to the main thread works too, but
 * costs every worker about 13 MiB of RSS for its whole life, against nothing here.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface BlockedReport {
  /** The blocked thread's stack, one `    at fn (url:line:col)` line per frame, top first. */
  stack?: string;
  /** What the worker's `onBlocked` functions returned, evaluated on the blocked thread. */
  report?: Record<string, unknown>;
  /** Why there is no stack (or no report). */
  error?: string;
}

/** The loopback TCP ports `pid` listens on (from /proc; empty when unreadable). */
export function loopbackListenPorts(pid: number): Set<number> {
  const inodes = new Set<string>();
  const ports = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return ports;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  let table: string;
  try {
    table = readFileSync(`/proc/${pid}/net/tcp`, "utf8");
  } catch {
    return ports;
  }
  for (const line of table.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    // local_address is hex "0100007F:PORT"; st 0A is LISTEN; inode is field 9.
    if (f.length < 10 || f[3] !== "0A" || !inodes.has(f[9]!)) continue;
    const [addr, port] = f[1]!.split(":");
    if (addr === "0100007F") ports.add(Number.parseInt(port!, 16));
  }
  return ports;
}

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Open the inspector of `pid` (which must have been started with `--inspect-port=127.0.0.1:0`
 * and not ignore SIGUSR1), read the blocked stack and evaluate `reportExpression` (it must
 * return a JSON string) on the paused thread. Never throws; resolves within about `timeoutMs`.
 */
export async function captureBlockedStack(
  pid: number,
  options: { timeoutMs: number; reportExpression?: string },
): Promise<BlockedReport> {
  const deadline = Date.now() + options.timeoutMs;
  const before = loopbackListenPorts(pid);
  try {
    process.kill(pid, "SIGUSR1");
  } catch (error) {
    return { error: `cannot signal the worker: ${(error as Error).message}` };
  }
  let ws: WebSocket | undefined;
  const timer = new Promise<BlockedReport>((resolve) => {
    const t = setTimeout(
      () => resolve({ error: "timed out reading the stack" }),
      Math.max(0, deadline - Date.now()),
    );
    t.unref();
  });
  const work = (async (): Promise<BlockedReport> => {
    let url: string | undefined;
    while (url === undefined) {
      if (Date.now() > deadline) return { error: "the inspector did not open" };
      for (const port of loopbackListenPorts(pid)) {
        if (before.has(port)) continue;
        try {
          const res = await fetch(`http://127.0.0.1:${port}/json/list`, {
            signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
          });
          const list = (await res.json()) as { webSocketDebuggerUrl?: string }[];
          url = list[0]?.webSocketDebuggerUrl;
          if (url !== undefined) break;
        } catch {
          // not the inspector, or not answering yet
        }
      }
      if (url === undefined) await sleep(10);
    }
    const socket = new WebSocket(url);
    ws = socket;
    let reply: ((m: CdpMessage) => void) | undefined;
    socket.onmessage = (event) => {
      const m = JSON.parse(String(event.data)) as CdpMessage;
      if (m.id === 1) reply?.(m);
    };
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error("cannot connect to the inspector"));
    });
    // One evaluation, run through a V8 interrupt on top of the blocked code: the Error's stack
    // is the blocked stack (under two frames of this expression). No Debugger.enable needed,
    // which would first send the whole list of loaded scripts.
    const expression = `(() => {
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 64;
      const stack = new Error("blocked").stack;
      Error.stackTraceLimit = limit;
      let report;
      try { report = ${options.reportExpression ?? "undefined"}; } catch (e) { report = JSON.stringify({ reportError: String(e) }); }
      return JSON.stringify({ stack, report });
    })()`;
    const m = await new Promise<CdpMessage>((resolve) => {
      reply = resolve;
      socket.send(
        JSON.stringify({
          id: 1,
          method: "Runtime.evaluate",
          params: { expression, returnByValue: true, timeout: 1000 },
        }),
      );
    });
    const value = (m.result?.result as { value?: unknown } | undefined)?.value;
    if (typeof value !== "string") {
      return { error: `evaluating in the worker failed: ${m.error?.message ?? "no value"}` };
    }
    const got = JSON.parse(value) as { stack?: string; report?: string };
    // The stack's first line is the message, then this expression's own frames.
    const frames = (got.stack ?? "").split("\n").slice(1);
    while (frames.length > 0 && /^\s+at <anonymous>:\d+:\d+$/.test(frames[0]!)) frames.shift();
    const out: BlockedReport = { stack: frames.join("\n") };
    if (typeof got.report === "string") {
      try {
        out.report = JSON.parse(got.report) as Record<string, unknown>;
      } catch {
        out.error = "the worker's report is not JSON";
      }
    }
    return out;
  })().catch((error: unknown) => ({ error: (error as Error).message }));
  try {
    return await Promise.race([work, timer]);
  } finally {
    try {
      ws?.close();
    } catch {
      // already closed
    }
  }
}
