/**
 * Buffering, the reason the web tier exists (nginx's client body buffers and proxy buffers).
 *
 * - `bufferRequestBody`: the whole request body is read from the client before the upstream is
 *   contacted: in memory up to a threshold, then in a temp file (opened and unlinked at once, so
 *   nothing is left behind whatever happens), replayable for a retry.
 * - `Spool`: the upstream's response body is read as fast as the upstream sends it, into memory
 *   up to a threshold and then into a temp file up to a bound, and handed to the client at the
 *   client's pace. Past both bounds the upstream is paused (read at the client's pace), as nginx
 *   does past `proxy_max_temp_file_size`.
 * - `watchIdle`: a between-reads timeout on a stream that only runs while the stream waits for
 *   the upstream (not while it is paused because the client is slow).
 */
import { close, closeSync, mkdirSync, openSync, read, unlinkSync, write } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { RequestBody } from "../exchange.ts";

let tempCounter = 0;

/** Open a fresh temp file for reading and writing and unlink it at once; returns the descriptor. */
export function openTemp(dir: string, kind: string): number {
  for (let attempt = 0; ; attempt++) {
    const path = join(
      dir,
      `brigade-${kind}-${process.pid}-${++tempCounter}-${Date.now().toString(36)}`,
    );
    try {
      const fd = openSync(path, "wx+", 0o600);
      try {
        unlinkSync(path);
      } catch {
        // a file we cannot unlink is still ours; it is closed when done
      }
      return fd;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && attempt === 0) {
        mkdirSync(dir, { recursive: true });
        continue;
      }
      if (code === "EEXIST" && attempt < 5) continue;
      throw err;
    }
  }
}

/** A request body held for the upstream: bytes, or a temp file of `length` bytes. */
export type BufferedBody =
  | { kind: "memory"; data: Buffer }
  | { kind: "file"; fd: number; length: number; close(): void };

function writeAll(fd: number, data: Buffer, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = 0;
    const step = (): void => {
      write(fd, data, off, data.length - off, position + off, (err, n) => {
        if (err) return reject(err);
        off += n;
        if (off < data.length) step();
        else resolve();
      });
    };
    step();
  });
}

/**
 * Read the whole body: chunks in memory until `memoryLimit`, then everything into a temp file in
 * `dir`. Rejects with the body's own error (the engine's 413, 408 or 400).
 */
export async function bufferRequestBody(
  body: RequestBody,
  memoryLimit: number,
  dir: string,
): Promise<BufferedBody> {
  const chunks: Buffer[] = [];
  let size = 0;
  let fd: number | undefined;
  try {
    for await (const c of body.stream()) {
      const chunk = c as Buffer;
      if (fd === undefined && size + chunk.length <= memoryLimit) {
        chunks.push(chunk);
        size += chunk.length;
        continue;
      }
      if (fd === undefined) {
        fd = openTemp(dir, "body");
        const head = Buffer.concat(chunks);
        chunks.length = 0;
        await writeAll(fd, head, 0);
      }
      await writeAll(fd, chunk, size);
      size += chunk.length;
    }
  } catch (err) {
    if (fd !== undefined) close(fd, () => {});
    throw err;
  }
  if (fd === undefined)
    return { kind: "memory", data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) };
  const descriptor = fd;
  let closed = false;
  return {
    kind: "file",
    fd: descriptor,
    length: size,
    close() {
      if (closed) return;
      closed = true;
      close(descriptor, () => {});
    },
  };
}

/**
 * A fresh stream over a buffered file body, from its start (one per attempt: a retry replays it).
 * Positional reads on a descriptor it does not own: destroying the stream (undici does, once
 * sent or on an error) leaves the file open for the next attempt; `close()` on the body ends it.
 */
export function fileBodyStream(body: { fd: number; length: number }): Readable {
  let position = 0;
  return new Readable({
    highWaterMark: READ_CHUNK,
    read() {
      const n = Math.min(READ_CHUNK, body.length - position);
      if (n <= 0) {
        this.push(null);
        return;
      }
      const buf = Buffer.allocUnsafe(n);
      read(body.fd, buf, 0, n, position, (err, got) => {
        if (err) return this.destroy(err);
        if (got === 0)
          return this.destroy(new Error("request body temp file shorter than written"));
        position += got;
        this.push(got === n ? buf : buf.subarray(0, got));
      });
    },
  });
}

interface Watched {
  stream: Readable;
  ms: number;
  last: number;
  onTimeout: () => Error;
}

/**
 * Between-reads timeouts for many streams on one timer (per location), rather than a timer per
 * request: a stream is failed with `onTimeout()` when it has waited more than `ms` for data.
 * The clock only runs while the stream is flowing (a consumer wants data); while it is paused
 * (the client is slow, or the spool is full) it is not the upstream's fault. Precision: the
 * sweep's interval (a quarter of the shortest timeout, 50 ms to 1 s).
 */
export class IdleSweep {
  private readonly watched = new Set<Watched>();
  private readonly interval: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(shortestMs: number) {
    this.interval = Math.max(50, Math.min(1000, Math.floor(shortestMs / 4)));
  }

  /** Watch `stream`; returns a function that stops watching (also done at its end or close). */
  watch(stream: Readable, ms: number, onTimeout: () => Error): () => void {
    if (ms <= 0) return () => {};
    const w: Watched = { stream, ms, last: performance.now(), onTimeout };
    const onData = (): void => {
      w.last = performance.now();
    };
    const stop = (): void => {
      this.watched.delete(w);
      stream.off("data", onData);
    };
    stream.on("data", onData);
    stream.once("end", stop);
    stream.once("close", stop);
    this.watched.add(w);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sweep(), this.interval);
      this.timer.unref();
    }
    return stop;
  }

  private sweep(): void {
    const now = performance.now();
    for (const w of this.watched) {
      if (w.stream.isPaused() || w.stream.readableFlowing === false) {
        w.last = now;
        continue;
      }
      if (now - w.last >= w.ms) {
        this.watched.delete(w);
        w.stream.destroy(w.onTimeout());
      }
    }
    if (this.watched.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

export interface SpoolOptions {
  /** Bytes held in memory. */
  memory: number;
  /** Bytes that may wait in the temp file; 0: no file. */
  file: number;
  /** Where the temp file goes. */
  dir: string;
  /** Called once the upstream body has been read to its end (the upstream is free). */
  onUpstreamEnd?: () => void;
}

const READ_CHUNK = 64 * 1024;

/**
 * The response body between a fast upstream and a slow client: a Readable for the engine, fed
 * from `source` as fast as it comes. Data sits, in order, in three places: `head` (memory), the
 * temp file (written at `fileEnd`, read at `fileRead`), and `tail` (memory, only while the file
 * is full or off; the source is paused then).
 */
export class Spool extends Readable {
  private readonly source: Readable;
  private readonly opts: SpoolOptions;
  private head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private fd: number | undefined;
  /** File bytes committed (written) / queued for writing / read back. */
  private fileWritten = 0;
  private fileEnd = 0;
  private fileRead = 0;
  private writeQueue: Buffer[] = [];
  private writing = false;
  private reading = false;
  private wanted = false;
  private ended = false;
  private pausedSource = false;
  /** Bytes received from the upstream so far. */
  received = 0;

  constructor(source: Readable, initial: Buffer[], opts: SpoolOptions) {
    super({ highWaterMark: READ_CHUNK });
    this.source = source;
    this.opts = opts;
    for (const c of initial) this.accept(c);
    source.on("data", (c: Buffer) => this.accept(c));
    source.once("end", () => {
      this.ended = true;
      this.opts.onUpstreamEnd?.();
      this.pump();
    });
    source.once("error", (err) => this.destroy(err));
    source.once("close", () => {
      if (!this.ended && !this.destroyed) this.destroy(new Error("upstream body closed early"));
    });
    source.resume();
  }

  private get fileHasData(): boolean {
    return this.fileEnd > this.fileRead;
  }

  private accept(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.tailBytes > 0 || this.destroyed) {
      this.toTail(chunk);
    } else if (!this.fileHasData && this.headBytes + chunk.length <= this.opts.memory) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
    } else if (
      this.opts.file > 0 &&
      this.fileEnd - this.fileRead + chunk.length <= this.opts.file
    ) {
      this.toFile(chunk);
    } else {
      this.toTail(chunk);
    }
    this.pump();
  }

  private toTail(chunk: Buffer): void {
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    if (!this.pausedSource) {
      this.pausedSource = true;
      this.source.pause();
    }
  }

  private toFile(chunk: Buffer): void {
    if (this.fd === undefined) {
      try {
        this.fd = openTemp(this.opts.dir, "response");
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
    }
    this.writeQueue.push(chunk);
    this.fileEnd += chunk.length;
    this.flush();
  }

  private flush(): void {
    if (this.writing || this.writeQueue.length === 0 || this.fd === undefined) return;
    const data =
      this.writeQueue.length === 1 ? this.writeQueue[0]! : Buffer.concat(this.writeQueue);
    this.writeQueue = [];
    this.writing = true;
    writeAll(this.fd, data, this.fileWritten).then(
      () => {
        this.writing = false;
        this.fileWritten += data.length;
        this.pump();
        this.flush();
      },
      (err: Error) => this.destroy(err),
    );
  }

  override _read(): void {
    this.wanted = true;
    this.pump();
  }

  private pump(): void {
    while (this.wanted && !this.destroyed) {
      if (this.head.length > 0) {
        const c = this.head.shift()!;
        this.headBytes -= c.length;
        this.wanted = this.push(c);
        continue;
      }
      if (this.fileHasData) {
        if (this.reading || this.fileRead >= this.fileWritten) return; // wait for the write
        this.readFile();
        return;
      }
      if (this.tail.length > 0) {
        // The head and the file are empty: the tail is now the front.
        this.head = this.tail;
        this.headBytes = this.tailBytes;
        this.tail = [];
        this.tailBytes = 0;
        this.fileEnd = this.fileRead = this.fileWritten = 0;
        continue;
      }
      if (this.pausedSource && !this.ended) {
        this.pausedSource = false;
        this.source.resume();
      }
      if (this.ended && this.writeQueue.length === 0 && !this.writing) {
        this.wanted = false;
        this.push(null);
      }
      return;
    }
  }

  private readFile(): void {
    const fd = this.fd!;
    const n = Math.min(READ_CHUNK, this.fileWritten - this.fileRead);
    const buf = Buffer.allocUnsafe(n);
    this.reading = true;
    read(fd, buf, 0, n, this.fileRead, (err, got) => {
      this.reading = false;
      if (this.destroyed) return;
      if (err) return this.destroy(err);
      if (got === 0) return this.destroy(new Error("temp file shorter than written"));
      this.fileRead += got;
      if (!this.fileHasData && !this.writing) {
        // Everything written was read back: write from the start again.
        this.fileEnd = this.fileRead = this.fileWritten = 0;
      }
      this.wanted = this.push(got === n ? buf : buf.subarray(0, got));
      this.pump();
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.source.destroyed && !this.source.readableEnded) this.source.destroy();
    if (this.fd !== undefined) {
      const fd = this.fd;
      this.fd = undefined;
      // A write or read in flight still holds the descriptor: close after it.
      const closeLater = (): void => {
        if (this.writing || this.reading) setTimeout(closeLater, 5).unref();
        else closeSync(fd);
      };
      closeLater();
    }
    this.head = [];
    this.tail = [];
    cb(err);
  }
}
