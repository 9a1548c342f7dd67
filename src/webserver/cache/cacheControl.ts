/**
 * `Cache-Control` parsing (RFC 9111 §5.2), done once here because http-cache-semantics' parser
 * splits on every comma and matches directive names case-sensitively: `Max-Age=60` is ignored
 * and `no-cache="set-cookie, x"` turns into two directives there. Directive names are
 * case-insensitive, values may be quoted strings containing commas, and a directive repeated
 * with a different value (two `max-age`s) makes the freshness information invalid (§4.2.1:
 * treat as stale).
 */

export interface Directives {
  /** Directive name (lowercase) -> value (`true` when it has none; quoted values unquoted). */
  readonly map: Map<string, string | true>;
  /** A freshness directive appeared twice with different values. */
  readonly conflicting: boolean;
}

const empty: Directives = { map: new Map(), conflicting: false };

/** Parse one or more `Cache-Control` field values (already joined with ", "). */
export function parseCacheControl(value: string | undefined): Directives {
  if (value === undefined || value === "") return empty;
  const map = new Map<string, string | true>();
  let conflicting = false;
  let i = 0;
  const n = value.length;
  while (i < n) {
    while (i < n && (value[i] === "," || value[i] === " " || value[i] === "\t")) i++;
    let j = i;
    while (j < n && value[j] !== "=" && value[j] !== ",") j++;
    const name = value.slice(i, j).trim().toLowerCase();
    let v: string | true = true;
    i = j;
    if (i < n && value[i] === "=") {
      i++;
      while (i < n && (value[i] === " " || value[i] === "\t")) i++;
      if (value[i] === '"') {
        let out = "";
        i++;
        while (i < n && value[i] !== '"') {
          if (value[i] === "\\" && i + 1 < n) i++;
          out += value[i];
          i++;
        }
        i++;
        v = out;
        while (i < n && value[i] !== ",") i++;
      } else {
        let k = i;
        while (k < n && value[k] !== ",") k++;
        v = value.slice(i, k).trim();
        i = k;
      }
    }
    if (name === "") continue;
    const before = map.get(name);
    if (before !== undefined && before !== v && (name === "max-age" || name === "s-maxage")) {
      conflicting = true;
    }
    if (before === undefined) map.set(name, v);
  }
  return { map, conflicting };
}

/** A delta-seconds directive's value, or undefined when absent or not a number. */
export function seconds(d: Directives, name: string): number | undefined {
  const v = d.map.get(name);
  if (v === undefined || v === true) return undefined;
  if (!/^\d+$/.test(v)) return undefined;
  return Math.min(Number(v), 2 ** 31);
}

/** Format directives back into one canonical field value (lowercase names, quoted when needed). */
export function formatCacheControl(map: ReadonlyMap<string, string | true>): string {
  const parts: string[] = [];
  for (const [k, v] of map) {
    if (v === true) parts.push(k);
    else if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(v)) parts.push(`${k}=${v}`);
    else parts.push(`${k}="${v.replace(/["\\]/g, "\\$&")}"`);
  }
  return parts.join(", ");
}
