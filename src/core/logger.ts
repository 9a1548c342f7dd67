/**
 * The error log: one structured logger for the whole process tree.
 *
 * Text lines for a terminal (gunicorn's `[time] [pid] [LEVEL] message` shape, then `key=value`
 * fields), one JSON object per line otherwise. Writes are synchronous on purpose: the error log is
 * low-volume, and a line written just before a crash or a `process.exit` must not be lost.
 * `reopen()` closes and reopens the file, for log rotation on USR1.
 */
import { closeSync, openSync, writeSync } from "node:fs";

export const levels = ["debug", "info", "warn", "error", "fatal"] as const;
export type Level = (typeof levels)[number];
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, fatal: 50 };

export type Fields = Record<string, unknown>;

export interface LoggerOptions {
  /** Lowest level written. */
  level?: Level;
  /** `text`, `json`, or `auto` (text when the destination is a terminal). */
  format?: "text" | "json" | "auto";
  /** A file path, or `-` / undefined for stderr. */
  file?: string | undefined;
  /** Fields added to every line (for example `{ tier: "app" }`). */
  fields?: Fields;
}

export interface Logger {
  readonly level: Level;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  fatal(msg: string, fields?: Fields): void;
  /** A logger writing to the same destination with extra fields on every line. */
  child(fields: Fields): Logger;
  /** Close and reopen the log file (USR1). A no-op for stderr. */
  reopen(): void;
  enabled(level: Level): boolean;
}

class Sink {
  fd: number;
  readonly json: boolean;
  readonly file: string | undefined;
  constructor(file: string | undefined, format: "text" | "json" | "auto") {
    this.file = file;
    this.fd = this.open();
    this.json =
      format === "json" || (format === "auto" && !(this.fd === 2 && process.stderr.isTTY));
  }
  private open(): number {
    if (this.file === undefined || this.file === "-") return 2;
    return openSync(this.file, "a");
  }
  write(line: string): void {
    try {
      writeSync(this.fd, line);
    } catch {
      // A full disk or a closed pipe must not take the server down with it.
    }
  }
  reopen(): void {
    if (this.fd === 2) return;
    const old = this.fd;
    this.fd = this.open();
    closeSync(old);
  }
}

function serialise(value: unknown): unknown {
  if (value instanceof Error) {
    const out: Fields = { name: value.name, message: value.message, stack: value.stack };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    if (value.cause !== undefined) out.cause = serialise(value.cause);
    return out;
  }
  return value;
}

function textValue(value: unknown): string {
  if (typeof value === "string") return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  if (value instanceof Error) return JSON.stringify(value.message);
  return JSON.stringify(value) ?? String(value);
}

function formatText(level: Level, msg: string, fields: Fields): string {
  const now = new Date().toISOString();
  let line = `[${now}] [${process.pid}] [${level.toUpperCase()}] ${msg}`;
  let stack = "";
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    line += ` ${k}=${textValue(v)}`;
    if (v instanceof Error && v.stack) stack += `\n${v.stack}`;
  }
  return `${line}${stack}\n`;
}

function formatJson(level: Level, msg: string, fields: Fields): string {
  const record: Fields = { time: new Date().toISOString(), level, pid: process.pid, msg };
  for (const [k, v] of Object.entries(fields)) record[k] = serialise(v);
  return `${JSON.stringify(record)}\n`;
}

class SinkLogger implements Logger {
  private readonly sink: Sink;
  readonly level: Level;
  private readonly fields: Fields;
  constructor(sink: Sink, level: Level, fields: Fields) {
    this.sink = sink;
    this.level = level;
    this.fields = fields;
  }
  enabled(level: Level): boolean {
    return rank[level] >= rank[this.level];
  }
  private log(level: Level, msg: string, fields?: Fields): void {
    if (!this.enabled(level)) return;
    const all = fields ? { ...this.fields, ...fields } : this.fields;
    this.sink.write(this.sink.json ? formatJson(level, msg, all) : formatText(level, msg, all));
  }
  debug(msg: string, fields?: Fields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.log("error", msg, fields);
  }
  fatal(msg: string, fields?: Fields): void {
    this.log("fatal", msg, fields);
  }
  child(fields: Fields): Logger {
    return new SinkLogger(this.sink, this.level, { ...this.fields, ...fields });
  }
  reopen(): void {
    this.sink.reopen();
  }
}

/** Make the error log. Opening a file that cannot be written throws, before anything starts. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const sink = new Sink(options.file, options.format ?? "auto");
  return new SinkLogger(sink, options.level ?? "info", options.fields ?? {});
}
