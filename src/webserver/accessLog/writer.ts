/**
 * A buffered, append-only log file shared by every location of a pipeline that logs to it:
 * lines gather in memory up to `buffer` bytes or `flush` seconds, then go out in one write
 * (nginx's `access_log ... buffer= flush=`). Writes are asynchronous and never overlap; each
 * is whole lines, so with O_APPEND the lines of several workers never interleave. `reopen()`
 * (USR1) flushes, then reopens the path for log rotation; `close()` flushes synchronously.
 */
import { closeSync, openSync, write, writeSync } from "node:fs";

export class LogWriter {
  readonly path: string;
  private fd: number;
  private bufferSize: number;
  private flushMs: number;
  private pending: string[] = [];
  private pendingBytes = 0;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Lines lost to write errors (a full disk), for the error log. */
  dropped = 0;
  private readonly onError: (error: Error) => void;

  constructor(path: string, buffer: number, flushSeconds: number, onError: (error: Error) => void) {
    this.path = path;
    this.fd = path === "-" ? 1 : openSync(path, "a");
    this.bufferSize = buffer;
    this.flushMs = Math.max(1, flushSeconds * 1000);
    this.onError = onError;
  }

  /** Another location logs to the same file: the smaller buffer and the shorter flush win. */
  tighten(buffer: number, flushSeconds: number): void {
    this.bufferSize = Math.min(this.bufferSize, buffer);
    this.flushMs = Math.min(this.flushMs, Math.max(1, flushSeconds * 1000));
  }

  /** Add one line (with its newline). */
  write(line: string): void {
    if (this.closed) return;
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (this.pendingBytes >= this.bufferSize) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.flushMs);
      this.timer.unref();
    }
  }

  /** Start writing what is pending (if no write is under way). */
  flush(): void {
    if (this.writing || this.pending.length === 0) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const data = Buffer.from(this.pending.join(""));
    const lines = this.pending.length;
    this.pending = [];
    this.pendingBytes = 0;
    this.writing = true;
    const fd = this.fd;
    const writeAll = (offset: number): void => {
      write(fd, data, offset, data.length - offset, null, (error, n) => {
        if (error) {
          this.dropped += lines;
          this.writing = false;
          this.onError(error);
          return;
        }
        if (offset + n < data.length) {
          writeAll(offset + n);
          return;
        }
        this.writing = false;
        if (this.pendingBytes >= this.bufferSize || this.closed) this.flush();
        else if (this.pending.length > 0 && this.timer === undefined) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.flush();
          }, this.flushMs);
          this.timer.unref();
        }
      });
    };
    writeAll(0);
  }

  /** Write everything pending now, synchronously (stop, reopen). */
  private flushSync(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return;
    const data = Buffer.from(this.pending.join(""));
    this.pending = [];
    this.pendingBytes = 0;
    try {
      let off = 0;
      while (off < data.length) off += writeSync(this.fd, data, off);
    } catch (error) {
      this.onError(error as Error);
    }
  }

  /** USR1: write what is pending to the old file, then open the path again. */
  reopen(): void {
    if (this.path === "-" || this.closed) return;
    this.flushSync();
    const old = this.fd;
    try {
      this.fd = openSync(this.path, "a");
    } catch (error) {
      this.onError(error as Error);
      return;
    }
    // An async write still holding the old descriptor finishes on it; close it after.
    if (this.writing) setTimeout(() => closeSync(old), 1000).unref();
    else closeSync(old);
  }

  close(): void {
    if (this.closed) return;
    this.flushSync();
    this.closed = true;
    if (this.path !== "-" && !this.writing) closeSync(this.fd);
  }
}
