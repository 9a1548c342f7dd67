/**
 * Start a real `brigade web` (bin/brigade.ts) on a config written to a temp dir, and talk to it
 * from chosen loopback addresses (127.0.0.2, 127.0.0.3, ...): every client request binds its
 * `localAddress`, so per-address rules see distinct clients.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type Spawned, spawnNode } from "../helpers/process.ts";

const bin = new URL("../../bin/brigade.ts", import.meta.url).pathname;

export interface RunningWeb extends Spawned {
  dir: string;
  port: number;
  /** Worker pids from the master's log. */
  workerPids(): number[];
}

export function tempDir(t: TestContext, prefix = "brigade-web-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Start `brigade web` with `{ log, web }` (servers listening on "127.0.0.1:0" unless they say
 * otherwise); `files` are written into the temp dir first (an htpasswd file, say). Resolves
 * once the master is ready, with the port of the first listener.
 */
export async function startWeb(
  t: TestContext,
  web: Record<string, unknown>,
  { files = {}, dir = tempDir(t) }: { files?: Record<string, string>; dir?: string } = {},
): Promise<RunningWeb> {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const config = join(dir, "web.json");
  writeFileSync(config, JSON.stringify({ log: { format: "text", level: "info" }, web }));
  const proc = spawnNode(t, [bin, "web", "-c", config]);
  const workerPids = (): number[] =>
    proc.lines.flatMap((l) => {
      const m = / worker spawned worker=\d+ pid=(\d+)/.exec(l);
      return m ? [Number(m[1])] : [];
    });
  // Workers are the master's children: none may outlive a failed test.
  t.after(() => {
    for (const pid of workerPids()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  });
  await proc.waitForLine(/master ready/, { timeoutMs: 30_000 });
  const l = proc.lines.find((x) => / listening address=\S*:(\d+)$/.test(x));
  const port = Number(l?.match(/:(\d+)$/)?.[1]);
  return { ...proc, dir, port, workerPids };
}

/** Stop it with TERM and expect a clean exit. */
export async function stopWeb(w: RunningWeb): Promise<number | null> {
  process.kill(w.pid, "SIGTERM");
  return (await w.exited).code;
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export interface RequestOptions {
  /** The client's own address (default 127.0.0.1). */
  from?: string;
  method?: string;
  headers?: Record<string, string>;
  host?: string;
  body?: string;
  timeoutMs?: number;
}

/** One request on a fresh connection (no keep-alive), from `from`. */
export function request(port: number, path: string, o: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: o.host ?? "127.0.0.1",
        port,
        path,
        method: o.method ?? "GET",
        localAddress: o.from ?? (o.host?.includes(":") ? "::1" : "127.0.0.1"),
        agent: false,
        headers: { connection: "close", ...o.headers },
        timeout: o.timeoutMs ?? 10_000,
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
    req.on("timeout", () => req.destroy(new Error(`${path} timed out`)));
    req.on("error", reject);
    req.end(o.body);
  });
}

/** Whether the server closed the connection without answering (nginx's 444). */
export function closedUnanswered(port: number, path: string, from = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress: from });
    let got = "";
    s.setEncoding("utf8");
    s.on("connect", () => s.write(`GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`));
    s.on("data", (c: string) => {
      got += c;
    });
    s.on("error", reject);
    s.on("close", () => resolve(got === ""));
    s.setTimeout(10_000, () => s.destroy(new Error("no close")));
  });
}

export function basic(user: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` };
}

/**
 * A server's fields that make every location without content answer `200 passed ...` through
 * the named location `@ok` (there is no content module yet): the 404 of an empty location is
 * error-paged there, and the body tells what the request looked like to the server.
 */
export const passThrough = {
  errorPages: ["404 = @ok"],
};
export const okLocation = {
  match: "@ok",
  return:
    "200 passed addr=$remote_addr user=$remote_user pid=$pid xuser=$http_x_user req=$limit_req_status\n",
};
