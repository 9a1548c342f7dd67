/**
 * Large files through a real `brigade web` worker (the Brigade HTTP/1 engine) on real sockets:
 * concurrent whole downloads and ranges checked byte for byte, clients that stop reading (the
 * worker reads only as far as the sockets take: measured by the bytes it read, /proc/<pid>/io),
 * clients that abort mid-file and a file truncated while being sent (descriptors released:
 * /proc/<pid>/fd counted before and after). One server for all (each costs seconds to start).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { RunningServer } from "../../../bench/lib/peers.ts";
import { tree } from "./harness.ts";
import { startQuick } from "./servers.ts";

const MiB = 1024 * 1024;
const linux = existsSync("/proc/self/io");

function patterned(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = ((i * 2654435761 + seed) >>> 13) & 0xff;
  return b;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** The worker of a one-worker `brigade web` (the master's only child), once it has one. */
async function workerPid(master: number): Promise<number> {
  let kids: string[] = [];
  for (let i = 0; i < 100 && kids.length === 0; i++) {
    if (i > 0) await sleep(100);
    kids = readFileSync(`/proc/${master}/task/${master}/children`, "utf8").split(/\s+/);
    kids = kids.filter((k) => k !== "");
  }
  assert.equal(kids.length, 1, `one worker expected, got ${kids.join(",")}`);
  return Number(kids[0]);
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const bytesRead = (pid: number) =>
  Number(/rchar:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/io`, "utf8"))?.[1]);

/** Poll `read` until it stops moving (three samples within `slack`), at most `tries` samples. */
async function settle(read: () => number, slack: number, tries = 100): Promise<number> {
  let last = read();
  let still = 0;
  for (let i = 0; i < tries && still < 3; i++) {
    await sleep(150);
    const now = read();
    still = Math.abs(now - last) <= slack ? still + 1 : 0;
    last = now;
  }
  return last;
}

interface Got {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One GET on its own connection, read whole (the response must close or be complete). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${extra}\r\n`);
    const parts: Buffer[] = [];
    s.on("data", (c) => parts.push(c));
    s.on("error", reject);
    s.on("close", () => {
      const all = Buffer.concat(parts);
      const end = all.indexOf("\r\n\r\n");
      const lines = all.subarray(0, end).toString("latin1").split("\r\n");
      const h: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(":");
        h[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(lines[0]!.split(" ")[1]), headers: h, body: all.subarray(end + 4) });
    });
  });
}

/** A GET whose response is not read past its first bytes (the socket paused). */
async function stalled(port: number, path: string): Promise<{ socket: Socket; head: string }> {
  const socket = connect(port, "127.0.0.1");
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  const first: Buffer = await new Promise((resolve, reject) => {
    socket.once("data", resolve);
    socket.once("error", reject);
  });
  socket.pause();
  return { socket, head: first.toString("latin1", 0, first.indexOf("\r\n\r\n")) };
}

describe("large files on the Brigade engine", { skip: !linux && "needs /proc" }, () => {
  const big = patterned(5 * MiB + 12345, 1);
  const medium = patterned(700 * 1024, 2);
  let root: string;
  let server: RunningServer;
  let worker: number;

  const cleanup: (() => unknown)[] = [];
  const ctx = { after: (fn: () => unknown) => cleanup.push(fn) };
  before(async () => {
    root = tree(ctx, { "big.bin": big, "medium.bin": medium });
    server = await startQuick(ctx, root);
    await get(server.port, "/medium.bin"); // answered: the worker is up
    worker = await workerPid(server.pid);
  });
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  it("a 5 MiB file (streamed) and a 700 KiB one (from memory), intact, by six clients at once", async () => {
    const paths = ["/big.bin", "/medium.bin", "/big.bin", "/big.bin", "/medium.bin", "/big.bin"];
    const got = await Promise.all(paths.map((p) => get(server.port, p)));
    for (const [i, g] of got.entries()) {
      const want = paths[i] === "/big.bin" ? big : medium;
      assert.equal(g.status, 200);
      assert.equal(g.headers["content-length"], String(want.length));
      assert.equal(sha(g.body), sha(want), paths[i]);
    }
  });

  it("ranges over the large file: one across chunk boundaries, a suffix, several (multipart)", async () => {
    const one = await get(server.port, "/big.bin", { range: "bytes=262000-1310000" });
    assert.equal(one.status, 206);
    assert.equal(one.headers["content-range"], `bytes 262000-1310000/${big.length}`);
    assert.equal(sha(one.body), sha(big.subarray(262000, 1310001)));
    const suffix = await get(server.port, "/big.bin", { range: "bytes=-300000" });
    assert.equal(sha(suffix.body), sha(big.subarray(big.length - 300000)));
    const multi = await get(server.port, "/big.bin", { range: "bytes=0-9,3000000-3600000,-5" });
    assert.equal(multi.status, 206);
    const boundary = /boundary=(\S+)/.exec(multi.headers["content-type"]!)![1]!;
    const parts = multi.body
      .toString("latin1")
      .split(`--${boundary}`)
      .slice(1, -1)
      .map((p) => Buffer.from(p.slice(p.indexOf("\r\n\r\n") + 4, -2), "latin1"));
    assert.deepEqual(
      parts.map((p) => sha(p)),
      [big.subarray(0, 10), big.subarray(3000000, 3600001), big.subarray(big.length - 5)].map(sha),
    );
    assert.equal(multi.headers["content-length"], String(multi.body.length));
  });

  it("clients that stop reading: the worker reads only what the sockets take, and aborts release the descriptors", async () => {
    // A sparse 256 MiB file (no disk used): four clients that read nothing past the head.
    const huge = join(root, "huge.bin");
    writeFileSync(huge, "");
    truncateSync(huge, 256 * MiB);
    await get(server.port, "/big.bin"); // warm: connections and caches settle
    const fds = await settle(() => fdCount(worker), 0);
    const readBefore = bytesRead(worker);
    const clients = await Promise.all([1, 2, 3, 4].map(() => stalled(server.port, "/huge.bin")));
    for (const c of clients) assert.match(c.head, /^HTTP\/1\.1 200 /);
    const readAfter = await settle(() => bytesRead(worker), 64 * 1024);
    // Per connection: the kernel's send and receive buffers and one 256 KiB chunk. Without
    // backpressure the worker would read the whole 1 GiB.
    const read = readAfter - readBefore;
    assert.ok(read < 4 * 48 * MiB, `the worker read ${(read / MiB).toFixed(1)} MiB`);
    assert.ok(fdCount(worker) >= fds + 8, "four sockets and four files open meanwhile");
    // The clients go mid-file: sockets and files are closed.
    for (const c of clients) c.socket.destroy();
    assert.equal(await settle(() => fdCount(worker), 0), fds);
  });

  it("a file truncated while being sent: the connection is cut short, its descriptor closed", async () => {
    const path = join(root, "shrinks.bin");
    writeFileSync(path, "");
    truncateSync(path, 128 * MiB);
    const fds = await settle(() => fdCount(worker), 0);
    const c = await stalled(server.port, "/shrinks.bin");
    assert.match(c.head, /content-length: 134217728/);
    await settle(() => bytesRead(worker), 64 * 1024);
    truncateSync(path, 40 * MiB);
    let received = 0;
    const closed = new Promise<void>((resolve) => c.socket.on("close", () => resolve()));
    c.socket.on("data", (d) => {
      received += d.length;
    });
    c.socket.resume();
    await closed;
    assert.ok(received < 128 * MiB, `received ${received}`);
    assert.equal(await settle(() => fdCount(worker), 0), fds);
  });
});
