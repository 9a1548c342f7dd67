/**
 * CONNECT tunnels relay downloads through a read buffer shared by every tunnel of the worker
 * (tunnel.ts, DownRelay): a write to a slow client left queued must never see its bytes
 * overwritten by another tunnel's next read. Fast and slow clients download distinct streams at
 * once; each must get exactly its own.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import net from "node:net";
import { test } from "node:test";
import { rawConnect, startProxy } from "./harness.ts";

const SIZE = 4 * 1024 * 1024;

/** The stream for `label`: SIZE bytes that differ per label and per position. */
function pattern(label: number): Buffer {
  const b = Buffer.allocUnsafe(SIZE);
  let x = (label + 1) * 2654435761;
  for (let i = 0; i < SIZE; i += 4) {
    x = (x * 1103515245 + 12345) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

for (const engine of ["brigade", "node"] as const) {
  test(`tunnels (engine ${engine}): slow and fast downloads at once each get their own bytes, unchanged`, async (t) => {
    const streams = [0, 1, 2, 3, 4, 5].map(pattern);
    const sockets = new Set<net.Socket>();
    const origin = net.createServer((s) => {
      sockets.add(s);
      s.on("error", () => {});
      s.once("data", (c: Buffer) => {
        // In pieces, so that every tunnel reads many times while the others do.
        const data = streams[c[0]!]!;
        let at = 0;
        const more = (): void => {
          while (at < data.length) {
            const ok = s.write(data.subarray(at, at + 16_384));
            at += 16_384;
            if (!ok) return void s.once("drain", more);
          }
          s.end();
        };
        more();
      });
    });
    await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
    t.after(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          origin.close(() => r());
        }),
    );
    const port = (origin.address() as net.AddressInfo).port;
    const proxy = await startProxy(
      t,
      {
        forwardProxy: true,
        forwardAllowDestinations: ["127.0.0.0/8"],
        forwardConnectPorts: [port],
      },
      {},
      { engine },
    );
    const results = await Promise.all(
      streams.map(async (_, label) => {
        const c = await rawConnect(
          t,
          proxy.port,
          `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`,
        );
        assert.equal(c.status, 200, c.head);
        const slow = label % 2 === 1;
        const got: Buffer[] = [c.rest];
        const done = new Promise<Buffer>((resolve, reject) => {
          c.socket.on("data", (d: Buffer) => {
            got.push(d);
            // A slow reader: pauses often, so the proxy's writes to it are left queued.
            if (slow) {
              c.socket.pause();
              setTimeout(() => c.socket.resume(), 3);
            }
          });
          c.socket.on("end", () => resolve(Buffer.concat(got)));
          c.socket.on("error", reject);
        });
        if (slow) c.socket.pause();
        c.socket.write(Buffer.from([label]));
        if (slow) setTimeout(() => c.socket.resume(), 200);
        return done;
      }),
    );
    results.forEach((r, label) => {
      assert.equal(r.length, SIZE, `tunnel ${label}: length`);
      assert.equal(sha(r), sha(streams[label]!), `tunnel ${label}: bytes`);
    });
  });
}
