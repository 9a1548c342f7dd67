/**
 * WebSocket and other upgrades, tunnelled both ways once the upstream said 101: bytes are piped
 * each way with backpressure, the first bytes of each side (what came after the heads) go first,
 * and the tunnel ends when either side ends or errors, or when nothing moved either way for the
 * stream timeout (long-lived, so not the read timeout of ordinary requests).
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";

export interface TunnelEnds {
  client: Duplex;
  /** Bytes the client sent after its request head. */
  clientHead: Buffer;
  upstream: Socket;
  /** Bytes the upstream sent after its 101 head. */
  upstreamHead: Buffer;
  /** Idle time before the tunnel is closed; 0: never. */
  idleMs: number;
  /** Called once, when both sides are closed; `error` when it ended by an error or the timeout. */
  onEnd(info: { error: string | undefined; bytesUp: number; bytesDown: number }): void;
}

export function tunnel(t: TunnelEnds): void {
  const { client, upstream } = t;
  let lastActivity = performance.now();
  let bytesUp = 0;
  let bytesDown = 0;
  let error: string | undefined;
  let ended = false;
  let timer: NodeJS.Timeout | undefined;

  const finish = (): void => {
    if (ended) return;
    ended = true;
    clearInterval(timer);
    client.destroy();
    upstream.destroy();
    t.onEnd({ error, bytesUp, bytesDown });
  };

  upstream.setNoDelay(true);
  upstream.setTimeout(0);
  (client as Partial<Socket>).setNoDelay?.(true);
  (client as Partial<Socket>).setTimeout?.(0);

  if (t.upstreamHead.length > 0) {
    bytesDown += t.upstreamHead.length;
    client.write(t.upstreamHead);
  }
  if (t.clientHead.length > 0) {
    bytesUp += t.clientHead.length;
    upstream.write(t.clientHead);
  }

  const relay = (from: Duplex, to: Duplex, up: boolean): void => {
    from.on("data", (chunk: Buffer) => {
      lastActivity = performance.now();
      if (up) bytesUp += chunk.length;
      else bytesDown += chunk.length;
      if (!to.write(chunk)) {
        from.pause();
        to.once("drain", () => from.resume());
      }
    });
    // A half-close is passed on (sockets without allowHalfOpen then close by themselves).
    from.once("end", () => {
      if (!to.destroyed) to.end();
    });
    from.once("error", (err) => {
      error ??= `${up ? "client" : "upstream"}: ${err.message}`;
      finish();
    });
    // One side gone: let the other flush what it was given, then close it too.
    from.once("close", () => {
      if (ended) return;
      if (to.destroyed) return finish();
      to.end();
      setTimeout(finish, 5000).unref();
    });
  };
  relay(client, upstream, true);
  relay(upstream, client, false);
  if (t.idleMs > 0) {
    timer = setInterval(
      () => {
        if (performance.now() - lastActivity >= t.idleMs) {
          error ??= `idle for ${Math.round(t.idleMs / 1000)}s (proxyStreamTimeout)`;
          finish();
        }
      },
      Math.max(50, Math.min(t.idleMs / 4, 30_000)),
    );
    timer.unref();
  }
}
