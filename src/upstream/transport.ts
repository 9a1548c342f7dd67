/**
 * What every upstream transport shares: the request and response shapes of a peer's pool, the
 * pool's options, which request fields are the transport's business, and the connector (connect
 * timeout, unix sockets, classified errors).
 */

import type { IncomingHttpHeaders } from "node:http";
import { connect as netConnect, type Socket } from "node:net";
import type { Readable } from "node:stream";
import type { AbortLike } from "../core/abort.ts";
import { classifyError, UpstreamError } from "./errors.ts";
import { type PeerTarget, targetName } from "./peer.ts";

export interface PoolOptions {
  /** Most idle connections kept (nginx `keepalive`). 0: close after every request. */
  idle: number;
  /** Milliseconds an idle connection is kept (shortened by the peer's Keep-Alive hint). */
  idleTimeout: number;
  /** Requests per connection before it is closed (nginx `keepalive_requests`). */
  maxRequests: number;
  /** Milliseconds to connect. */
  connectTimeout: number;
  /** Milliseconds without write progress while sending; 0 disables. */
  sendTimeout: number;
  /** Milliseconds to wait for the response head, and between body reads; 0 disables. */
  readTimeout: number;
}

export type RequestHeaders = Record<string, string | string[] | undefined> | string[];

export interface UpstreamRequest {
  method: string;
  /** Path and query, as sent in the request line (`/a?b=1`). */
  path: string;
  /**
   * Headers as an object or as raw `[name, value, ...]` pairs. Hop-by-hop framing headers
   * (Connection, Keep-Alive, Transfer-Encoding, Upgrade, Proxy-Connection, Expect) are the
   * pool's business and dropped; so is Content-Length with an in-memory body (it is computed).
   */
  headers?: RequestHeaders;
  /** In memory (replayable, retried safely) or a stream (sent once, chunked without a length). */
  body?: Buffer | Uint8Array | string | Readable | null;
  /** Aborts the request (the client went away): an AbortSignal or any {@link AbortLike}. */
  signal?: AbortLike | undefined;
  /** Overrides the pool's read timeout for this request (0: none, for event streams). */
  readTimeout?: number;
  /**
   * Overrides, for this request, the longest pause between two reads of the body (default: the
   * read timeout). A proxy that times the body itself (event streams get a longer idle time,
   * decided once the head is seen) passes 0.
   */
  bodyTimeout?: number;
  /** Overrides the pool's connect timeout when this request opens a connection. */
  connectTimeout?: number;
  /** Overrides the pool's send timeout for this request (0: none). */
  sendTimeout?: number;
}

export interface UpstreamResponse {
  status: number;
  /** Lower-case names; repeated headers (Set-Cookie) as arrays. */
  readonly headers: Record<string, string | string[]>;
  /**
   * The fields as received, `[name, value, ...]` with lowercase names, when the transport has
   * them that way (Brigade's: `headers` is then only made if asked for).
   */
  readonly fields?: readonly string[] | undefined;
  /**
   * Read it to the end or destroy it: see the module doc. With `complete`, made on first use
   * (and already whole): a caller that takes `complete` need not touch it.
   */
  readonly body: Readable;
  /**
   * The whole body, when it had all arrived with the head (most small responses): the
   * connection is already back in its pool and there is nothing to read or release.
   */
  readonly complete?: Buffer | undefined;
  /** The peer (`127.0.0.1:8000`, `unix:/run/app.sock`). */
  peer: string;
  /** True when the request went over a kept-alive connection. */
  reused: boolean;
}

/** Callbacks for a request sent without a promise: exactly one is called, once. */
export interface ResponseHandler<T = UpstreamResponse> {
  onResponse(res: T): void;
  onError(err: unknown): void;
}

export interface UpgradeResponse {
  status: 101;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  /** The upgraded connection, now the caller's. */
  socket: Socket;
  /** Bytes the peer sent after its 101 head (the start of the new protocol). */
  head: Buffer;
}

export interface PoolStats {
  /** Connections open now (busy + idle). */
  open: number;
  idle: number;
  /** Connections ever opened. */
  created: number;
  /** Requests that went over a reused connection. */
  reused: number;
  /** Requests sent. */
  requests: number;
}

export const dropHeaders = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "expect",
]);
export const idempotent = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export function isReplayable(body: UpstreamRequest["body"]): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === "string" ||
    Buffer.isBuffer(body) ||
    body instanceof Uint8Array
  );
}

/** Whether a response's Connection field says the peer closes the connection after it. */
export function closes(connection: string | string[] | undefined): boolean {
  if (connection === undefined) return false;
  const v = Array.isArray(connection) ? connection.join(",") : connection;
  return /(?:^|,)\s*close\s*(?:,|$)/i.test(v);
}

/** The headers to hand to undici: framing headers dropped, names as given. */
export function requestHeaders(
  headers: RequestHeaders | undefined,
  inMemoryBody: boolean,
  upgrade = false,
): string[] {
  const out: string[] = [];
  const push = (name: string, value: string | string[] | undefined) => {
    if (value === undefined) return;
    const lower = name.toLowerCase();
    if (dropHeaders.has(lower) && !(upgrade && (lower === "upgrade" || lower === "connection"))) {
      return;
    }
    if (lower === "content-length" && inMemoryBody) return;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  };
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) push(headers[i]!, headers[i + 1]!);
  } else if (headers) {
    for (const [name, value] of Object.entries(headers)) push(name, value);
  }
  return out;
}

/** What `net.connect` takes as `onread`: the socket reads into `buffer` (or what it returns), calling `callback`. */
export interface ReadInto {
  readonly buffer: Buffer | (() => Buffer);
  readonly callback: (bytes: number, buffer: Buffer) => boolean;
}

/**
 * Open a socket to `target` within `timeoutMs`, errors classified (connect phase); with
 * `onread`, the socket reads into a buffer of the caller's (the forward proxy's tunnels).
 */
export function dial(target: PeerTarget, timeoutMs: number, onread?: ReadInto): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      target.kind === "unix"
        ? netConnect({ path: target.path, ...(onread ? { onread } : {}) })
        : netConnect({
            host: target.host,
            port: target.port,
            noDelay: true,
            ...(onread ? { onread } : {}),
          });
    const peer = targetName(target);
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            socket.destroy();
            reject(
              new UpstreamError("timeout", "connect", {
                message: `connect timed out after ${timeoutMs} ms`,
                peer,
                sent: false,
                code: "ETIMEDOUT",
              }),
            );
          }, timeoutMs)
        : undefined;
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(classifyError(err, { peer, connected: false }));
    });
  });
}
