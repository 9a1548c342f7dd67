/**
 * The master's control socket (`<runtimeDir>/control.sock`, mode 0600) and the commands that
 * talk to it: `brigade status`, `brigade reload`, `brigade stop`, `brigade scale POOL ±N`.
 *
 * The protocol is HTTP/1.1 over the unix socket, JSON bodies:
 * - `GET /status`: the stack's state (`StackStatus`).
 * - `POST /reload`: a reload (as HUP); the answer comes when the app workers' rolling reload
 *   has ended: `{ ok, generation, reason? }` (ok false: rolled back, and why; generation 0: the
 *   new config was refused before anything changed).
 * - `POST /stop`: a graceful stop (as TERM); answered at once.
 * - `POST /scale` with `{ pool, delta }`: one pool's worker count changed by delta (TTIN/TTOU for
 *   any pool); answers the new target.
 * Only the socket's owner can connect (file mode), which is the whole access control, as for
 * the signals these stand for.
 *
 * The socket is bound at `control.sock.<pid>` and renamed into place, so that the path always
 * names one live master's socket: a USR2 successor renames its own over it (the old master,
 * like nginx's, is then reached by signals only), and a master unlinks the path on close only
 * while it is still its own socket (libuv unlinks the path a socket was bound at, here the
 * temporary one, long gone).
 */
import { chmodSync, existsSync, renameSync, statSync, unlinkSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import type { Config } from "../config/schema.ts";
import { ExitCode } from "../core/exitCodes.ts";
import type { Logger } from "../core/logger.ts";
import { controlSocket, runtimeDir } from "./plan.ts";

/** A worker as `brigade status` shows it. */
export interface WorkerStatus {
  id: number;
  pid: number;
  state: string;
  generation: number;
  ageMs: number;
  requests: number;
  rss: number;
  inflight: number;
  lagP99: number;
}

export interface TierStatus {
  generation: number;
  target: number;
  reloading: boolean;
  workers: WorkerStatus[];
}

export interface PeerStatus {
  address: string;
  pid: number | undefined;
  /** Each web worker's view of it (its upstream group). */
  views: { webPid: number; state: string; active: number; requests: number; failures: number }[];
}

export interface StackStatus {
  pid: number;
  startedAt: number;
  ready: boolean;
  stopping: boolean;
  config: string | null;
  app: string;
  workerClass: string;
  runtimeDir: string;
  listeners: string[];
  admin: string | null;
  tiers: { web: TierStatus; app: TierStatus };
  peers: PeerStatus[];
  cache: Record<string, number> | null;
  /** Sync app workers lent to requests by the master, and requests waiting for one (null: no leasing). */
  leases: { held: number; waiting: number } | null;
  lastReload: { at: number; ok: boolean; generation: number; reason?: string } | null;
}

export interface ControlHandlers {
  status(): StackStatus;
  reload(): Promise<{ ok: boolean; generation: number; reason?: string }>;
  stop(): void;
  scale(pool: string, delta: number): number;
}

/**
 * Serve the control socket; resolves once listening. Throws when a live stack holds it, unless
 * this master is that stack's USR2 `successor`, which takes the path over.
 */
export async function startControl(
  path: string,
  handlers: ControlHandlers,
  logger: Logger,
  options: { successor?: boolean } = {},
): Promise<http.Server> {
  if (existsSync(path) && !options.successor) {
    if (await alive(path)) {
      throw new Error(`a stack is already running here (its control socket is ${path})`);
    }
    unlinkSync(path);
  }
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown): void => {
      const text = `${JSON.stringify(body)}\n`;
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      res.end(text);
    };
    let raw = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => {
      if (raw.length < 4096) raw += c;
    });
    req.on("end", () => {
      const path = (req.url ?? "/").split("?")[0];
      try {
        if (req.method === "GET" && path === "/status") return send(200, handlers.status());
        if (req.method === "POST" && path === "/reload") {
          handlers.reload().then(
            (r) => send(200, r),
            (error: unknown) => send(500, { error: String(error) }),
          );
          return;
        }
        if (req.method === "POST" && path === "/stop") {
          handlers.stop();
          return send(202, { stopping: true });
        }
        if (req.method === "POST" && path === "/scale") {
          const b = JSON.parse(raw || "{}") as { pool?: unknown; delta?: unknown };
          if (typeof b.pool !== "string" || !Number.isInteger(b.delta)) {
            return send(400, { error: "expected { pool: string, delta: integer }" });
          }
          return send(200, { pool: b.pool, workers: handlers.scale(b.pool, b.delta as number) });
        }
        send(404, { error: `no ${req.method} ${path}` });
      } catch (error) {
        send(400, { error: (error as Error).message });
      }
    });
  });
  const bound = `${path}.${process.pid}`;
  try {
    unlinkSync(bound);
  } catch {
    // not there
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(bound, () => resolve());
  });
  chmodSync(bound, 0o600);
  renameSync(bound, path);
  const ino = statSync(path).ino;
  server.once("close", () => {
    try {
      if (statSync(path).ino === ino) unlinkSync(path);
    } catch {
      // gone already
    }
  });
  logger.debug("control socket", { path });
  return server;
}

function alive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** One request to the control socket. */
export function request(
  path: string,
  method: "GET" | "POST",
  url: string,
  body?: unknown,
  timeoutMs = 10_000,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath: path,
        method,
        path: url,
        headers: data ? { "content-type": "application/json" } : {},
        timeout: timeoutMs,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: text });
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("the stack did not answer in time")));
    req.on("error", reject);
    req.end(data);
  });
}

const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

export function age(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => `  ${r.map((c, i) => c.padEnd(widths[i]!)).join("  ")}`.trimEnd());
}

/** `brigade status` as text. */
export function formatStatus(s: StackStatus, now = Date.now()): string {
  const out: string[] = [];
  const state = s.stopping ? "stopping" : s.ready ? "ready" : "starting";
  out.push(
    `brigade up: ${state}, master pid ${s.pid}, up ${age(now - s.startedAt)}; app ${s.app}; config ${s.config ?? "none (embedded defaults)"}`,
  );
  out.push(`  listening ${s.listeners.join(", ")}${s.admin ? `; admin http://${s.admin}` : ""}`);
  for (const tier of ["web", "app"] as const) {
    const t = s.tiers[tier];
    const kind = tier === "app" ? ` ${s.workerClass}` : "";
    out.push(
      "",
      `${tier}: ${t.target}${kind} worker${t.target === 1 ? "" : "s"}, generation ${t.generation}${t.reloading ? " (reloading)" : ""}`,
    );
    out.push(
      ...table([
        ["worker", "pid", "state", "gen", "age", "requests", "in flight", "memory", "lag p99"],
        ...t.workers.map((w) => [
          String(w.id),
          String(w.pid),
          w.state,
          String(w.generation),
          age(w.ageMs),
          String(w.requests),
          String(w.inflight),
          mib(w.rss),
          `${Math.round(w.lagP99 * 1000)} ms`,
        ]),
      ]),
    );
  }
  out.push("", "upstream peers (app workers, as each web worker sees them):");
  if (s.peers.length === 0) out.push("  none");
  for (const p of s.peers) {
    const views = p.views
      .map(
        (v) =>
          `web ${v.webPid}: ${v.state}, ${v.active} active, ${v.requests} sent, ${v.failures} failed`,
      )
      .join("; ");
    out.push(`  ${p.address}${p.pid ? ` (pid ${p.pid})` : ""}: ${views || "not yet reported"}`);
  }
  if (s.cache) {
    const hits =
      (s.cache.HIT ?? 0) +
      (s.cache.STALE ?? 0) +
      (s.cache.UPDATING ?? 0) +
      (s.cache.REVALIDATED ?? 0);
    const lookups = hits + (s.cache.MISS ?? 0) + (s.cache.EXPIRED ?? 0);
    const parts = Object.entries(s.cache)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`);
    out.push(
      "",
      `cache: ${lookups > 0 ? `${Math.round((hits / lookups) * 100)}% hits` : "no lookups yet"}${parts.length ? ` (${parts.join(", ")})` : ""}`,
    );
  } else out.push("", "cache: off");
  if (s.leases) {
    out.push(
      `sync leases: ${s.leases.held} app worker${s.leases.held === 1 ? "" : "s"} busy, ${s.leases.waiting} request${s.leases.waiting === 1 ? "" : "s"} waiting at the front`,
    );
  }
  if (s.lastReload) {
    const r = s.lastReload;
    out.push(
      `last reload: ${new Date(r.at).toISOString()} ${r.ok ? "complete" : `rolled back: ${r.reason}`} (generation ${r.generation})`,
    );
  }
  return `${out.join("\n")}\n`;
}

/**
 * Run a control command (`status`, `reload`, `stop`, `scale`) against the stack of this config:
 * its runtime directory's control socket. Returns the exit code.
 */
export async function command(
  name: string,
  args: string[],
  config: Config,
  file: string | undefined,
  json: boolean,
): Promise<number> {
  const dir = runtimeDir(config, file);
  const path = controlSocket(dir);
  const print = (text: string) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  const fail = (text: string, code: number = ExitCode.failure) => {
    process.stderr.write(`brigade ${name}: ${text}\n`);
    return code;
  };
  if (!existsSync(path)) {
    return fail(
      `no stack is running for this directory and config (no control socket ${path}); start one with brigade up, or pass the same -c / --runtime-dir`,
    );
  }
  try {
    if (name === "status") {
      const r = await request(path, "GET", "/status");
      const s = r.body as StackStatus;
      print(json ? JSON.stringify(s, null, 2) : formatStatus(s));
      return ExitCode.ok;
    }
    if (name === "reload") {
      // The answer comes when the rolling reload has ended: allow for slow boots and the canary.
      const r = await request(path, "POST", "/reload", undefined, 15 * 60_000);
      const b = r.body as { ok: boolean; generation: number; reason?: string };
      if (json) print(JSON.stringify(b));
      else if (b.ok) print(`brigade reload: complete, app generation ${b.generation}`);
      else if (b.generation === 0) print(`brigade reload: refused: ${b.reason}; nothing changed`);
      else print(`brigade reload: rolled back: ${b.reason}`);
      return b.ok ? ExitCode.ok : ExitCode.failure;
    }
    if (name === "stop") {
      const before = (await request(path, "GET", "/status")).body as StackStatus;
      await request(path, "POST", "/stop");
      // Until the master is gone (its graceful stop is bounded by the grace periods).
      for (;;) {
        try {
          process.kill(before.pid, 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      print(`brigade stop: stopped (master pid ${before.pid})`);
      return ExitCode.ok;
    }
    if (name === "scale") {
      const [pool, amount] = args;
      const m = /^([+-]?)(\d+)$/.exec(amount ?? "");
      if ((pool !== "app" && pool !== "web") || !m) {
        return fail(
          'usage: brigade scale app|web +N|-N|N (e.g. "brigade scale app +1")',
          ExitCode.config,
        );
      }
      let delta = Number(m[2]);
      if (m[1] === "-") delta = -delta;
      if (m[1] === "") {
        const s = (await request(path, "GET", "/status")).body as StackStatus;
        delta = Number(m[2]) - s.tiers[pool].target;
      }
      const r = await request(path, "POST", "/scale", { pool, delta });
      const b = r.body as { workers?: number; error?: string };
      if (r.status !== 200) return fail(b.error ?? `status ${r.status}`);
      print(json ? JSON.stringify(b) : `brigade scale: ${pool} workers: ${b.workers}`);
      return ExitCode.ok;
    }
    return fail(`unknown control command ${name}`);
  } catch (error) {
    return fail(`cannot talk to the stack at ${path}: ${(error as Error).message}`);
  }
}
