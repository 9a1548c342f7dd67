/**
 * Forwarding an absolute-form `http:` request to its origin (or to the parent proxy) and its
 * response back: the hop-by-hop fields dropped both ways (RFC 9110 §7.6.1: `Connection` and the
 * fields it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`,
 * `Upgrade`; `Proxy-Authorization` and `Proxy-Authenticate` are for this hop only), `Host` made
 * the target's authority, `Via` added, the request body streamed, the response streamed.
 *
 * Connections to origins are pooled per (name, address, port) with the upstream engine's
 * `PeerPool` (keep-alive, LIFO reuse, a stale idle connection replayed once for a bodiless
 * request), each pool made on first use and dropped once idle and empty; a pool dials the
 * address that was checked, never the name.
 */
import { Readable } from "node:stream";
import {
  PeerPool,
  type PoolOptions,
  UpstreamError,
  type UpstreamResponse,
} from "../../upstream/index.ts";
import { Fields, type WebRequest, type WebResponse } from "../exchange.ts";
import type { Target } from "./target.ts";

/** Request fields never forwarded (besides those `Connection` names). */
const requestHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "via",
  "max-forwards",
  "x-forwarded-for",
]);

/** Response fields never passed back (besides those `Connection` names). */
const responseHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
]);

/** The field names a `Connection` (or `Proxy-Connection`) value lists. */
function named(values: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const v of values) {
    for (const t of v.split(",")) {
      const n = t.trim().toLowerCase();
      if (n !== "") out.add(n);
    }
  }
  return out;
}

export interface OutgoingOptions {
  /** The `Via` entry to add (`1.1 host:3128 (brigade)`), or undefined for none. */
  via: string | undefined;
  /** Append the client to `X-Forwarded-For`. */
  xForwardedFor: boolean;
  client: string;
  /** `Proxy-Authorization` for the parent proxy. */
  parentAuthorization: string | undefined;
  /** `Max-Forwards` after decrementing (OPTIONS and TRACE), or undefined to pass none. */
  maxForwards: number | undefined;
}

/** The request fields to send, as a flat `[name, value, ...]` list. */
export function outgoingFields(req: WebRequest, target: Target, o: OutgoingOptions): string[] {
  const f = req.fields;
  const drop = named([...f.getAll("connection"), ...f.getAll("proxy-connection")]);
  const out: string[] = ["host", target.authority];
  const l = f.list;
  for (let i = 0; i < l.length; i += 2) {
    const name = l[i]!;
    if (requestHop.has(name) || drop.has(name)) continue;
    out.push(name, l[i + 1]!);
  }
  const via = f.joined("via");
  if (o.via !== undefined) out.push("via", via === undefined ? o.via : `${via}, ${o.via}`);
  else if (via !== undefined) out.push("via", via);
  const xff = f.joined("x-forwarded-for");
  if (o.xForwardedFor)
    out.push("x-forwarded-for", xff === undefined ? o.client : `${xff}, ${o.client}`);
  else if (xff !== undefined) out.push("x-forwarded-for", xff);
  if (o.maxForwards !== undefined) out.push("max-forwards", String(o.maxForwards));
  if (o.parentAuthorization !== undefined) out.push("proxy-authorization", o.parentAuthorization);
  return out;
}

/** Bodies of a declared length up to this are read whole before the answer starts. */
const SMALL_BODY = 64 * 1024;

function readAll(body: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    body.on("data", (c: Buffer) => chunks.push(c));
    body.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    body.once("error", reject);
  });
}

/**
 * The origin's response as ours: hop-by-hop fields dropped, `Via` added, the body streamed (or,
 * when small and of a declared length, read whole first).
 */
export function incomingResponse(
  method: string,
  res: UpstreamResponse,
  via: string | undefined,
): WebResponse | Promise<WebResponse> {
  const headers = res.headers;
  const conn = headers.connection;
  const drop = named(conn === undefined ? [] : Array.isArray(conn) ? conn : [conn]);
  const fields = new Fields();
  let server = false;
  let viaSeen: string | undefined;
  for (const name in headers) {
    const value = headers[name]!;
    if (responseHop.has(name) || drop.has(name)) continue;
    if (name === "via") {
      viaSeen = Array.isArray(value) ? value.join(", ") : value;
      continue;
    }
    if (name === "server") server = true;
    if (Array.isArray(value)) for (const v of value) fields.append(name, v);
    else fields.append(name, value);
  }
  if (via !== undefined) fields.append("via", viaSeen === undefined ? via : `${viaSeen}, ${via}`);
  else if (viaSeen !== undefined) fields.append("via", viaSeen);
  // The origin's response: no `Server: brigade` added to it by the engine.
  if (!server) fields.append("server", "");
  // undici's body fails with an error when destroyed before its end (the engine does that to
  // a client that left): heard here, so it is never an uncaught one; the engine's pipe hears
  // it too.
  res.body.on("error", () => {});
  const status = res.status;
  const rawLength = headers["content-length"];
  const length =
    typeof rawLength === "string" && /^\d+$/.test(rawLength) ? Number(rawLength) : undefined;
  if (method === "HEAD" || status === 204 || status === 304 || status < 200) {
    // Read the (empty) body to its end: that returns the connection to its pool.
    res.body.resume();
    if (length !== undefined && (method === "HEAD" || status === 304)) {
      fields.append("content-length", String(length));
    } else if (method === "HEAD") {
      // No length from the origin: an empty body would make the engine say `Content-Length: 0`,
      // which for a HEAD speaks of the GET's body; a length-less stream says nothing.
      return { status, fields, body: { kind: "stream", stream: Readable.from([]) } };
    }
    return { status, fields, body: { kind: "empty" } };
  }
  if (length !== undefined && length <= SMALL_BODY) {
    // Read whole, then written with the head in one go: no stream pipe per small response
    // (most of what a proxy relays), and a short body is a 502 rather than a cut answer.
    return readAll(res.body).then((data) => ({ status, fields, body: { kind: "bytes", data } }));
  }
  return { status, fields, body: { kind: "stream", stream: res.body, length } };
}

const POOLS_MAX = 512;
const SWEEP_MS = 30_000;

/** Keep-alive pools to origins, one per (name, address, port), dropped once empty. */
export class OriginPools {
  private readonly options: PoolOptions;
  private readonly pools = new Map<string, PeerPool>();
  private timer: NodeJS.Timeout | undefined;

  constructor(options: PoolOptions) {
    this.options = options;
  }

  get(name: string, address: string, port: number): PeerPool {
    const key = `${name}@${address}:${port}`;
    let pool = this.pools.get(key);
    if (pool === undefined) {
      if (this.pools.size >= POOLS_MAX) this.sweep();
      pool = new PeerPool({ kind: "tcp", host: address, port }, this.options);
      this.pools.set(key, pool);
      if (this.timer === undefined) {
        this.timer = setInterval(() => this.sweep(), SWEEP_MS);
        this.timer.unref();
      }
    }
    return pool;
  }

  /** Drop pools without a connection (each pool's own idle timeout closes its sockets). */
  private sweep(): void {
    for (const [key, pool] of this.pools) {
      if (pool.stats().open === 0) {
        this.pools.delete(key);
        void pool.close();
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    const all = [...this.pools.values()];
    this.pools.clear();
    for (const p of all) p.destroy();
  }

  /** Pools and connections now, for tests and status. */
  stats(): { pools: number; open: number; idle: number; created: number; reused: number } {
    let open = 0;
    let idle = 0;
    let created = 0;
    let reused = 0;
    for (const p of this.pools.values()) {
      const s = p.stats();
      open += s.open;
      idle += s.idle;
      created += s.created;
      reused += s.reused;
    }
    return { pools: this.pools.size, open, idle, created, reused };
  }
}

/** Whether an attempt failed before anything was sent, so another address may be tried. */
export function failedToConnect(error: unknown): boolean {
  return (
    error instanceof UpstreamError &&
    error.phase === "connect" &&
    (error.kind === "refused" || error.kind === "timeout" || error.kind === "reset")
  );
}
