/**
 * Upstreams for the proxy's tests, on real loopback sockets: an echo server (what it received,
 * as JSON), a raw TCP server answering with bytes we choose (bad responses), a minimal
 * WebSocket echo, and upstream processes of their own (node:http) that a test can kill. Each is
 * closed in `t.after`. `serve` puts the web server's engine in this process in front.
 */
import { createHash } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net, { type AddressInfo } from "node:net";
import type { TestContext } from "node:test";
import { type RunningServer, startCommand } from "../../../bench/lib/peers.ts";
import type { UserConfig } from "../../../src/config/schema.ts";
import { startEngine } from "../helpers.ts";

export type Web = NonNullable<UserConfig["web"]>;

export interface Echoed {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawHeaders: string[];
  body: string;
  bodyBytes: number;
}

export interface Upstream {
  port: number;
  address: string;
  server: http.Server | net.Server;
  /** Requests seen. */
  count: number;
}

/** A node:http upstream; `handler` answers (default: echo what arrived as JSON). */
export async function upstream(
  t: TestContext,
  handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
): Promise<Upstream> {
  const u = { port: 0, address: "", server: undefined as unknown as http.Server, count: 0 };
  const server = http.createServer((req, res) => {
    u.count++;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (handler) return handler(req, res, body);
      const echo: Echoed = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: body.length > 1000 ? "" : body.toString(),
        bodyBytes: body.length,
      };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(echo));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  u.server = server;
  u.port = (server.address() as AddressInfo).port;
  u.address = `127.0.0.1:${u.port}`;
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return u;
}

/** A TCP upstream that answers each connection with `answer(requestHead)` bytes (then closes unless `keep`). */
export async function rawUpstream(
  t: TestContext,
  answer: (socket: net.Socket, head: string) => void,
): Promise<Upstream> {
  const u = { port: 0, address: "", server: undefined as unknown as net.Server, count: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buf = "";
    socket.on("data", (c) => {
      buf += c.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.slice(0, end);
      buf = buf.slice(end + 4);
      u.count++;
      answer(socket, head);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  u.server = server;
  u.port = (server.address() as AddressInfo).port;
  u.address = `127.0.0.1:${u.port}`;
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return u;
}

/** A WebSocket echo upstream (RFC 6455, text and binary frames, unfragmented, as tests send). */
export async function wsEchoUpstream(t: TestContext): Promise<Upstream & { upgrades: number }> {
  const u = await upstream(t, (_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" });
    res.end("upgrade required");
  });
  const counted = u as Upstream & { upgrades: number };
  counted.upgrades = 0;
  (u.server as http.Server).on("upgrade", (req, socket: net.Socket, head: Buffer) => {
    if (req.url === "/refuse") {
      socket.end(
        "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
      );
      return;
    }
    counted.upgrades++;
    const key = req.headers["sec-websocket-key"];
    const accept = createHash("sha1")
      .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest("base64");
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Upstream: ws\r\n\r\n`,
    );
    let buf = head;
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        if (buf.length < 2) return;
        const op = buf[0]! & 0x0f;
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        const masked = (buf[1]! & 0x80) !== 0;
        const mask = masked ? buf.subarray(off, off + 4) : undefined;
        if (masked) off += 4;
        if (buf.length < off + len) return;
        const payload = Buffer.from(buf.subarray(off, off + len));
        if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
        buf = buf.subarray(off + len);
        if (op === 8) {
          socket.end(Buffer.from([0x88, 0]));
          return;
        }
        const out = op === 1 ? Buffer.from(`echo: ${payload.toString()}`) : payload;
        const hdr =
          out.length < 126
            ? Buffer.from([0x80 | op, out.length])
            : Buffer.from([0x80 | op, 126, out.length >> 8, out.length & 0xff]);
        socket.write(Buffer.concat([hdr, out]));
      }
    };
    socket.on("data", onData);
    socket.on("error", () => {});
    if (head.length > 0) onData(Buffer.alloc(0));
  });
  return counted;
}

/** The web server's engine in this process in front, on 127.0.0.1, with `web` as configured. */
export async function serve(t: TestContext, web: Web): Promise<{ port: number; url: string }> {
  const s = await startEngine(t, { listen: ["127.0.0.1:0"], ...web });
  return { port: s.port, url: `http://127.0.0.1:${s.port}` };
}

/** A one-location server proxying everything to `target` with `fields` on that location. */
export function oneLocation(
  target: string | string[],
  fields: Record<string, unknown> = {},
  extra: Web = {},
): Web {
  return {
    ...extra,
    servers: [{ locations: [{ match: "/", proxy: target, ...fields }] }],
  } as Web;
}

const helloScript = `
const http = require("node:http");
const port = Number(process.argv[1]);
const name = process.argv[2] ?? "up";
http.createServer((req, res) => {
  let n = 0;
  req.on("data", (c) => { n += c.length; });
  req.on("end", () => {
    res.writeHead(200, { "content-type": "text/plain", "x-upstream": name });
    res.end(name + " " + req.method + " " + req.url + " " + n);
  });
}).listen(port, "127.0.0.1");
`;

/** A node:http upstream in a process of its own, answering `<name> <method> <url> <bodyBytes>`. */
export async function upstreamProcess(t: TestContext, name: string): Promise<RunningServer> {
  const s = await startCommand({
    name: `upstream ${name}`,
    command: process.execPath,
    args: ["-e", helloScript, "{port}", name],
  });
  t.after(() => s.stop());
  return s;
}

/** A plain HTTP request with a keep-alive agent off; resolves with status, headers and body text. */
export function get(
  url: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    agent?: http.Agent;
  } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      url,
      { method: opts.method ?? "GET", headers: opts.headers, agent: opts.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString(),
          }),
        );
        res.on("error", reject);
      },
    );
    r.on("error", reject);
    r.setTimeout(15_000, () => r.destroy(new Error(`timeout: ${url}`)));
    r.end(opts.body);
  });
}
