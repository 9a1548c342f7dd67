/**
 * How to write a file range to a socket from Node (which has no sendfile): `node bench/fileSend.ts
 * [--size 1m] [--mib 2048] [--rounds 3]`. Each strategy sends the same cached file again and again
 * over a loopback connection to a reader that discards, until `--mib` MiB went through; reported:
 * throughput and CPU time (user+system, this process) per MiB, median of the rounds.
 *
 * - `stream`:   fs.createReadStream(fd, {start, end}) piped to the socket (node:http's way);
 * - `fresh`:    fs.read 64 KiB at a time into a new buffer, write, wait for drain when full;
 * - `fresh256k`: the same, 256 KiB at a time (what the engine does for ranges over 64 KiB);
 * - `reused`:   fs.read into two 64 KiB buffers used in turn, each reused once its write is done;
 * - `pooled256k`: what the engine does since 2026-12-01 (b): one 256 KiB buffer from a pool,
 *               the next read once the socket has taken the whole previous chunk (its callback);
 * - `whole`:    one fs.read of the whole range into one buffer, one write (what the engine does
 *               for ranges up to 256 KiB, with the head in the same writev).
 */
import {
  closeSync,
  createReadStream,
  mkdtempSync,
  openSync,
  read,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BufferPool } from "../src/webserver/engine/h1/bufferPool.ts";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "1m" },
    mib: { type: "string", default: "2048" },
    rounds: { type: "string", default: "3" },
  },
});
const size = /^(\d+)([km]?)$/i.exec(values.size)!;
const fileSize = Number(size[1]) * (size[2] === "m" ? 2 ** 20 : size[2] === "k" ? 1024 : 1);
const totalBytes = Number(values.mib) * 2 ** 20;
const CHUNK = 64 * 1024;

const dir = mkdtempSync(join(tmpdir(), "brigade-filesend-"));
const file = join(dir, "f");
writeFileSync(file, Buffer.alloc(fileSize, 0x61));
const fd = openSync(file, "r");

type Strategy = (socket: Socket, done: () => void) => void;

const readAt = (buf: Buffer, len: number, pos: number) =>
  new Promise<number>((resolve, reject) =>
    read(fd, buf, 0, len, pos, (err, n) => (err ? reject(err) : resolve(n))),
  );

const drained = (s: Socket) => new Promise<void>((r) => s.once("drain", r));

function fresh(chunk: number): Strategy {
  return (socket, done) => {
    void (async () => {
      for (let pos = 0; pos < fileSize; ) {
        const want = Math.min(chunk, fileSize - pos);
        const buf = Buffer.allocUnsafe(want);
        const n = await readAt(buf, want, pos);
        pos += n;
        if (!socket.write(n === want ? buf : buf.subarray(0, n))) await drained(socket);
      }
      done();
    })();
  };
}

const strategies: Record<string, Strategy> = {
  stream(socket, done) {
    const rs = createReadStream("", {
      fd,
      start: 0,
      end: fileSize - 1,
      autoClose: false,
      highWaterMark: CHUNK,
    });
    rs.pipe(socket, { end: false });
    rs.once("end", done);
  },
  fresh: fresh(CHUNK),
  fresh256k: fresh(256 * 1024),
  reused(socket, done) {
    const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    const free: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
    void (async () => {
      let k = 0;
      for (let pos = 0; pos < fileSize; k ^= 1) {
        await free[k];
        const want = Math.min(CHUNK, fileSize - pos);
        const n = await readAt(bufs[k]!, want, pos);
        pos += n;
        const chunk = n === CHUNK ? bufs[k]! : bufs[k]!.subarray(0, n);
        free[k] = new Promise<void>((r) => socket.write(chunk, () => r()));
      }
      await Promise.all(free);
      done();
    })();
  },
  pooled256k(socket, done) {
    const pool = new BufferPool(256 * 1024, 16);
    let pos = 0;
    const step = (): void => {
      if (pos >= fileSize) {
        done();
        return;
      }
      const want = Math.min(pool.size, fileSize - pos);
      const buf = pool.acquire();
      read(fd, buf, 0, want, pos, (err, n) => {
        if (err) throw err;
        pos += n;
        socket.write(n === buf.length ? buf : buf.subarray(0, n), () => {
          pool.release(buf);
          step();
        });
      });
    };
    step();
  },
  whole(socket, done) {
    void (async () => {
      const buf = Buffer.allocUnsafe(fileSize);
      let got = 0;
      while (got < fileSize) got += await readAt(buf.subarray(got), fileSize - got, got);
      if (!socket.write(buf)) await drained(socket);
      done();
    })();
  },
};

async function run(
  name: string,
  strategy: Strategy,
): Promise<{ mibps: number; cpuMsPerMib: number }> {
  const sink = createServer((s) => s.resume());
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
  const port = (sink.address() as { port: number }).port;
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((r) => socket.once("connect", r));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const next = () => {
      if (sent >= totalBytes) {
        resolve();
        return;
      }
      sent += fileSize;
      strategy(socket, next);
    };
    next();
  });
  await new Promise<void>((r) => (socket.writableLength === 0 ? r() : socket.once("drain", r)));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  socket.destroy();
  sink.close();
  const mib = sent / 2 ** 20;
  void name;
  return { mibps: mib / (ms / 1000), cpuMsPerMib: (cpu.user + cpu.system) / 1000 / mib };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: string[] = [];
try {
  const results: Record<string, { mibps: number[]; cpu: number[] }> = {};
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const [name, s] of Object.entries(strategies)) {
      const x = await run(name, s);
      results[name] ??= { mibps: [], cpu: [] };
      results[name].mibps.push(x.mibps);
      results[name].cpu.push(x.cpuMsPerMib);
    }
  }
  for (const [name, x] of Object.entries(results)) {
    rows.push(`| ${name} | ${median(x.mibps).toFixed(0)} | ${median(x.cpu).toFixed(2)} |`);
  }
} finally {
  closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(
  `\n### writing a ${values.size} file range, ${values.mib} MiB per strategy, median of ${values.rounds}\n\n| strategy | MiB/s | CPU ms per MiB |\n|---|---:|---:|\n${rows.join("\n")}\n`,
);
