/**
 * The access log: one line per request, in gunicorn's format language (Apache's atoms written
 * `%(name)s`), or one JSON object per line with `format: "json"`.
 *
 * Atoms (gunicorn's): `h` client address, `l` "-", `u` basic-auth user, `t` time
 * `[10/Oct/2000:13:55:36 +0000]`, `r` request line, `m` method, `U` path, `q` query string, `H`
 * protocol, `s` status, `B` body bytes, `b` body bytes or "-", `f` referer, `a` user agent, `T`
 * whole seconds, `M` milliseconds, `D` microseconds, `L` decimal seconds, `p` `<pid>`,
 * `{name}i` a request header, `{name}o` a response header, `{NAME}e` an environment variable.
 * A missing value is "-". `%%` is a literal `%`.
 *
 * Lines are buffered and written asynchronously (one write in flight, the next batch gathered
 * meanwhile), flushed synchronously when the worker stops, and the file is reopened on USR1.
 */
import { closeSync, openSync, write, writeSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";

/** What one log line is made from. */
export interface AccessRecord {
  req: IncomingMessage;
  /** undefined for a request node:http could not parse. */
  res: ServerResponse | undefined;
  status: number;
  /** Response body bytes (undefined: unknown). */
  bytes: number | undefined;
  /** Seconds. */
  duration: number;
  /** The client address (after trusted forwarding headers). */
  remote: string;
  /** When the request ended. */
  end: Date;
}

type Atom = (r: AccessRecord) => string;

const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number, w = 2) => String(n).padStart(w, "0");

let lastSecond = -1;
let lastStamp = "";
/** `[10/Oct/2000:13:55:36 -0700]` in local time (cached per second). */
export function clfTime(d: Date): string {
  const second = Math.floor(d.getTime() / 1000);
  if (second === lastSecond) return lastStamp;
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const zone = `${sign}${pad(Math.floor(Math.abs(off) / 60))}${pad(Math.abs(off) % 60)}`;
  lastStamp = `[${pad(d.getDate())}/${months[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${zone}]`;
  lastSecond = second;
  return lastStamp;
}

const dash = (v: string | undefined): string => (v === undefined || v === "" ? "-" : v);

function header(h: string | string[] | number | undefined): string | undefined {
  if (h === undefined) return undefined;
  return Array.isArray(h) ? h.join(", ") : String(h);
}

function user(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (!auth || !/^basic /i.test(auth)) return undefined;
  const decoded = Buffer.from(auth.slice(6).trim(), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon > 0 ? decoded.slice(0, colon) : undefined;
}

function target(req: IncomingMessage): { path: string; query: string } {
  const url = req.url ?? "";
  const q = url.indexOf("?");
  return q < 0 ? { path: url, query: "" } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

const protocol = (req: IncomingMessage) =>
  req.httpVersion ? `HTTP/${req.httpVersion}` : undefined;

const atoms: Record<string, Atom> = {
  h: (r) => dash(r.remote),
  l: () => "-",
  u: (r) => dash(user(r.req)),
  t: (r) => clfTime(r.end),
  r: (r) =>
    r.req.method ? `${r.req.method} ${r.req.url ?? ""} ${protocol(r.req) ?? "HTTP/1.1"}` : "-",
  m: (r) => dash(r.req.method),
  U: (r) => dash(target(r.req).path),
  q: (r) => target(r.req).query,
  H: (r) => dash(protocol(r.req)),
  s: (r) => String(r.status),
  B: (r) => (r.bytes === undefined ? "-" : String(r.bytes)),
  b: (r) => (r.bytes ? String(r.bytes) : "-"),
  f: (r) => dash(header(r.req.headers.referer)),
  a: (r) => dash(header(r.req.headers["user-agent"])),
  T: (r) => String(Math.floor(r.duration)),
  M: (r) => String(Math.floor(r.duration * 1000)),
  D: (r) => String(Math.floor(r.duration * 1e6)),
  L: (r) => r.duration.toFixed(6),
  p: () => `<${process.pid}>`,
};

/** A parsed format: a function from a record to a line (without the newline). */
export type Formatter = (r: AccessRecord) => string;

/** gunicorn's default format. */
export const defaultFormat = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"';

/**
 * Compile a format. Throws an Error naming the first unknown atom (a config mistake, found
 * before the worker accepts anything).
 */
export function compileFormat(format: string): Formatter {
  if (format === "json") return jsonLine;
  const parts: (string | Atom)[] = [];
  const re = /%%|%\((\{[^}]*\}[ioe]|[A-Za-z])\)[sdif]/g;
  let last = 0;
  for (const m of format.matchAll(re)) {
    parts.push(format.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[0] === "%%") {
      parts.push("%");
      continue;
    }
    const name = m[1]!;
    if (name.startsWith("{")) {
      const key = name.slice(1, -2);
      const kind = name.at(-1);
      const lower = key.toLowerCase();
      if (kind === "i") parts.push((r) => dash(header(r.req.headers[lower])));
      else if (kind === "o") parts.push((r) => dash(header(r.res?.getHeader(lower))));
      else parts.push(() => dash(process.env[key]));
      continue;
    }
    const atom = atoms[name];
    if (!atom) throw new Error(`access log format: unknown atom "%(${name})s"`);
    parts.push(atom);
  }
  parts.push(format.slice(last));
  const fixed = parts.filter((p) => p !== "");
  return (r) => {
    let out = "";
    for (const p of fixed) out += typeof p === "string" ? p : p(r);
    return out;
  };
}

/** The JSON form: every atom under a readable name. */
function jsonLine(r: AccessRecord): string {
  const { path, query } = target(r.req);
  return JSON.stringify({
    time: r.end.toISOString(),
    remote: r.remote || undefined,
    user: user(r.req),
    request: r.req.method ? `${r.req.method} ${r.req.url ?? ""} ${protocol(r.req)}` : undefined,
    method: r.req.method,
    path: r.req.method ? path : undefined,
    query: query || undefined,
    protocol: protocol(r.req),
    status: r.status,
    bytes: r.bytes,
    referer: header(r.req.headers.referer),
    userAgent: header(r.req.headers["user-agent"]),
    durationMs: Math.round(r.duration * 1e6) / 1000,
    pid: process.pid,
  });
}

/**
 * Buffers lines and writes them in batches; `close()` waits for the batch being written, then
 * writes the rest synchronously.
 */
export class AccessLogWriter {
  private fd: number;
  private readonly file: string;
  private buffer = "";
  private writing = false;
  private closed = false;
  /** Called once no batch is being written (set by `close`). */
  private idle: (() => void) | undefined;
  /** Lines dropped because the disk could not keep up (the buffer stays bounded). */
  dropped = 0;
  private static readonly MAX_BUFFER = 8 * 1024 * 1024;

  /** `file` "-" is standard output. Opening a file that cannot be written throws. */
  constructor(file: string) {
    this.file = file;
    this.fd = file === "-" ? 1 : openSync(file, "a");
  }

  write(line: string): void {
    if (this.closed) return;
    if (this.buffer.length > AccessLogWriter.MAX_BUFFER) {
      this.dropped++;
      return;
    }
    this.buffer += `${line}\n`;
    if (!this.writing) {
      this.writing = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    if (this.buffer === "" || this.closed) {
      this.writing = false;
      this.idle?.();
      return;
    }
    const data = this.buffer;
    this.buffer = "";
    write(this.fd, data, (err) => {
      if (err && !this.closed) this.dropped++;
      this.flush();
    });
  };

  /** USR1: write to a freshly opened file (log rotation). */
  reopen(): void {
    if (this.file === "-" || this.closed) return;
    const old = this.fd;
    this.fd = openSync(this.file, "a");
    // A write in flight still holds the old fd; close it once that write is done.
    setTimeout(() => {
      try {
        closeSync(old);
      } catch {
        // already closed
      }
    }, 1000).unref();
  }

  /**
   * Stop: wait (up to `waitMs`) for the batch being written, then write what is buffered,
   * synchronously. Exiting while a batch is only queued in libuv's thread pool would lose it (a
   * reload lost the last lines of each old worker that way). The descriptor is left to the
   * process's exit.
   */
  async close(waitMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.writing) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.idle = resolve;
        timer = setTimeout(resolve, waitMs);
        timer.unref();
      });
      clearTimeout(timer);
    }
    try {
      if (this.buffer !== "") writeSync(this.fd, this.buffer);
    } catch {
      // a full disk must not stop a worker from exiting
    }
    this.buffer = "";
  }
}
