/**
 * Real servers for the static module's integration and differential tests: `brigade web` from a
 * config object, nginx from a server block, both over one directory; and a raw HTTP client that
 * sends bytes exactly as given (traversal attempts must not be normalised by a client library).
 */
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type RunningServer, startCommand } from "../../../bench/lib/peers.ts";
import { startNginx } from "../../helpers/peers.ts";

const brigade = join(import.meta.dirname, "../../../bin/brigade.ts");

/**
 * `brigade web -c <config>` with one worker; `server` is the one server block (its `listen` is
 * filled in). Stopped when the test ends.
 */
export async function startBrigade(
  t: Pick<TestContext, "after">,
  server: Record<string, unknown>,
  web: Record<string, unknown> = {},
): Promise<RunningServer> {
  const s = await startCommand({
    name: "brigade web",
    command: process.execPath,
    args: [brigade, "web", "-c", "{dir}/brigade.config.json"],
    beforeSpawn(port, dir) {
      const config = {
        web: { workers: 1, ...web, servers: [{ ...server, listen: [`127.0.0.1:${port}`] }] },
      };
      writeFileSync(join(dir, "brigade.config.json"), JSON.stringify(config, null, 2));
    },
  });
  t.after(() => s.stop());
  return s;
}

/** `brigade web --root DIR --listen ...` (the quick start), one worker. */
export async function startQuick(
  t: Pick<TestContext, "after">,
  root: string,
  args: string[] = [],
): Promise<RunningServer> {
  const s = await startCommand({
    name: "brigade web",
    command: process.execPath,
    args: [
      brigade,
      "web",
      "--root",
      root,
      "--listen",
      "127.0.0.1:{port}",
      "--workers",
      "1",
      ...args,
    ],
  });
  t.after(() => s.stop());
  return s;
}

/** nginx with Debian's mime.types, `serverBlock` inside the server. */
export async function startNginxStatic(
  t: Pick<TestContext, "after">,
  serverBlock: string,
  http = "",
): Promise<RunningServer> {
  return startNginx(t, {
    conf: `worker_processes 1;
${process.getuid?.() === 0 ? "user root;" : ""}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path {dir}/tmp/client_body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  include /etc/nginx/mime.types;
  server_tokens off;
${http}
  server {
    listen 127.0.0.1:{port};
${serverBlock}
  }
}
`,
  });
}

export interface RawResponse {
  status: number;
  /** Lowercase names; repeated fields joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Send `head` (a request line and fields, without the final blank line) exactly as given, with
 * `Connection: close`, and read the whole response.
 */
export function raw(port: number, head: string, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete response to ${JSON.stringify(head.split("\r\n")[0])}`));
    }, timeoutMs);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      try {
        resolve(parse(Buffer.concat(chunks), head.startsWith("HEAD ")));
      } catch (e) {
        reject(e);
      }
    });
    socket.write(Buffer.from(`${head}\r\nConnection: close\r\n\r\n`, "latin1"));
  });
}

function parse(data: Buffer, head: boolean): RawResponse {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) throw new Error(`incomplete response: ${JSON.stringify(data.toString("latin1"))}`);
  const lines = data.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
  if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let body = data.subarray(end + 4);
  if (!head && headers["transfer-encoding"]?.toLowerCase() === "chunked") body = dechunk(body);
  return { status: Number(m[1]), headers, body };
}

function dechunk(data: Buffer): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = data.indexOf("\r\n", at);
    if (eol < 0) break;
    const size = Number.parseInt(data.subarray(at, eol).toString("latin1"), 16);
    if (!(size > 0)) break;
    out.push(data.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

/** GET (or another method) with extra header lines. */
export function request(
  port: number,
  target: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<RawResponse> {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: localhost"];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return raw(port, lines.join("\r\n"));
}
