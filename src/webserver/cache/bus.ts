/**
 * The cache's worker-to-worker channel: each worker of a zone listens on a unix socket in one
 * rendezvous directory, and a worker that purges, invalidates after an unsafe method, or
 * finishes a collapsed fill tells the others, so that their memory tiers drop the same records
 * and their waiters look again at once. The process core has no worker-to-worker messages, and
 * this needs none: the directory is the membership list (a socket file per live worker; one that
 * refuses connections belonged to a dead worker and is removed).
 *
 * Messages are JSON lines. One with an `id` is acknowledged with `{"ack": id}` once handled, so
 * a purge answers only after every worker has dropped its copies.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, rmdirSync, unlinkSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { threadId } from "node:worker_threads";

export type BusMessage =
  | { t: "delete"; key: string }
  | { t: "invalidate"; key: string; at: number }
  | { t: "deleteTag"; tag: string }
  | { t: "invalidateTag"; tag: string; at: number }
  | { t: "filled"; key: string; variant: string };

type Wire = BusMessage & { id?: number };

/** Where a zone's workers meet: inside the cache dir when the socket path fits, else in tmp. */
export function busDir(zoneId: string, cacheDir: string | undefined): string {
  if (cacheDir !== undefined && cacheDir.length < 70) return join(cacheDir, "bus");
  const h = createHash("sha256").update(zoneId).digest("hex").slice(0, 16);
  return join(tmpdir(), `brigade-cache-${h}`);
}

export class PeerBus {
  readonly dir: string;
  readonly #self: string;
  readonly #server: Server;
  readonly #peers = new Map<string, Socket>();
  readonly #waiting = new Map<number, () => void>();
  #seq = 0;
  #closed = false;

  private constructor(dir: string, server: Server) {
    this.dir = dir;
    this.#self = `${process.pid}-${threadId}.sock`;
    this.#server = server;
  }

  static async open(
    dir: string,
    handle: (m: BusMessage) => Promise<void> | void,
  ): Promise<PeerBus> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const server = createServer((sock) => {
      let buf = "";
      sock.setEncoding("utf8");
      sock.on("error", () => {});
      sock.on("data", (chunk: string) => {
        buf += chunk;
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          nl = buf.indexOf("\n");
          let msg: Wire;
          try {
            msg = JSON.parse(line) as Wire;
          } catch {
            continue;
          }
          void Promise.resolve()
            .then(() => handle(msg))
            .catch(() => {})
            .then(() => {
              if (msg.id !== undefined && !sock.destroyed)
                sock.write(`${JSON.stringify({ ack: msg.id })}\n`);
            });
        }
      });
    });
    server.unref();
    const bus = new PeerBus(dir, server);
    const path = join(dir, bus.#self);
    try {
      unlinkSync(path);
    } catch {
      // not there
    }
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    return bus;
  }

  /** Send to every other worker; with `ack`, resolve once each has handled it (or 2 s passed). */
  async broadcast(msg: BusMessage, ack = false): Promise<void> {
    if (this.#closed) return;
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith(".sock") && n !== this.#self);
    } catch {
      return;
    }
    await Promise.all(names.map((n) => this.#send(n, msg, ack)));
  }

  async #send(name: string, msg: BusMessage, ack: boolean): Promise<void> {
    const sock = await this.#connect(name);
    if (sock === undefined) return;
    const wire: Wire = ack ? { ...msg, id: ++this.#seq } : msg;
    if (!ack) {
      sock.write(`${JSON.stringify(wire)}\n`);
      return;
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiting.delete(wire.id!);
        sock.off("close", done);
        resolve();
      };
      const timer = setTimeout(done, 2000);
      this.#waiting.set(wire.id!, done);
      sock.once("close", done);
      sock.write(`${JSON.stringify(wire)}\n`);
    });
  }

  #connect(name: string): Promise<Socket | undefined> {
    const open = this.#peers.get(name);
    if (open && !open.destroyed) return Promise.resolve(open);
    const path = join(this.dir, name);
    return new Promise((resolve) => {
      const sock = createConnection(path);
      sock.unref();
      sock.setEncoding("utf8");
      let buf = "";
      sock.on("data", (chunk: string) => {
        buf += chunk;
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          nl = buf.indexOf("\n");
          try {
            const { ack } = JSON.parse(line) as { ack: number };
            this.#waiting.get(ack)?.();
          } catch {
            // ignore a bad line
          }
        }
      });
      sock.once("connect", () => {
        this.#peers.set(name, sock);
        resolve(sock);
      });
      sock.once("error", (e: NodeJS.ErrnoException) => {
        this.#peers.delete(name);
        if (e.code === "ECONNREFUSED" || e.code === "ENOENT") {
          try {
            unlinkSync(path); // a dead worker's socket
          } catch {
            // gone already
          }
        }
        resolve(undefined);
      });
      sock.once("close", () => {
        if (this.#peers.get(name) === sock) this.#peers.delete(name);
      });
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#peers.values()) s.destroy();
    this.#server.close();
    try {
      unlinkSync(join(this.dir, this.#self)); // closing the server may have done it already
    } catch {
      // gone
    }
    try {
      rmdirSync(this.dir); // the last worker out removes the directory
    } catch {
      // other workers are still there
    }
  }
}
