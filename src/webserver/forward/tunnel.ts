/**
 * CONNECT tunnels: the connection to the destination (directly, to the address that was
 * checked, or through the parent proxy's own CONNECT), then bytes both ways until either side
 * closes, with half-close passed on, backpressure both ways, an idle timeout, and a byte limit.
 * What a tunnel carried is counted for the log.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { READ_BUFFER } from "../../core/http1/readBuffer.ts";
import { dial, UpstreamError } from "../../upstream/index.ts";

/** Why a tunnel ended, for `$forward_end`. */
export type TunnelEnd =
  | "closed"
  | "reset"
  | "idle timeout"
  | "byte limit"
  | "error"
  | "worker stopping";

export interface TunnelStats {
  /** Client to destination, the client's first bytes (past the CONNECT head) included. */
  up: number;
  /** Destination to client. */
  down: number;
  end: TunnelEnd;
}

export interface TunnelLimits {
  /** Milliseconds with no byte either way; 0: none. */
  idleMs: number;
  /** Bytes both ways together; 0: none. */
  maxBytes: number;
}

const HEAD_MAX = 16 * 1024;

/**
 * Ask the parent proxy for a tunnel on `socket` (already connected to it). Resolves with the
 * bytes it sent past its 2xx head (the destination's first), rejects with an UpstreamError for
 * any other answer.
 */
export function parentConnect(
  socket: Socket,
  hostPort: string,
  authorization: string | undefined,
  timeoutMs: number,
  peer: string,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer =
      timeoutMs > 0
        ? setTimeout(
            () =>
              fail(
                new UpstreamError("timeout", "read", {
                  message: `the parent proxy did not answer the CONNECT within ${timeoutMs} ms`,
                  peer,
                }),
              ),
            timeoutMs,
          )
        : undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("end", onEnd);
    };
    const fail = (e: UpstreamError): void => {
      cleanup();
      socket.destroy();
      reject(e);
    };
    const onError = (error: Error): void =>
      fail(new UpstreamError("reset", "read", { message: error.message, peer, cause: error }));
    const onEnd = (): void =>
      fail(
        new UpstreamError("reset", "read", {
          message: "the parent proxy closed the connection",
          peer,
        }),
      );
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf("\r\n\r\n");
      if (end < 0) {
        if (got.length > HEAD_MAX) {
          fail(
            new UpstreamError("badResponse", "read", {
              message: "the parent proxy's answer is too long",
              peer,
            }),
          );
        }
        return;
      }
      const line = got.subarray(0, got.indexOf("\r\n")).toString("latin1");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(line);
      if (!m) {
        fail(
          new UpstreamError("badResponse", "read", {
            message: `the parent proxy answered ${JSON.stringify(line)}`,
            peer,
          }),
        );
        return;
      }
      const status = Number(m[1]);
      if (status < 200 || status > 299) {
        const e = new UpstreamError("badResponse", "read", {
          message: `the parent proxy answered the CONNECT with ${line.slice(9)}`,
          peer,
        });
        fail(e);
        return;
      }
      cleanup();
      socket.pause();
      resolve(got.subarray(end + 4));
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("end", onEnd);
    let head = `CONNECT ${hostPort} HTTP/1.1\r\nHost: ${hostPort}\r\n`;
    if (authorization !== undefined) head += `Proxy-Authorization: ${authorization}\r\n`;
    socket.write(`${head}\r\n`);
  });
}

/**
 * The destination-to-client direction without Node's allocation and stream machinery per read:
 * the destination socket reads into the thread's read buffer (core/http1/readBuffer.ts,
 * `onread`), and each read is copied into a buffer of its exact size and written to the client
 * at once (a write left queued for a slow client holds its own copy;
 * test/webserver/forward/tunnelBuffers.test.ts). What arrives before the tunnel runs (a server
 * that speaks first) is kept, and reading pauses until then.
 */
export class DownRelay {
  private sink: Duplex | undefined;
  private count: ((n: number) => boolean) | undefined;
  private readonly early: Buffer[] = [];
  readonly buffer = READ_BUFFER;
  readonly callback = (n: number, buf: Buffer): boolean => {
    const chunk = Buffer.from(buf.subarray(0, n));
    const sink = this.sink;
    if (sink === undefined) {
      this.early.push(chunk);
      return false;
    }
    if (!this.count!(n)) return false;
    return sink.write(chunk);
  };

  /** Start relaying to `sink`; `count(n)` is told of each read and returns false to stop. */
  attach(sink: Duplex, count: (n: number) => boolean): void {
    this.sink = sink;
    this.count = count;
    for (const b of this.early.splice(0)) if (count(b.length)) sink.write(b);
  }
}

/**
 * Connect to the first of `addresses` that answers, each within `timeoutMs` (errors classified
 * as the upstream engine's `dial` does); with `relay`, the socket reads through it.
 */
export async function dialFirst(
  addresses: readonly string[],
  port: number,
  timeoutMs: number,
  relay?: DownRelay,
): Promise<{ socket: Socket; address: string }> {
  let last: unknown;
  for (const address of addresses) {
    try {
      const socket = await dial(
        { kind: "tcp", host: address, port },
        timeoutMs,
        relay && { buffer: relay.buffer, callback: relay.callback },
      );
      return { socket, address };
    } catch (error) {
      last = error;
    }
  }
  throw last;
}

/**
 * Carry bytes both ways between `client` and `upstream` until both are closed. `head` (what the
 * client sent past its CONNECT head) goes to the upstream first, `upHead` (what a parent proxy
 * sent past its answer) to the client first. `stop` ends the tunnel from outside (worker stop).
 */
export function runTunnel(
  client: Duplex,
  upstream: Socket,
  head: Buffer,
  upHead: Buffer,
  limits: TunnelLimits,
  onStop: (stop: () => void) => void,
  relay?: DownRelay,
): Promise<TunnelStats> {
  return new Promise((resolve) => {
    const stats: TunnelStats = { up: 0, down: 0, end: "closed" };
    let closed = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve(stats);
    };
    const onClosed = (): void => {
      if (++closed === 2) finish();
    };
    const cut = (why: TunnelEnd): void => {
      if (stats.end === "closed") stats.end = why;
      client.destroy();
      upstream.destroy();
    };
    const over = (): boolean => limits.maxBytes > 0 && stats.up + stats.down > limits.maxBytes;

    // A side fully closed takes the other with it: nothing more can be delivered either way
    // (the client's connection does not stay half-open once it sent its FIN).
    client.on("close", () => {
      upstream.destroy();
      onClosed();
    });
    upstream.on("close", () => {
      // What the client has not read yet still goes: end, not destroy.
      if (!client.destroyed && !client.writableEnded) client.end();
      onClosed();
    });
    const onError = (error: NodeJS.ErrnoException): void =>
      cut(error.code === "ECONNRESET" || error.code === "EPIPE" ? "reset" : "error");
    client.on("error", onError);
    upstream.on("error", onError);
    // Half-close: the side that finished sending lets the other know, and both go on until each
    // has said it is done.
    client.on("end", () => {
      if (!upstream.destroyed && !upstream.writableEnded) upstream.end();
    });
    upstream.on("end", () => {
      if (!client.destroyed && !client.writableEnded) client.end();
    });
    client.on("data", (chunk: Buffer) => {
      stats.up += chunk.length;
      if (over()) return cut("byte limit");
      if (!upstream.write(chunk)) client.pause();
    });
    if (relay) {
      relay.attach(client, (n) => {
        stats.down += n;
        if (!over()) return true;
        cut("byte limit");
        return false;
      });
    } else {
      upstream.on("data", (chunk: Buffer) => {
        stats.down += chunk.length;
        if (over()) return cut("byte limit");
        if (!client.write(chunk)) upstream.pause();
      });
    }
    upstream.on("drain", () => client.resume());
    client.on("drain", () => upstream.resume());
    const sock = client as Partial<Socket>;
    if (limits.idleMs > 0) {
      // Every byte either way passes through the client socket, so its idleness is the tunnel's.
      if (typeof sock.setTimeout === "function") {
        sock.setTimeout(limits.idleMs, () => cut("idle timeout"));
      } else upstream.setTimeout(limits.idleMs, () => cut("idle timeout"));
    }
    onStop(() => cut("worker stopping"));
    if (head.length > 0) {
      stats.up += head.length;
      upstream.write(head);
    }
    if (upHead.length > 0) {
      stats.down += upHead.length;
      client.write(upHead);
    }
    if (over()) cut("byte limit");
    client.resume();
    upstream.resume();
  });
}
