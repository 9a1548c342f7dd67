/** Range parsing and multipart framing (RFC 9110 §14). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { contentRange, multipart, parseRange } from "../../../src/webserver/static/range.ts";

const r = (value: string, size = 1000, max = 100) => parseRange(value, size, max);
const ranges = (...pairs: [number, number][]) => ({
  kind: "ranges",
  ranges: pairs.map(([start, end]) => ({ start, end })),
});

test("single ranges: first-last, open-ended, suffix, clamped", () => {
  assert.deepEqual(r("bytes=0-99"), ranges([0, 100]));
  assert.deepEqual(r("bytes=500-"), ranges([500, 1000]));
  assert.deepEqual(r("bytes=-100"), ranges([900, 1000]));
  assert.deepEqual(r("bytes=-5000"), ranges([0, 1000]));
  assert.deepEqual(r("bytes=990-5000"), ranges([990, 1000]));
  assert.deepEqual(r("bytes=999-999"), ranges([999, 1000]));
  assert.deepEqual(r("Bytes = 1-2"), ranges([1, 3]), "unit is case-insensitive, OWS allowed");
  assert.deepEqual(r("bytes=0-99999999999999999999"), ranges([0, 1000]));
});

test("unsatisfiable: every range starts past the end, or a zero suffix", () => {
  assert.deepEqual(r("bytes=1000-"), { kind: "unsatisfiable" });
  assert.deepEqual(r("bytes=1000-2000, 3000-"), { kind: "unsatisfiable" });
  assert.deepEqual(r("bytes=-0"), { kind: "unsatisfiable" });
  assert.deepEqual(r("bytes=99999999999999999999-"), { kind: "unsatisfiable" });
  // one satisfiable range is enough
  assert.deepEqual(r("bytes=2000-, 0-0"), ranges([0, 1]));
});

test("ignored (whole representation): other units, malformed, backwards", () => {
  for (const v of [
    "items=0-1",
    "bytes",
    "bytes=",
    "bytes=,",
    "bytes=a-b",
    "bytes=5-2",
    "bytes=1-2-3",
    "bytes=-",
    "bytes= 1 - 2",
    "bytes=0x10-",
    "bytes=1.5-2",
    "bytes=0-1, junk",
  ]) {
    assert.deepEqual(r(v), { kind: "whole" }, v);
  }
});

test("empty representation: no range applies", () => {
  assert.deepEqual(r("bytes=0-", 0), { kind: "whole" });
  assert.deepEqual(r("bytes=-1", 0), { kind: "whole" });
});

test("maxRanges: more ranges than allowed, or 0, means the whole", () => {
  assert.deepEqual(r("bytes=0-1,3-4,6-7", 1000, 2), { kind: "whole" });
  assert.deepEqual(r("bytes=0-1,3-4", 1000, 2), ranges([0, 2], [3, 5]));
  assert.deepEqual(r("bytes=0-1", 1000, 0), { kind: "whole" });
  assert.deepEqual(
    r("bytes=0-1,,3-4", 1000, 2),
    ranges([0, 2], [3, 5]),
    "empty elements do not count",
  );
});

test("multiple ranges keep their order unless they overlap or touch, then merge ascending", () => {
  assert.deepEqual(r("bytes=500-599, 0-99"), ranges([500, 600], [0, 100]));
  assert.deepEqual(r("bytes=0-99, 50-199, 300-"), ranges([0, 200], [300, 1000]));
  assert.deepEqual(r("bytes=100-199, 0-99"), ranges([0, 200]), "adjacent");
  assert.deepEqual(r("bytes=-10, 0-0, 995-"), ranges([0, 1], [990, 1000]));
  // the amplification attack: many overlapping ranges collapse into one
  const many = `bytes=${Array.from({ length: 100 }, () => "0-").join(",")}`;
  assert.deepEqual(r(many), ranges([0, 1000]));
});

test("Content-Range and multipart framing, nginx's layout", () => {
  assert.equal(contentRange({ start: 0, end: 100 }, 1000), "bytes 0-99/1000");
  const mp = multipart(
    [
      { start: 0, end: 2 },
      { start: 5, end: 8 },
    ],
    10,
    "text/plain",
    "B0UND",
  );
  assert.equal(mp.contentType, "multipart/byteranges; boundary=B0UND");
  const data = Buffer.from("0123456789");
  const body = Buffer.concat([
    mp.heads[0]!,
    data.subarray(0, 2),
    mp.heads[1]!,
    data.subarray(5, 8),
    mp.tail,
  ]);
  assert.equal(
    body.toString(),
    "\r\n--B0UND\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01" +
      "\r\n--B0UND\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-7/10\r\n\r\n567" +
      "\r\n--B0UND--\r\n",
  );
  assert.equal(mp.length, body.length);
});
