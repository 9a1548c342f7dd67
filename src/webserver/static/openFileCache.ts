/**
 * Looking files up, with nginx's `open_file_cache` and more: what is cached per path is the
 * file's facts (type, size, times, validators, whether the symlink policy allows it, or the error
 * its lookup gave), and, for files up to `maxFileSize`, the content itself, so a hot small or
 * medium file costs no system call at all until it is revalidated. The content held is bounded
 * in total by `maxBytes` (least recently used entries go first), so memory stays bounded however
 * many files are served; nginx leaves this to the page cache, which Node cannot send from
 * without copying (no sendfile), so holding hot files here is what serves them at its rate.
 *
 * Revalidation: an entry older than `valid` is checked with one `stat` before it is used; a
 * changed file (device, inode, size, mtime or ctime) is loaded again, so edits show up within
 * `valid`. Entries not used for `inactive` are dropped, and at most `max` entries are kept
 * (least recently used go first). With `max` 0 nothing is cached and every request looks again.
 *
 * Files are opened with O_NONBLOCK (a FIFO in the tree must not hang a thread) and only regular
 * files and directories are served.
 */
import { close as closeFd, constants, fstat, open, read, type Stats, stat } from "node:fs";
import { promisify } from "node:util";
import { fileEtag, httpDate } from "./conditional.ts";

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);
const statAsync = promisify(stat);
const readAsync = promisify(read);
const closeAsync = promisify(closeFd);

const openFlags = constants.O_RDONLY | constants.O_NONBLOCK;

/** What a lookup found. */
export type Lookup = Found | Missing;

export interface Found {
  readonly ok: true;
  readonly path: string;
  readonly directory: boolean;
  readonly size: number;
  readonly mtimeMs: number;
  /** nginx-format strong ETag. */
  readonly etag: string;
  /** The Last-Modified value. */
  readonly lastModified: string;
  /** Whether the symlink policy lets this path be served. */
  readonly allowed: boolean;
  /** The whole content, when the file is small enough to be cached in memory. */
  readonly data: Buffer | undefined;
  readonly dev: number;
  readonly ino: number;
  readonly ctimeMs: number;
}

export interface Missing {
  readonly ok: false;
  readonly path: string;
  /** `ENOENT`, `ENOTDIR`, `EACCES`, `ENAMETOOLONG`, `ELOOP`, `EISDIR`..., or `ESPECIAL` for a file that is neither regular nor a directory. */
  readonly code: string;
}

/** Checks a freshly opened path against the symlink policy. */
export type Verify = (path: string, fd: number) => Promise<boolean>;

export interface OpenFileCacheOptions {
  /** Entries kept at most; 0 disables caching. */
  readonly max: number;
  readonly inactiveMs: number;
  readonly validMs: number;
  /** Files up to this size are kept in memory. */
  readonly maxFileSize: number;
  /** Content held in memory at most, all entries together (default: unbounded). */
  readonly maxBytes?: number;
  readonly verify: Verify;
}

interface Entry {
  lookup: Lookup;
  checkedAt: number;
  usedAt: number;
}

/** A file opened for one response: the caller owns `fd` (and must close it or hand it over). */
export interface Opened {
  readonly found: Found;
  readonly fd: number;
}

function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : "EIO";
}

function factsOf(path: string, st: Stats, allowed: boolean, data: Buffer | undefined): Found {
  return {
    ok: true,
    path,
    directory: st.isDirectory(),
    size: st.size,
    mtimeMs: st.mtimeMs,
    etag: fileEtag(st.mtimeMs, st.size),
    lastModified: httpDate(st.mtimeMs),
    allowed,
    data,
    dev: st.dev,
    ino: st.ino,
    ctimeMs: st.ctimeMs,
  };
}

function sameFile(f: Found, st: Stats): boolean {
  return (
    f.ino === st.ino &&
    f.dev === st.dev &&
    f.size === st.size &&
    f.mtimeMs === st.mtimeMs &&
    f.ctimeMs === st.ctimeMs
  );
}

async function readWhole(fd: number, size: number): Promise<Buffer | undefined> {
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < size) {
    const { bytesRead } = await readAsync(fd, buf, off, size - off, off);
    if (bytesRead === 0) return undefined; // shrank while we read: look again
    off += bytesRead;
  }
  return buf;
}

export class OpenFileCache {
  readonly #options: OpenFileCacheOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #loading = new Map<string, Promise<Lookup>>();
  /** Revalidations in flight: the requests that find an entry stale meanwhile share its stat. */
  readonly #checking = new Map<string, { found: Found; same: Promise<boolean> }>();
  #sweeper: NodeJS.Timeout | undefined;
  /** Content bytes held by the entries. */
  #bytes = 0;

  constructor(options: OpenFileCacheOptions) {
    this.#options = options;
  }

  /** Number of entries held (for tests and metrics). */
  get size(): number {
    return this.#entries.size;
  }

  /** Content bytes held in memory (for tests and metrics). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether `path` has an entry (for tests). */
  has(path: string): boolean {
    return this.#entries.has(path);
  }

  /**
   * Whether `path` is still the file `found` describes (false when gone or unreadable: the load
   * that follows says why). One stat per entry going stale, however many requests find it stale
   * before the stat is back (every connection of a busy worker, at each `valid` interval).
   */
  #unchanged(path: string, found: Found): Promise<boolean> {
    const inFlight = this.#checking.get(path);
    if (inFlight !== undefined && inFlight.found === found) return inFlight.same;
    const same = statAsync(path).then(
      (st) => sameFile(found, st),
      () => false,
    );
    const check = { found, same };
    this.#checking.set(path, check);
    const done = (): void => {
      if (this.#checking.get(path) === check) this.#checking.delete(path);
    };
    same.then(done, done);
    return same;
  }

  /** The cached facts of `path` when fresh (no system call needed), else undefined. */
  peek(path: string, now = Date.now()): Lookup | undefined {
    const entry = this.#entries.get(path);
    if (entry === undefined) return undefined;
    const o = this.#options;
    if (now - entry.checkedAt >= o.validMs || now - entry.usedAt > o.inactiveMs) return undefined;
    this.#touch(path, entry, now);
    return entry.lookup;
  }

  /**
   * The facts of `path` (with the content of a small file), from the cache when fresh enough.
   * Never throws for file-system errors: they come back as {@link Missing}.
   */
  async lookup(path: string, now = Date.now()): Promise<Lookup> {
    const o = this.#options;
    const entry = this.#entries.get(path);
    if (entry !== undefined && now - entry.usedAt <= o.inactiveMs) {
      if (now - entry.checkedAt < o.validMs) {
        this.#touch(path, entry, now);
        return entry.lookup;
      }
      const l = entry.lookup;
      if (l.ok && (await this.#unchanged(path, l))) {
        entry.checkedAt = now;
        this.#touch(path, entry, now);
        return l;
      }
    }
    let pending = this.#loading.get(path);
    if (pending === undefined) {
      pending = this.#load(path).finally(() => this.#loading.delete(path));
      this.#loading.set(path, pending);
    }
    const lookup = await pending;
    this.#store(path, lookup, now);
    return lookup;
  }

  /**
   * Open `path` for a response (a file too large for memory, or with caching off). The facts
   * come from the descriptor itself, so headers and body agree even if the file just changed;
   * a change also refreshes the cached entry.
   */
  async open(path: string): Promise<Opened | Missing> {
    let fd: number;
    try {
      fd = await openAsync(path, openFlags);
    } catch (err) {
      return { ok: false, path, code: errorCode(err) };
    }
    try {
      const st = await fstatAsync(fd);
      if (!st.isFile() && !st.isDirectory()) {
        await closeAsync(fd);
        return { ok: false, path, code: "ESPECIAL" };
      }
      const allowed = await this.#options.verify(path, fd);
      const found = factsOf(path, st, allowed, undefined);
      const cached = this.#entries.get(path);
      if (cached?.lookup.ok && !sameFile(cached.lookup, st)) this.#drop(path);
      return { found, fd };
    } catch (err) {
      await closeAsync(fd).catch(() => {});
      return { ok: false, path, code: errorCode(err) };
    }
  }

  /** Drop everything (config reload, worker stop). */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  /** Drop entries unused for `inactive`. */
  sweep(now = Date.now()): void {
    for (const [path, e] of this.#entries) {
      if (now - e.usedAt > this.#options.inactiveMs) this.#drop(path);
    }
  }

  #touch(path: string, entry: Entry, now: number): void {
    // Map order is the LRU order: move to the end, at most once a second per entry (an
    // approximate LRU is enough, and a hot file then costs no map writes).
    if (now - entry.usedAt >= 1000) {
      this.#entries.delete(path);
      this.#entries.set(path, entry);
    }
    entry.usedAt = now;
  }

  #store(path: string, lookup: Lookup, now: number): void {
    const o = this.#options;
    if (o.max === 0) return;
    this.#drop(path);
    this.#entries.set(path, { lookup, checkedAt: now, usedAt: now });
    if (lookup.ok && lookup.data !== undefined) this.#bytes += lookup.data.length;
    while (this.#entries.size > o.max) {
      const oldest = this.#entries.keys().next().value as string;
      this.#drop(oldest);
    }
    const maxBytes = o.maxBytes ?? Infinity;
    if (this.#bytes > maxBytes) {
      // Least recently used content first (entries without content are cheap: they stay).
      for (const [p, e] of this.#entries) {
        if (this.#bytes <= maxBytes) break;
        if (p !== path && e.lookup.ok && e.lookup.data !== undefined) this.#drop(p);
      }
    }
    if (this.#sweeper === undefined) {
      const every = Math.max(1000, Math.min(o.inactiveMs, 60_000));
      this.#sweeper = setInterval(() => this.sweep(), every);
      this.#sweeper.unref();
    }
  }

  /** Remove the entry of `path`, if any, and the content it held. */
  #drop(path: string): void {
    const e = this.#entries.get(path);
    if (e === undefined) return;
    this.#entries.delete(path);
    if (e.lookup.ok && e.lookup.data !== undefined) this.#bytes -= e.lookup.data.length;
  }

  async #load(path: string): Promise<Lookup> {
    const o = this.#options;
    for (let attempt = 0; ; attempt++) {
      let fd: number;
      try {
        fd = await openAsync(path, openFlags);
      } catch (err) {
        return { ok: false, path, code: errorCode(err) };
      }
      try {
        const st = await fstatAsync(fd);
        if (!st.isFile() && !st.isDirectory()) return { ok: false, path, code: "ESPECIAL" };
        const allowed = await o.verify(path, fd);
        let data: Buffer | undefined;
        if (
          o.max > 0 &&
          st.isFile() &&
          st.size <= o.maxFileSize &&
          st.size <= (o.maxBytes ?? Infinity) &&
          allowed
        ) {
          data = st.size === 0 ? Buffer.alloc(0) : await readWhole(fd, st.size);
          // Written to while we read (same size, new mtime): not a snapshot of one version.
          if (
            data !== undefined &&
            !sameFile(factsOf(path, st, allowed, undefined), await fstatAsync(fd))
          ) {
            data = undefined;
          }
          // Changed under us: look again (a few times), else serve it from disk.
          if (data === undefined && attempt < 2) continue;
        }
        return factsOf(path, st, allowed, data);
      } catch (err) {
        return { ok: false, path, code: errorCode(err) };
      } finally {
        await closeAsync(fd).catch(() => {});
      }
    }
  }
}
