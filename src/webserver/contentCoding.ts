/**
 * Content-coding negotiation (RFC 9110 §12.5.3 `Accept-Encoding`), shared by the modules that
 * choose an encoding for a response: static files (precompressed `.br`/`.gz`/`.zst` siblings)
 * and the on-the-fly compression filter. It lives beside the exchange interface because modules
 * never import each other.
 */

/** The content codings Brigade produces or serves, with the file suffix of a precompressed sibling. */
export const codingSuffix = { br: ".br", zstd: ".zst", gzip: ".gz" } as const;
export type Coding = keyof typeof codingSuffix;

/** q-values by lowercase coding name (`*` and `identity` included when the client sent them). */
export type AcceptEncoding = ReadonlyMap<string, number>;

const parsed = new Map<string, AcceptEncoding>();
const parsedMax = 64;

/**
 * Parse an `Accept-Encoding` value into q-values. Malformed members are skipped (a client's
 * typo should not cost it compression); a q-value outside 0..1 or not a number is treated as
 * absent (q=1). Results are memoised: a server sees few distinct values.
 */
export function parseAcceptEncoding(value: string): AcceptEncoding {
  const hit = parsed.get(value);
  if (hit) return hit;
  const out = new Map<string, number>();
  for (const member of value.split(",")) {
    const parts = member.split(";");
    const name = parts[0]!.trim().toLowerCase();
    if (name === "" || !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) continue;
    let q = 1;
    for (let i = 1; i < parts.length; i++) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(parts[i]!);
      if (m) {
        const n = Number(m[1]);
        if (Number.isFinite(n) && n >= 0 && n <= 1) q = n;
      }
    }
    // The most preferring mention wins when a coding is repeated.
    out.set(name, Math.max(q, out.get(name) ?? 0));
  }
  if (parsed.size >= parsedMax) parsed.clear();
  parsed.set(value, out);
  return out;
}

function qualityOf(accept: AcceptEncoding, coding: string): number | undefined {
  const q = accept.get(coding);
  if (q !== undefined) return q;
  // x-gzip is gzip (RFC 9110 §8.4.1.3).
  if (coding === "gzip") return accept.get("x-gzip");
  return undefined;
}

/**
 * The coding to send, among `offered` (in the server's order of preference, which breaks ties),
 * or undefined for identity (no coding). A missing `Accept-Encoding` means identity: any coding
 * is allowed by the RFC, but clients that send none are the ones that cannot decode.
 *
 * A coding is chosen when its q-value is above 0 and at least identity's. Identity's q-value is
 * its own entry, else `*`'s, else none (it stays the fallback but any wanted coding beats it:
 * `gzip;q=0.8` alone still means "gzip, please"). When nothing offered is acceptable, identity is
 * sent even if excluded (RFC 9110 allows that rather than a 406).
 */
export function negotiateEncoding<C extends string>(
  acceptEncoding: string | undefined,
  offered: readonly C[],
): C | undefined {
  if (acceptEncoding === undefined || offered.length === 0) return undefined;
  const accept = parseAcceptEncoding(acceptEncoding);
  if (accept.size === 0) return undefined;
  const star = accept.get("*");
  const identity = accept.get("identity") ?? star ?? 0;
  let best: C | undefined;
  let bestQ = 0;
  for (const coding of offered) {
    const q = qualityOf(accept, coding) ?? star ?? 0;
    if (q > bestQ) {
      best = coding;
      bestQ = q;
    }
  }
  return best !== undefined && bestQ >= identity ? best : undefined;
}

/** Add `token` to a list-valued field's value (`Vary`), unless already there (case-insensitive). */
export function addToList(current: string | undefined, token: string): string {
  if (current === undefined || current.trim() === "") return token;
  const lower = token.toLowerCase();
  for (const t of current.split(",")) {
    const item = t.trim().toLowerCase();
    if (item === lower || item === "*") return current;
  }
  return `${current}, ${token}`;
}
