/**
 * Helpers for the web server's tests: a real `brigade web` (master and workers) from a config,
 * the engine in this process on an ephemeral port (for the many small cases: same code, real
 * sockets, no process start), raw request/response exchanges, and self-signed certificates.
 * Every wait is bounded; everything started is stopped in `t.after`.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TestContext } from "node:test";
import { resolveConfig } from "../../src/config/load.ts";
import type { UserConfig } from "../../src/config/schema.ts";
import { createLogger } from "../../src/core/logger.ts";
import { WebEngine } from "../../src/webserver/engine/listener.ts";
import type { WebModule } from "../../src/webserver/module.ts";
import { Pipeline } from "../../src/webserver/pipeline.ts";
import { type Spawned, spawnNode } from "../helpers/process.ts";

export const bin = new URL("../../bin/brigade.ts", import.meta.url).pathname;

/** A temp dir removed after the test, with `files` written into it. */
export function tempDir(t: TestContext, files: Record<string, string | Buffer> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-web-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

export interface RunningWeb extends Spawned {
  dir: string;
  configFile: string;
  /** Bound ports, in the order of the "listening" lines (the listeners' order). */
  ports: number[];
  port: number;
  writeConfig(config: UserConfig): void;
}

/**
 * Start `brigade web -c <dir>/brigade.config.json` and wait until the master is ready. Listen
 * on port 0 (`127.0.0.1:0`): the ports bound are read from the log.
 */
export async function startWeb(
  t: TestContext,
  config: UserConfig,
  opts: { dir?: string; args?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<RunningWeb> {
  const dir = opts.dir ?? tempDir(t);
  const configFile = join(dir, "brigade.config.json");
  const writeConfig = (c: UserConfig): void => writeFileSync(configFile, JSON.stringify(c));
  writeConfig(config);
  const proc = spawnNode(
    t,
    [bin, "web", "-c", configFile, "--log-format", "text", ...(opts.args ?? [])],
    { cwd: dir, env: { ...process.env, ...opts.env } },
  );
  // Workers stop by themselves when the master's IPC channel closes; kill them too if listed.
  t.after(() => {
    for (const line of proc.lines) {
      const m = / worker spawned worker=\d+ pid=(\d+)/.exec(line);
      if (m) {
        try {
          process.kill(Number(m[1]), "SIGKILL");
        } catch {
          // gone
        }
      }
    }
  });
  await proc.waitForLine(/master ready/, { timeoutMs: 30_000 });
  const ports = proc.lines
    .map((l) => / listening address=\S*:(\d+)$/.exec(l)?.[1])
    .filter((p): p is string => p !== undefined)
    .map(Number);
  return { ...proc, dir, configFile, ports, port: ports[0]!, writeConfig };
}

/** Send a signal to a process we started and wait for its exit. */
export async function stopWeb(
  web: RunningWeb,
  signal: NodeJS.Signals = "SIGTERM",
): Promise<number | null> {
  web.child.kill(signal);
  const { code } = await web.exited;
  return code;
}

export interface InProcess {
  port: number;
  pipeline: Pipeline;
  engine: WebEngine;
  stop(): Promise<void>;
}

/**
 * The pipeline and engine in this process, on 127.0.0.1 port 0 for every listener (all
 * servers on one socket). `web` is the `web` section as a user writes it.
 */
export async function startEngine(
  t: TestContext,
  web: NonNullable<UserConfig["web"]>,
  opts: { baseDir?: string; modules?: readonly WebModule[]; logFile?: string } = {},
): Promise<InProcess> {
  // BRIGADE_WEB_ENGINE=brigade runs these tests on Brigade's own HTTP/1 engine (as it does for
  // `startWeb`, whose processes inherit the environment).
  const which = process.env.BRIGADE_WEB_ENGINE;
  const env = which === undefined ? {} : { BRIGADE_WEB_ENGINE: which };
  const config = resolveConfig({ file: { value: { web }, source: "test" }, env });
  const logger =
    opts.logFile === undefined
      ? createLogger({ level: "fatal", format: "text" })
      : createLogger({ level: "info", format: "json", file: opts.logFile });
  const pipeline = await Pipeline.compile({
    web: config.web,
    baseDir: opts.baseDir ?? process.cwd(),
    serving: true,
    logger,
    source: "test",
    ...(opts.modules ? { modules: opts.modules } : {}),
  });
  const engine = new WebEngine(pipeline, { ...pipeline.engineOptions, logger });
  const addr = await engine.listen(pipeline.listeners[0]!.plan, { host: "127.0.0.1", port: 0 });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await engine.stop(false);
    await pipeline.close();
  };
  t.after(stop);
  return { port: (addr as net.AddressInfo).port, pipeline, engine, stop };
}

export interface RawResponse {
  status: number;
  reason: string;
  version: string;
  /** Lowercase names; repeated fields joined with ", " (set-cookie too: fine for tests). */
  headers: Record<string, string>;
  body: Buffer;
  text: string;
}

/**
 * Parse as many complete responses as `data` holds. `head` lists which responses answer HEAD
 * (no body whatever Content-Length says). A close-delimited body takes the rest when `closed`.
 */
export function parseResponses(data: Buffer, closed: boolean, head: boolean[] = []): RawResponse[] {
  const out: RawResponse[] = [];
  let off = 0;
  while (off < data.length) {
    const end = data.indexOf("\r\n\r\n", off);
    if (end < 0) break;
    const lines = data.subarray(off, end).toString("latin1").split("\r\n");
    const m = /^HTTP\/(\d\.\d) (\d{3}) ?(.*)$/.exec(lines[0]!);
    if (!m) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      const k = l.slice(0, i).toLowerCase();
      const v = l.slice(i + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    const status = Number(m[2]);
    let pos = end + 4;
    let body: Buffer;
    const noBody = head[out.length] === true || status < 200 || status === 204 || status === 304;
    if (noBody) body = Buffer.alloc(0);
    else if (headers["transfer-encoding"]?.includes("chunked")) {
      const parts: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = data.indexOf("\r\n", pos);
        if (lineEnd < 0) break;
        const size = Number.parseInt(data.subarray(pos, lineEnd).toString(), 16);
        if (size === 0) {
          const trailerEnd = data.indexOf("\r\n", lineEnd + 2);
          if (trailerEnd < 0) break;
          pos = trailerEnd + 2;
          complete = true;
          break;
        }
        if (data.length < lineEnd + 2 + size + 2) break;
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        pos = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers["content-length"] !== undefined) {
      const n = Number(headers["content-length"]);
      if (data.length < pos + n) break;
      body = data.subarray(pos, pos + n);
      pos += n;
    } else {
      if (!closed) break;
      body = data.subarray(pos);
      pos = data.length;
    }
    out.push({
      status,
      reason: m[3]!,
      version: m[1]!,
      headers,
      body,
      text: body.toString("utf8"),
    });
    off = pos;
  }
  return out;
}

export interface Exchange {
  responses: RawResponse[];
  /** The server closed the connection. */
  closed: boolean;
  raw: Buffer;
}

/**
 * Write `data` (one or several requests, or garbage) on a fresh connection and read until
 * `responses` responses have arrived (then close; with `untilClose`, wait for the server to
 * close instead), the server closes, or `timeoutMs` passes.
 */
export function exchange(
  port: number,
  data: string | Buffer | (string | Buffer)[],
  opts: {
    responses?: number;
    timeoutMs?: number;
    head?: boolean[];
    host?: string;
    untilClose?: boolean;
  } = {},
): Promise<Exchange> {
  const want = opts.responses ?? 1;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let closed = false;
    let settled = false;
    const socket = net.connect(port, opts.host ?? "127.0.0.1");
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const raw = Buffer.concat(chunks);
      try {
        resolve({ responses: parseResponses(raw, closed, opts.head), closed, raw });
      } catch (e) {
        reject(e);
      }
      socket.destroy();
    };
    const timer = setTimeout(finish, opts.timeoutMs ?? 5000);
    socket.on("connect", () => {
      for (const d of Array.isArray(data) ? data : [data]) socket.write(d);
    });
    socket.on("data", (c) => {
      chunks.push(c);
      if (opts.untilClose) return;
      try {
        if (parseResponses(Buffer.concat(chunks), false, opts.head).length >= want) finish();
      } catch {
        // incomplete garbage: wait for more
      }
    });
    socket.on("end", () => {
      closed = true;
      finish();
    });
    socket.on("close", () => {
      closed = true;
      finish();
    });
    socket.on("error", () => {
      closed = true;
      finish();
    });
  });
}

/** A GET (or other method) with Host, on a fresh connection: the one response. */
export async function request(
  port: number,
  path: string,
  opts: {
    host?: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    /** The address to connect to (default 127.0.0.1). */
    address?: string;
  } = {},
): Promise<RawResponse> {
  const method = opts.method ?? "GET";
  let head = `${method} ${path} HTTP/1.1\r\nHost: ${opts.host ?? "localhost"}\r\nConnection: close\r\n`;
  for (const [k, v] of Object.entries(opts.headers ?? {})) head += `${k}: ${v}\r\n`;
  if (opts.body !== undefined) head += `Content-Length: ${Buffer.byteLength(opts.body)}\r\n`;
  const ex = await exchange(port, `${head}\r\n${opts.body ?? ""}`, {
    head: [method === "HEAD"],
    ...(opts.address ? { host: opts.address } : {}),
  });
  const r = ex.responses[0];
  if (!r) throw new Error(`no response to ${method} ${path}: ${JSON.stringify(ex.raw.toString())}`);
  return r;
}

/** A self-signed certificate for `names` (the first is the CN), made with openssl. */
export function selfSigned(
  dir: string,
  name: string,
  names: string[],
): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      `/CN=${names[0]}`,
      "-addext",
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
    ],
    { stdio: "ignore" },
  );
  return { cert, key };
}
