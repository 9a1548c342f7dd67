/**
 * One clock reading per request instead of several: the web server's engines read the monotonic
 * clock (`performance.now()`) when a request starts and when its response is written, and derive
 * the wall-clock time of either from it (`wallAt`) rather than asking `Date.now()` again: every
 * clock read is a call into the system's clock source, about 50 ns here, and a request used to
 * make seven (the start's wall time, the open-file cache's check, the `date` field, the
 * duration, the idle mark, the keep-alive deadline).
 *
 * The offset between the two clocks is taken again at most once per second (when `wallAt` is
 * asked for a time past the next resync), so a wall clock that is stepped (NTP, an operator) is
 * followed within a second, as nginx's cached time (updated once per event-loop turn) is.
 */
import { performance } from "node:perf_hooks";

/** `performance.now()`, imported (the global `performance` is a getter on globalThis). */
export function monoNow(): number {
  return performance.now();
}

let offset = Date.now() - monoNow();
let resyncAt = 0;

/** The wall-clock time (ms since the epoch, as Date.now()) of the monotonic reading `mono`. */
export function wallAt(mono: number): number {
  if (mono >= resyncAt) {
    const m = monoNow();
    offset = Date.now() - m;
    resyncAt = m + 1000;
  }
  return mono + offset;
}
