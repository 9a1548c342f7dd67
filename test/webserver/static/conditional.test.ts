/** Validators and preconditions (RFC 9110 §8.8, §13). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Fields } from "../../../src/webserver/exchange.ts";
import {
  evaluatePreconditions,
  fileEtag,
  httpDate,
  ifRangeHolds,
  parseEtagList,
  parseHttpDate,
  type Validators,
} from "../../../src/webserver/static/conditional.ts";

const mtime = Date.UTC(2024, 0, 15, 10, 30, 0) + 123; // sub-second part is dropped by HTTP dates
const v: Validators = { etag: fileEtag(mtime, 1234), lastModified: mtime };
const date = httpDate(mtime);
const earlier = httpDate(mtime - 60_000);
const later = httpDate(mtime + 60_000);

function pre(
  fields: Record<string, string>,
  method = "GET",
  policy: "off" | "exact" | "before" = "exact",
) {
  return evaluatePreconditions(method, Fields.from(fields), v, policy);
}

test("ETag is nginx's hex mtime-size; HTTP dates are IMF-fixdate", () => {
  assert.equal(fileEtag(mtime, 1234), `"${Math.floor(mtime / 1000).toString(16)}-4d2"`);
  assert.equal(fileEtag(0, 0), '"0-0"');
  assert.equal(date, "Mon, 15 Jan 2024 10:30:00 GMT");
});

test("HTTP-date: the three forms, and nothing else", () => {
  const t = Date.UTC(1994, 10, 6, 8, 49, 37);
  assert.equal(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT"), t);
  assert.equal(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT"), t);
  assert.equal(parseHttpDate("Sun Nov  6 08:49:37 1994"), t);
  for (const bad of [
    "",
    "yesterday",
    "1994-11-06T08:49:37Z",
    "Sun, 06 Nov 1994 08:49:37 PST",
    "Sun, 06 Foo 1994 08:49:37 GMT",
    "Sun, 32 Nov 1994 08:49:37 GMT",
    "Sun, 06 Nov 1994 25:49:37 GMT",
  ]) {
    assert.equal(parseHttpDate(bad), undefined, bad);
  }
});

test("entity-tag lists", () => {
  assert.equal(parseEtagList(" * "), "*");
  assert.deepEqual(parseEtagList('"a", W/"b",, "c,d"'), [
    { weak: false, opaque: '"a"' },
    { weak: true, opaque: '"b"' },
    { weak: false, opaque: '"c,d"' },
  ]);
  assert.equal(parseEtagList("abc"), undefined);
  assert.equal(parseEtagList('"a" "b"'), undefined);
  assert.equal(parseEtagList('"unterminated'), undefined);
  assert.equal(parseEtagList(""), undefined);
});

test("If-None-Match: weak comparison, 304 for GET/HEAD, 412 otherwise", () => {
  assert.equal(pre({ "if-none-match": v.etag! }), "not-modified");
  assert.equal(pre({ "if-none-match": `W/${v.etag}` }), "not-modified", "weak comparison");
  assert.equal(pre({ "if-none-match": `"x", ${v.etag}` }), "not-modified");
  assert.equal(pre({ "if-none-match": "*" }), "not-modified");
  assert.equal(pre({ "if-none-match": '"other"' }), "proceed");
  assert.equal(pre({ "if-none-match": v.etag! }, "HEAD"), "not-modified");
  assert.equal(pre({ "if-none-match": v.etag! }, "DELETE"), "failed");
});

test("If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.1.3)", () => {
  assert.equal(pre({ "if-none-match": '"other"', "if-modified-since": date }), "proceed");
  assert.equal(pre({ "if-none-match": v.etag!, "if-modified-since": earlier }), "not-modified");
});

test("If-Modified-Since policies: exact, before, off; invalid dates ignored; GET/HEAD only", () => {
  assert.equal(pre({ "if-modified-since": date }), "not-modified");
  assert.equal(pre({ "if-modified-since": later }), "proceed", "exact wants the same second");
  assert.equal(pre({ "if-modified-since": later }, "GET", "before"), "not-modified");
  assert.equal(pre({ "if-modified-since": earlier }, "GET", "before"), "proceed");
  assert.equal(pre({ "if-modified-since": date }, "GET", "off"), "proceed");
  assert.equal(pre({ "if-modified-since": "garbage" }), "proceed");
  assert.equal(pre({ "if-modified-since": date }, "POST"), "proceed");
});

test("If-Match: strong comparison; * matches; failure is 412 before anything else", () => {
  assert.equal(pre({ "if-match": v.etag! }), "proceed");
  assert.equal(pre({ "if-match": "*" }), "proceed");
  assert.equal(pre({ "if-match": `W/${v.etag}` }), "failed", "a weak tag never matches strongly");
  assert.equal(pre({ "if-match": '"other"' }), "failed");
  assert.equal(pre({ "if-match": '"other"', "if-none-match": v.etag! }), "failed");
  assert.equal(pre({ "if-match": "not a tag" }), "proceed", "malformed is ignored");
});

test("If-Unmodified-Since only without If-Match", () => {
  assert.equal(pre({ "if-unmodified-since": date }), "proceed");
  assert.equal(pre({ "if-unmodified-since": later }), "proceed");
  assert.equal(pre({ "if-unmodified-since": earlier }), "failed");
  assert.equal(pre({ "if-unmodified-since": earlier, "if-match": v.etag! }), "proceed");
  assert.equal(pre({ "if-unmodified-since": "garbage" }), "proceed");
});

test("without an ETag, tags never match but dates still work", () => {
  const noTag: Validators = { etag: undefined, lastModified: mtime };
  const f = (h: Record<string, string>) =>
    evaluatePreconditions("GET", Fields.from(h), noTag, "exact");
  assert.equal(f({ "if-match": '"x"' }), "failed");
  assert.equal(f({ "if-none-match": '"x"' }), "proceed");
  assert.equal(f({ "if-modified-since": date }), "not-modified");
});

test("If-Range: a strongly matching tag or the exact date lets Range apply", () => {
  const f = (value?: string) =>
    ifRangeHolds(Fields.from(value === undefined ? {} : { "if-range": value }), v);
  assert.equal(f(), true);
  assert.equal(f(v.etag), true);
  assert.equal(f(`W/${v.etag}`), false);
  assert.equal(f('"other"'), false);
  assert.equal(f(date), true);
  assert.equal(f(later), false);
  assert.equal(f("garbage"), false);
  assert.equal(
    ifRangeHolds(Fields.from({ "if-range": '"x"' }), { etag: undefined, lastModified: mtime }),
    false,
  );
});
