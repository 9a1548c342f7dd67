/**
 * For the forward proxy's tests: the pipeline and engine in this process on an ephemeral port
 * (same code as a worker, real sockets, with worker services such as a test resolver), curl as
 * the client, origins (plain HTTP, HTTPS with a self-signed certificate, a raw TCP echo), and
 * raw CONNECT exchanges. Everything started is stopped in `t.after`; every wait is bounded.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { TestContext } from "node:test";
import { resolveConfig } from "../../../src/config/load.ts";
import type { UserConfig } from "../../../src/config/schema.ts";
import { createLogger } from "../../../src/core/logger.ts";
import { WebEngine } from "../../../src/webserver/engine/listener.ts";
import { Pipeline } from "../../../src/webserver/pipeline.ts";

export interface Proxy {
  port: number;
  url: string;
  pipeline: Pipeline;
  stop(): Promise<void>;
}

type ServerBlock = Exclude<NonNullable<NonNullable<UserConfig["web"]>["servers"]>, unknown[]>;

/**
 * A forward proxy: one server block with `block`'s fields, on 127.0.0.1 port 0, with `services`
 * given to the modules (`forwardLookup`, ...) and `section`'s web settings (`engine`).
 */
export async function startProxy(
  t: TestContext,
  block: Omit<ServerBlock, "listen">,
  services: Record<string, unknown> = {},
  section: Omit<NonNullable<UserConfig["web"]>, "servers"> = {},
): Promise<Proxy> {
  const web = { ...section, servers: [{ listen: ["127.0.0.1:0"], ...block }] };
  const config = resolveConfig({ file: { value: { web }, source: "test" }, env: {} });
  const logger = createLogger({ level: "fatal", format: "text" });
  const pipeline = await Pipeline.compile({
    web: config.web,
    baseDir: process.cwd(),
    serving: true,
    logger,
    source: "test",
    services: new Map(Object.entries(services)),
  });
  const engine = new WebEngine(pipeline, { ...pipeline.engineOptions, logger });
  const addr = (await engine.listen(pipeline.listeners[0]!.plan, {
    host: "127.0.0.1",
    port: 0,
  })) as net.AddressInfo;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await pipeline.close();
    await engine.stop(false);
  };
  t.after(stop);
  return { port: addr.port, url: `http://127.0.0.1:${addr.port}`, pipeline, stop };
}

export interface Origin {
  port: number;
  /** Requests seen: method, url, headers (lowercase names). */
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  /** TCP connections accepted. */
  connections: number;
}

/** An HTTP origin on 127.0.0.1 (or `host`) that answers `hello <method> <url>` and echoes bodies. */
export async function startOrigin(
  t: TestContext,
  handler?: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  host = "127.0.0.1",
): Promise<Origin> {
  const origin: Origin = { port: 0, seen: [], connections: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      origin.seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body,
      });
      if (handler) return handler(req, res);
      const text = `hello ${req.method} ${req.url}${body ? ` ${body}` : ""}`;
      res.setHeader("content-type", "text/plain");
      res.setHeader("content-length", Buffer.byteLength(text));
      res.end(req.method === "HEAD" ? undefined : text);
    });
  });
  server.on("connection", () => origin.connections++);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  origin.port = (server.address() as net.AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return origin;
}

const tlsDir = new URL("../../fixtures/gateway/tls/", import.meta.url);

/** An HTTPS origin with the fixture's self-signed certificate (127.0.0.1). */
export async function startTlsOrigin(t: TestContext): Promise<number> {
  const server = https.createServer(
    {
      cert: readFileSync(new URL("cert.pem", tlsDir)),
      key: readFileSync(new URL("key.pem", tlsDir)),
    },
    (req, res) => res.end(`secure ${req.url}`),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

/** A TCP server that echoes what it reads. */
export async function startEcho(t: TestContext): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

export interface CurlResult {
  /** curl's exit code. */
  code: number;
  /** The final response's status (`%{http_code}`; 0 when none). */
  status: number;
  /** The CONNECT response's status (`%{http_connect}`; 0 when none). */
  connect: number;
  /** Response heads and body, as `-i` prints them (a CONNECT's head first). */
  out: string;
  err: string;
}

/** Run curl (`-sS -i`, 10 s at most) with `args`. */
export function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile(
      "curl",
      ["-sS", "-i", "--max-time", "10", "-w", "\n@@%{http_code} %{http_connect}", ...args],
      { encoding: "utf8", timeout: 15_000 },
      (error, stdout, stderr) => {
        const at = stdout.lastIndexOf("\n@@");
        const [status, connect] = stdout
          .slice(at + 3)
          .trim()
          .split(" ")
          .map(Number);
        resolve({
          code: error ? ((error as { code?: number }).code ?? 1) : 0,
          status: status ?? 0,
          connect: connect ?? 0,
          out: stdout.slice(0, at),
          err: stderr,
        });
      },
    );
  });
}

/** The value of `name` in the last response head of curl's `-i` output. */
export function header(out: string, name: string): string | undefined {
  const heads = out.split(/\r?\n\r?\n/).filter((h) => /^HTTP\/[\d.]+ \d{3}/.test(h));
  const last = heads.at(-1) ?? "";
  const re = new RegExp(`^${name}:\\s*(.*)$`, "im");
  return re.exec(last)?.[1]?.trim();
}

/**
 * Send `head` (a CONNECT) on a raw connection to `port` and resolve with the socket and the
 * response head once it has arrived (the socket stays open: it is the tunnel on a 200).
 */
export function rawConnect(
  t: TestContext,
  port: number,
  head: string,
  address = "127.0.0.1",
): Promise<{ socket: net.Socket; status: number; head: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress: address });
    t.after(() => socket.destroy());
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${JSON.stringify(head.split("\r\n")[0])}`));
    }, 5000);
    const onData = (c: Buffer): void => {
      got = Buffer.concat([got, c]);
      const end = got.indexOf("\r\n\r\n");
      if (end < 0) return;
      clearTimeout(timer);
      socket.off("data", onData);
      const text = got.subarray(0, end).toString("latin1");
      resolve({
        socket,
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
        head: text,
        rest: got.subarray(end + 4),
      });
    };
    socket.on("data", onData);
    socket.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.on("connect", () => socket.write(head));
  });
}

/** Resolve once `socket` closes (or reject after `ms`). */
export function closed(socket: net.Socket, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error("the socket stayed open")), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.resume();
  });
}

/** Write `data` on `socket` and resolve with the next `n` bytes read. */
export function roundTrip(
  socket: net.Socket,
  data: string,
  n = Buffer.byteLength(data),
): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error("no echo")), 5000);
    const onData = (c: Buffer): void => {
      got = Buffer.concat([got, c]);
      if (got.length >= n) {
        clearTimeout(timer);
        socket.off("data", onData);
        resolve(got.toString());
      }
    };
    socket.on("data", onData);
    socket.write(data);
  });
}
