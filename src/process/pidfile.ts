/**
 * The pidfile: written on start, removed on exit, and a guard against two masters on one config.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";

/** The pid named in a pidfile, or undefined when there is no readable pid. */
export function readPidfile(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else; still alive.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Write our pid. Throws when the file names another live process; a stale file is replaced.
 */
export function writePidfile(path: string, pid = process.pid): void {
  const other = readPidfile(path);
  if (other !== undefined && other !== pid && alive(other)) {
    throw new Error(`pidfile ${path} names a running process (${other}); is it already running?`);
  }
  writeFileSync(path, `${pid}\n`);
}

/** Remove the file if it still names `pid` (a new master may have written its own since). */
export function removePidfile(path: string, pid = process.pid): void {
  if (readPidfile(path) !== pid) return;
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Rename if the file names `pid`; returns whether it did. */
export function movePidfile(from: string, to: string, pid = process.pid): boolean {
  if (readPidfile(from) !== pid) return false;
  renameSync(from, to);
  return true;
}
