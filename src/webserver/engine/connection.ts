/**
 * Per-connection bookkeeping shared by the HTTP/1 and HTTP/2 engines: the `WebConnection` a
 * request sees, and the sweep that enforces nginx's between-reads and between-writes timeouts
 * (client_body_timeout, send_timeout) and closes idle connections when the worker drains.
 *
 * Timeouts are checked by one interval per engine rather than a timer per socket: a connection
 * is timed out when its byte counter has not moved for the timeout while it waits (a body being
 * read, unsent data in its buffer). The precision is the sweep's interval (at most 1 s).
 */
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { WebConnection, WebTls } from "../exchange.ts";

let nextId = 1;

/** The facts of a connection that do not change while it lives. */
export interface ConnectionBase {
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly listener: string;
  readonly tls: WebTls | undefined;
}

function stripMapped(address: string | undefined): string {
  if (address === undefined) return "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

export function connectionBase(socket: Socket, listener: string): ConnectionBase {
  const tlsSocket = (socket as Partial<TLSSocket>).encrypted ? (socket as TLSSocket) : undefined;
  let tls: WebTls | undefined;
  if (tlsSocket) {
    const servername = (tlsSocket as { servername?: string | false }).servername;
    tls = {
      servername: typeof servername === "string" ? servername : undefined,
      protocol: tlsSocket.getProtocol() ?? undefined,
      cipher: tlsSocket.getCipher()?.name,
      alpn: typeof tlsSocket.alpnProtocol === "string" ? tlsSocket.alpnProtocol : undefined,
    };
  }
  return {
    id: nextId++,
    remoteAddress: stripMapped(socket.remoteAddress),
    remotePort: socket.remotePort ?? 0,
    localAddress: stripMapped(socket.localAddress),
    localPort: socket.localPort ?? 0,
    listener,
    tls,
  };
}

/** The connection as one request sees it (`requests` is this request's position). */
export function connectionView(base: ConnectionBase, requests: number): WebConnection {
  return {
    id: base.id,
    remoteAddress: base.remoteAddress,
    remotePort: base.remotePort,
    localAddress: base.localAddress,
    localPort: base.localPort,
    listener: base.listener,
    tls: base.tls,
    requests,
  };
}

/** Watches one socket's progress for the sweep. */
export class Progress {
  private lastRead = -1;
  private lastWritten = -1;
  private readStall = 0;
  private writeStall = 0;

  /** True when nothing was read for `timeout` ms (call while a body is awaited). */
  readStalled(socket: Socket, now: number, timeout: number): boolean {
    if (socket.bytesRead !== this.lastRead) {
      this.lastRead = socket.bytesRead;
      this.readStall = now;
      return false;
    }
    return now - this.readStall >= timeout;
  }

  /** True when buffered data has not moved for `timeout` ms. */
  writeStalled(socket: Socket, now: number, timeout: number): boolean {
    if (socket.writableLength === 0 || socket.bytesWritten !== this.lastWritten) {
      this.lastWritten = socket.bytesWritten;
      this.writeStall = now;
      return false;
    }
    return now - this.writeStall >= timeout;
  }

  resetRead(): void {
    this.lastRead = -1;
  }
}

/** How often the sweep runs for the given timeouts (ms): a quarter of the shortest, 50 ms to 1 s. */
export function sweepInterval(...timeouts: number[]): number {
  const shortest = Math.min(...timeouts.filter((t) => t > 0), 4000);
  return Math.max(50, Math.min(1000, Math.floor(shortest / 4)));
}

/** An idle connection is closed on drain only after this long idle, so a client already sending its next request is not cut off. */
export const DRAIN_IDLE_MS = 250;
