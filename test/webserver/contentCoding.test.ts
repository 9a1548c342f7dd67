/** Accept-Encoding negotiation (RFC 9110 §12.5.3). */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  addToList,
  negotiateEncoding,
  parseAcceptEncoding,
} from "../../src/webserver/contentCoding.ts";

const all = ["br", "zstd", "gzip"] as const;

test("q-values are parsed, malformed members skipped", () => {
  const a = parseAcceptEncoding("gzip;q=0.5, br , *;q=0.1, identity;q=0, bad coding, x;q=2");
  assert.equal(a.get("gzip"), 0.5);
  assert.equal(a.get("br"), 1);
  assert.equal(a.get("*"), 0.1);
  assert.equal(a.get("identity"), 0);
  assert.equal(a.get("x"), 1, "an out-of-range q is ignored (q=1)");
  assert.equal(a.has("bad coding"), false);
  assert.equal(parseAcceptEncoding("GZip;Q=0.3").get("gzip"), 0.3);
});

test("the best q wins; ties go to the server's order", () => {
  assert.equal(negotiateEncoding("gzip, deflate, br, zstd", all), "br");
  assert.equal(negotiateEncoding("gzip, br", ["gzip", "br"]), "gzip");
  assert.equal(negotiateEncoding("gzip;q=1, br;q=0.5", all), "gzip");
  assert.equal(negotiateEncoding("zstd;q=0.9, gzip;q=0.8", all), "zstd");
  assert.equal(negotiateEncoding("deflate", all), undefined);
});

test("absent or empty Accept-Encoding means identity", () => {
  assert.equal(negotiateEncoding(undefined, all), undefined);
  assert.equal(negotiateEncoding("", all), undefined);
  assert.equal(negotiateEncoding("identity", all), undefined);
});

test("q=0 excludes; * covers unnamed codings; x-gzip is gzip", () => {
  assert.equal(negotiateEncoding("br;q=0, gzip", all), "gzip");
  assert.equal(negotiateEncoding("*", all), "br");
  assert.equal(negotiateEncoding("*;q=0.5, br;q=0", all), "zstd");
  assert.equal(negotiateEncoding("*;q=0", all), undefined);
  assert.equal(negotiateEncoding("x-gzip", all), "gzip");
  assert.equal(negotiateEncoding("gzip;q=0", ["gzip"]), undefined);
});

test("a coding less wanted than identity loses to it", () => {
  assert.equal(negotiateEncoding("gzip;q=0.5, identity", ["gzip"]), undefined);
  assert.equal(negotiateEncoding("gzip;q=0.5, identity;q=0.5", ["gzip"]), "gzip");
  assert.equal(negotiateEncoding("gzip;q=0.1, identity;q=0", ["gzip"]), "gzip");
});

test("nothing offered: identity", () => {
  assert.equal(negotiateEncoding("gzip", []), undefined);
});

test("addToList adds a token once", () => {
  assert.equal(addToList(undefined, "Accept-Encoding"), "Accept-Encoding");
  assert.equal(addToList("Accept", "Accept-Encoding"), "Accept, Accept-Encoding");
  assert.equal(addToList("accept-encoding", "Accept-Encoding"), "accept-encoding");
  assert.equal(addToList("*", "Accept-Encoding"), "*");
});
