/**
 * Range requests (RFC 9110 §14): parsing `Range: bytes=...` against a representation's size, and
 * the framing of a multipart/byteranges body. Pure: no I/O.
 */

/** Bytes `[start, end)` of the representation. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export type RangeResult =
  /** No usable Range (absent, another unit, malformed, too many): send the whole representation. */
  | { readonly kind: "whole" }
  /** Every range starts past the end: 416 with `Content-Range: bytes *\/size`. */
  | { readonly kind: "unsatisfiable" }
  /** One or more satisfiable ranges, coalesced, in the order they are to be sent. */
  | { readonly kind: "ranges"; readonly ranges: readonly ByteRange[] };

const whole: RangeResult = { kind: "whole" };
const unsatisfiable: RangeResult = { kind: "unsatisfiable" };
const intRange = /^(\d+)-(\d*)$/;
const suffixRange = /^-(\d+)$/;

/**
 * Parse a `Range` field value for a representation of `size` bytes.
 *
 * - A unit other than `bytes` is ignored (RFC 9110 §14.2: MUST ignore).
 * - A syntactically invalid set (`bytes=a-b`, `bytes=5-2`, nothing at all) is ignored and the
 *   whole representation sent (the RFC's MAY ignore; nginx answers 416 instead).
 * - More than `maxRanges` ranges: ignored, as nginx's `max_ranges` does; `maxRanges` 0 turns
 *   ranges off.
 * - Ranges that overlap or touch are merged (the RFC allows coalescing; it defeats the
 *   "many overlapping ranges" amplification), in which case the result is in ascending order;
 *   otherwise the client's order is kept.
 * - A zero-length representation has no satisfiable range: the whole (empty) body is sent.
 */
export function parseRange(value: string, size: number, maxRanges: number): RangeResult {
  const eq = value.indexOf("=");
  if (eq < 0) return whole;
  if (value.slice(0, eq).trim().toLowerCase() !== "bytes") return whole;
  if (maxRanges === 0 || size === 0) return whole;
  const ranges: ByteRange[] = [];
  let count = 0;
  for (const raw of value.slice(eq + 1).split(",")) {
    const spec = raw.trim();
    if (spec === "") continue; // empty list elements are allowed by the list syntax
    count++;
    if (count > maxRanges) return whole;
    let m = intRange.exec(spec);
    if (m) {
      const first = Number(m[1]);
      const last = m[2] === "" ? Number.POSITIVE_INFINITY : Number(m[2]);
      if (last < first) return whole;
      if (first < size) ranges.push({ start: first, end: Math.min(last, size - 1) + 1 });
      continue;
    }
    m = suffixRange.exec(spec);
    if (m) {
      const length = Number(m[1]);
      if (length > 0) ranges.push({ start: Math.max(0, size - length), end: size });
      continue;
    }
    return whole;
  }
  if (count === 0) return whole;
  if (ranges.length === 0) return unsatisfiable;
  return { kind: "ranges", ranges: coalesce(ranges) };
}

/** Merge overlapping or adjacent ranges; keeps the given order when there is nothing to merge. */
export function coalesce(ranges: ByteRange[]): ByteRange[] {
  if (ranges.length < 2) return ranges;
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  let touching = false;
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.start <= sorted[i - 1]!.end) {
      touching = true;
      break;
    }
  }
  if (!touching) return ranges;
  const out: ByteRange[] = [{ ...sorted[0]! }];
  for (let i = 1; i < sorted.length; i++) {
    const r = sorted[i]!;
    const last = out[out.length - 1]!;
    if (r.start <= last.end)
      out[out.length - 1] = { start: last.start, end: Math.max(last.end, r.end) };
    else out.push(r);
  }
  return out;
}

/** `bytes 0-99/1234` */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end - 1}/${size}`;
}

/** The multipart/byteranges framing around the ranges' bytes. */
export interface Multipart {
  /** `multipart/byteranges; boundary=...` */
  readonly contentType: string;
  /** One head per range (delimiter and part fields), to be followed by that range's bytes. */
  readonly heads: readonly Buffer[];
  /** The close delimiter, after the last range. */
  readonly tail: Buffer;
  /** Total body length: heads, ranges and tail. */
  readonly length: number;
}

let boundaryCounter = 0;
const boundaryPrefix = Math.floor(Math.random() * 0xffffffff)
  .toString(16)
  .padStart(8, "0");

/**
 * A boundary unlikely to occur in the content: random per process, then a counter; 20
 * characters, as long as nginx's, so the two frame the same ranges in the same length.
 */
export function newBoundary(): string {
  boundaryCounter = (boundaryCounter + 1) % 2 ** 48;
  return `${boundaryPrefix}${boundaryCounter.toString(16).padStart(12, "0")}`;
}

/**
 * Frame `ranges` of a `size`-byte representation of `type` as multipart/byteranges
 * (RFC 9110 §14.6), in nginx's layout: each part is `CRLF--boundary CRLF`, its `Content-Type`
 * and `Content-Range`, a blank line and the bytes; the body ends with `CRLF--boundary--CRLF`.
 */
export function multipart(
  ranges: readonly ByteRange[],
  size: number,
  type: string | undefined,
  boundary = newBoundary(),
): Multipart {
  const typeLine = type === undefined ? "" : `Content-Type: ${type}\r\n`;
  const heads = ranges.map((r) =>
    Buffer.from(
      `\r\n--${boundary}\r\n${typeLine}Content-Range: ${contentRange(r, size)}\r\n\r\n`,
      "latin1",
    ),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, "latin1");
  let length = tail.length;
  for (let i = 0; i < ranges.length; i++) {
    length += heads[i]!.length + ranges[i]!.end - ranges[i]!.start;
  }
  return { contentType: `multipart/byteranges; boundary=${boundary}`, heads, tail, length };
}
