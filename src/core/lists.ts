/**
 * Small list helpers shared by the per-thread memos (the engine's last response head, the
 * upstream client's last request head, the proxy's last field lists).
 */

/** Whether `a` and `b` hold the same strings in the same order (a `[name, value, ...]` list). */
export function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
