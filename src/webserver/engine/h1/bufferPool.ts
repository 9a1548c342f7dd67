/**
 * The buffers file bodies are read into, reused (one pool per worker process). A connection
 * sending a file holds at most one buffer at a time: it takes one, reads a chunk into it, writes
 * it, and gives it back when the socket has taken the whole chunk (the write's callback), and
 * only then reads the next chunk. So a worker's file buffers are bounded by the connections
 * sending files at that moment (one chunk each), never by the files' sizes, and a steady load
 * allocates nothing: without the pool, every 256 KiB chunk was a new buffer, freed by the GC
 * long after (a 1 MiB file at 64 connections grew a worker to hundreds of MiB of RSS).
 *
 * At most `keep` idle buffers are kept; a buffer given back beyond that is left to the GC.
 */
export class BufferPool {
  readonly size: number;
  readonly keep: number;
  readonly #idle: Buffer[] = [];
  /** Buffers handed out and not given back yet. */
  inUse = 0;
  /** Buffers ever allocated (for tests and metrics). */
  allocated = 0;

  constructor(size: number, keep: number) {
    this.size = size;
    this.keep = keep;
  }

  /** A buffer of `size` bytes (contents undefined). */
  acquire(): Buffer {
    this.inUse++;
    const b = this.#idle.pop();
    if (b !== undefined) return b;
    this.allocated++;
    // Not from Node's shared slab (too large for it anyway): a buffer of its own, reusable.
    return Buffer.allocUnsafeSlow(this.size);
  }

  /** Give `buf` back: nothing may read or write it any more (the socket has written it). */
  release(buf: Buffer): void {
    this.inUse--;
    if (this.#idle.length < this.keep && buf.length === this.size) this.#idle.push(buf);
  }

  /** Idle buffers held. */
  get idle(): number {
    return this.#idle.length;
  }
}

/**
 * The buffers of file bodies: 256 KiB chunks (bench/fileSend.ts: the cheapest per MiB) for up to
 * `largeInUse` connections at a time, 32 KiB chunks beyond (nginx's `output_buffers 2 32k`), so
 * that a worker's file buffers stay within 16 MiB plus 32 KiB per further connection sending a
 * file at that moment, however many they are; clients that stop reading (each holding its chunk
 * until the send timeout) slow the others down to small chunks, never stop them.
 */
export class FileBuffers {
  readonly large: BufferPool;
  readonly small: BufferPool;
  readonly largeInUse: number;

  constructor(largeInUse: number) {
    this.large = new BufferPool(256 * 1024, 16);
    this.small = new BufferPool(32 * 1024, 64);
    this.largeInUse = largeInUse;
  }

  acquire(): Buffer {
    return this.large.inUse < this.largeInUse ? this.large.acquire() : this.small.acquire();
  }

  release(buf: Buffer): void {
    (buf.length === this.large.size ? this.large : this.small).release(buf);
  }

  /** Buffers handed out and not given back yet. */
  get inUse(): number {
    return this.large.inUse + this.small.inUse;
  }

  /** Buffers ever allocated. */
  get allocated(): number {
    return this.large.allocated + this.small.allocated;
  }
}

/** The worker's file buffers: 256 KiB chunks for 64 connections at a time (16 MiB). */
export const fileBuffers = new FileBuffers(64);
