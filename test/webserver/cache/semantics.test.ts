/**
 * The cache's RFC 9111 rules, one test per rule, including each place where we correct
 * http-cache-semantics (numbered as in src/webserver/cache/semantics.ts).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseCacheControl } from "../../../src/webserver/cache/cacheControl.ts";
import {
  analyzeResponse,
  clientNotModified,
  evaluateRequest,
  type Freshness,
  mergeNotModified,
  notModifiedMatches,
  revalidationFields,
  staleIfErrorAllowed,
  timeToLive,
} from "../../../src/webserver/cache/semantics.ts";
import { Fields } from "../../../src/webserver/exchange.ts";

const T0 = Date.parse("2025-01-01T00:00:00Z");
const httpDate = (ms: number) => new Date(ms).toUTCString();
const req = (fields: Record<string, string> = {}, method = "GET") => ({
  method,
  url: "/x",
  fields: Fields.from({ host: "example.com", ...fields }),
});
const res = (fields: Record<string, string>) => Fields.from({ date: httpDate(T0), ...fields });

function stored(
  fields: Record<string, string>,
  status = 200,
  request = req(),
  options: Parameters<typeof analyzeResponse>[3] = {},
): Freshness {
  const a = analyzeResponse(request, status, res(fields), { now: T0, ...options });
  assert.ok(a.storable, `expected storable, got ${a.storable ? "" : a.reason}`);
  return a.freshness;
}

function refused(fields: Record<string, string>, status = 200, request = req()): string {
  const a = analyzeResponse(request, status, res(fields), { now: T0 });
  assert.equal(a.storable, false);
  return a.storable ? "" : a.reason;
}

const at = (seconds: number, fields: Record<string, string> = {}) => ({
  fields: Fields.from(fields),
  now: T0 + seconds * 1000,
});

function decide(f: Freshness, seconds: number, fields: Record<string, string> = {}, swr?: number) {
  const a = at(seconds, fields);
  return evaluateRequest(
    f,
    a.fields,
    swr === undefined ? { now: a.now } : { now: a.now, staleWhileRevalidate: swr },
  ).use;
}

describe("freshness lifetime", () => {
  test("s-maxage wins over max-age in a shared cache, max-age over Expires", () => {
    assert.equal(stored({ "cache-control": "max-age=10, s-maxage=100" }).lifetime, 100);
    assert.equal(
      stored({ "cache-control": "max-age=10", expires: httpDate(T0 + 500_000) }).lifetime,
      10,
    );
  });
  test("Expires relative to Date; an invalid Expires is already expired", () => {
    assert.equal(stored({ expires: httpDate(T0 + 60_000) }).lifetime, 60);
    assert.equal(stored({ expires: "0", etag: '"a"' }).lifetime, 0);
  });
  test("heuristic: 10% of Date - Last-Modified, only for statuses cacheable by default", () => {
    const lm = httpDate(T0 - 1000_000);
    assert.equal(stored({ "last-modified": lm }).lifetime, 100);
    assert.equal(stored({ "last-modified": lm }, 404).lifetime, 100);
    assert.match(refused({ "last-modified": lm }, 302), /status 302/);
    // public makes any understood status storable, heuristically too
    assert.equal(stored({ "last-modified": lm, "cache-control": "public" }, 302).lifetime, 100);
    // no heuristic when an explicit time is there
    assert.equal(stored({ "last-modified": lm, "cache-control": "max-age=5" }).lifetime, 5);
  });
  test("(1) directive names are case-insensitive; quoted values keep their commas", () => {
    assert.equal(stored({ "cache-control": "Max-Age=30" }).lifetime, 30);
    const d = parseCacheControl('no-cache="set-cookie, x-a", max-age=5');
    assert.equal(d.map.get("no-cache"), "set-cookie, x-a");
    assert.equal(d.map.get("max-age"), "5");
  });
  test("(1) conflicting max-age values make the response stale", () => {
    const f = stored({ "cache-control": "max-age=60, max-age=120", etag: '"x"' });
    assert.equal(f.lifetime, 0);
  });
  test("Age counts: Age 30 of max-age 60 leaves 30 s", () => {
    const f = stored({ "cache-control": "max-age=60", age: "30" });
    assert.equal(timeToLive(f, T0), 30);
    assert.equal(decide(f, 29), "fresh");
    assert.equal(decide(f, 31), "revalidate");
  });
});

describe("storing", () => {
  test("no-store (response and request), private", () => {
    assert.match(refused({ "cache-control": "no-store, max-age=60" }), /no-store/);
    assert.match(
      refused({ "cache-control": "max-age=60" }, 200, req({ "cache-control": "no-store" })),
      /request no-store/,
    );
    assert.match(refused({ "cache-control": "private, max-age=60" }), /private/);
  });
  test("status codes cacheable by default, others not without explicit freshness", () => {
    for (const s of [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]) {
      assert.ok(stored({ "last-modified": httpDate(T0 - 100_000) }, s).lifetime > 0, `${s}`);
    }
    for (const s of [302, 303, 307, 400, 403, 500, 502, 503]) {
      refused({ "last-modified": httpDate(T0 - 100_000) }, s);
    }
    assert.equal(stored({ "cache-control": "max-age=9" }, 302).lifetime, 9);
    refused({ "cache-control": "max-age=9" }, 206);
  });
  test("Authorization: stored only with public, s-maxage or must-revalidate", () => {
    const auth = req({ authorization: "Bearer x" });
    assert.match(refused({ "cache-control": "max-age=60" }, 200, auth), /authorization/);
    for (const cc of ["public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60"]) {
      assert.ok(stored({ "cache-control": cc }, 200, auth).authOk, cc);
    }
  });
  test("Set-Cookie responses are not stored unless set-cookie is ignored, then without it", () => {
    assert.match(refused({ "cache-control": "max-age=60", "set-cookie": "s=1" }), /set-cookie/);
    const a = analyzeResponse(
      req(),
      200,
      res({ "cache-control": "max-age=60", "set-cookie": "s=1" }),
      { now: T0, ignore: new Set(["set-cookie"]) },
    );
    assert.ok(a.storable);
    assert.equal(a.fields.get("set-cookie"), undefined);
  });
  test("Vary: * is never stored; Vary names are kept", () => {
    assert.match(refused({ "cache-control": "max-age=60", vary: "Accept, *" }), /vary/);
    const f = stored({ "cache-control": "max-age=60", vary: "Accept-Language, accept" });
    assert.deepEqual(f.vary, ["accept", "accept-language"]);
  });
  test("nothing to go on (no freshness, no validator) is not stored", () => {
    assert.match(refused({}), /no freshness/);
    assert.equal(stored({ etag: '"v1"' }).lifetime, 0);
  });
  test("per-status default lifetimes apply only without explicit freshness", () => {
    const defaults = (s: number) => (s === 200 || s === 302 || s === 500 ? 300 : undefined);
    assert.equal(stored({}, 200, req(), { defaultLifetime: defaults }).lifetime, 300);
    assert.equal(stored({}, 302, req(), { defaultLifetime: defaults }).lifetime, 300);
    assert.equal(stored({}, 500, req(), { defaultLifetime: defaults }).lifetime, 300);
    const explicit = stored({ "cache-control": "max-age=7" }, 200, req(), {
      defaultLifetime: defaults,
    });
    assert.equal(explicit.lifetime, 7);
    // the RFC's prohibitions still hold
    const a = analyzeResponse(req(), 200, res({ "cache-control": "no-store" }), {
      now: T0,
      defaultLifetime: defaults,
    });
    assert.equal(a.storable, false);
  });
  test("ignored upstream fields and X-Accel-Expires", () => {
    const f = stored({ "cache-control": "no-store", etag: '"a"' }, 200, req(), {
      ignore: new Set(["cache-control"]),
      defaultLifetime: () => 60,
    });
    assert.equal(f.lifetime, 60);
    assert.equal(stored({ "cache-control": "max-age=5", "x-accel-expires": "50" }).lifetime, 50);
    assert.match(refused({ "cache-control": "max-age=5", "x-accel-expires": "0" }), /accel/);
  });
});

describe("answering from a stored response", () => {
  test("fresh, then stale: revalidate", () => {
    const f = stored({ "cache-control": "max-age=60" });
    assert.equal(decide(f, 59), "fresh");
    assert.equal(decide(f, 61), "revalidate");
  });
  test("(2) must-revalidate is served while fresh, never stale (not even max-stale)", () => {
    const f = stored({ "cache-control": "max-age=60, must-revalidate" });
    assert.equal(decide(f, 10), "fresh");
    assert.equal(decide(f, 61, { "cache-control": "max-stale" }), "revalidate");
    assert.equal(staleIfErrorAllowed(f, 3600, T0 + 61_000), false);
  });
  test("(3) proxy-revalidate keeps its lifetime, but no stale serving", () => {
    const f = stored({ "cache-control": "max-age=60, proxy-revalidate" });
    assert.equal(f.lifetime, 60);
    assert.equal(decide(f, 10), "fresh");
    assert.equal(decide(f, 61, { "cache-control": "max-stale=100" }), "revalidate");
  });
  test("(4) s-maxage implies proxy-revalidate", () => {
    const f = stored({ "cache-control": "s-maxage=60, max-age=600" });
    assert.equal(decide(f, 61, { "cache-control": "max-stale" }), "revalidate");
  });
  test("(5) no-cache: stored, validated before every use, even under max-stale or swr", () => {
    const f = stored({ "cache-control": "no-cache, stale-while-revalidate=60", etag: '"a"' });
    assert.equal(decide(f, 0), "revalidate");
    assert.equal(decide(f, 1, { "cache-control": "max-stale" }), "revalidate");
  });
  test("public allows storing and answering an authenticated request", () => {
    const f = stored({ "cache-control": "public, max-age=60" });
    assert.equal(decide(f, 1, { authorization: "Basic eA==" }), "fresh");
  });
  test("(6) an authenticated request is not answered from a response that did not allow it", () => {
    const f = stored({ "cache-control": "max-age=60" });
    assert.equal(decide(f, 1, { authorization: "Basic eA==" }), "no");
  });
  test("request no-cache, Pragma: no-cache, max-age, min-fresh, max-stale", () => {
    const f = stored({ "cache-control": "max-age=60" });
    assert.equal(decide(f, 1, { "cache-control": "no-cache" }), "revalidate");
    assert.equal(decide(f, 1, { pragma: "no-cache" }), "revalidate");
    assert.equal(decide(f, 1, { pragma: "no-cache", "cache-control": "max-stale" }), "fresh");
    assert.equal(decide(f, 20, { "cache-control": "max-age=10" }), "revalidate");
    assert.equal(decide(f, 5, { "cache-control": "max-age=10" }), "fresh");
    assert.equal(decide(f, 50, { "cache-control": "min-fresh=20" }), "revalidate");
    assert.equal(decide(f, 30, { "cache-control": "min-fresh=20" }), "fresh");
    assert.equal(decide(f, 70, { "cache-control": "max-stale=20" }), "stale");
    assert.equal(decide(f, 90, { "cache-control": "max-stale=20" }), "revalidate");
    assert.equal(decide(f, 9999, { "cache-control": "max-stale" }), "stale");
  });
  test("stale-while-revalidate: response's window, else the operator's", () => {
    const f = stored({ "cache-control": "max-age=10, stale-while-revalidate=20" });
    assert.equal(decide(f, 25), "stale-while-revalidate");
    assert.equal(decide(f, 31), "revalidate");
    const g = stored({ "cache-control": "max-age=10" });
    assert.equal(decide(g, 25), "revalidate");
    assert.equal(decide(g, 25, {}, 60), "stale-while-revalidate");
  });
  test("stale-if-error: response's window, else the operator's", () => {
    const f = stored({ "cache-control": "max-age=10, stale-if-error=30" });
    assert.equal(staleIfErrorAllowed(f, 0, T0 + 35_000), true);
    assert.equal(staleIfErrorAllowed(f, 0, T0 + 45_000), false);
    const g = stored({ "cache-control": "max-age=10" });
    assert.equal(staleIfErrorAllowed(g, 0, T0 + 15_000), false);
    assert.equal(staleIfErrorAllowed(g, 60, T0 + 15_000), true);
  });
  test("an invalidated entry is stale from the invalidation on", () => {
    const f = stored({ "cache-control": "max-age=600" });
    f.invalidatedAt = T0 + 5000;
    assert.equal(decide(f, 4), "fresh");
    assert.equal(decide(f, 6), "revalidate");
  });
});

describe("validation", () => {
  test("our conditionals replace the client's", () => {
    const out = revalidationFields(
      Fields.from({ "if-none-match": '"client"', range: "bytes=0-1", accept: "x" }),
      Fields.from({ etag: '"v1"', "last-modified": httpDate(T0) }),
    );
    assert.equal(out.get("if-none-match"), '"v1"');
    assert.equal(out.get("if-modified-since"), httpDate(T0));
    assert.equal(out.get("range"), undefined);
    assert.equal(out.get("accept"), "x");
  });
  test("a 304 selects the stored response by validator", () => {
    const s = Fields.from({ etag: '"v1"' });
    assert.ok(notModifiedMatches(s, Fields.from({ etag: '"v1"' })));
    assert.ok(!notModifiedMatches(s, Fields.from({ etag: '"v2"' })));
    assert.ok(notModifiedMatches(Fields.from({ etag: 'W/"v1"' }), Fields.from({ etag: 'W/"v1"' })));
    assert.ok(notModifiedMatches(Fields.from({}), Fields.from({})));
  });
  test("(8)(10) 304 merging: fields replaced and added, Content-Length kept, Age/Date taken", () => {
    const merged = mergeNotModified(
      Fields.from({
        etag: '"v1"',
        "cache-control": "max-age=1",
        "content-length": "5",
        "x-old": "1",
        age: "100",
        date: httpDate(T0),
      }),
      Fields.from({
        etag: '"v1"',
        "cache-control": "max-age=60",
        "x-new": "2",
        "content-length": "0",
        date: httpDate(T0 + 1000),
      }),
    );
    assert.equal(merged.get("cache-control"), "max-age=60");
    assert.equal(merged.get("x-new"), "2");
    assert.equal(merged.get("x-old"), "1");
    assert.equal(merged.get("content-length"), "5");
    assert.equal(merged.get("age"), undefined);
    assert.equal(merged.get("date"), httpDate(T0 + 1000));
  });
  test("a client's own conditional is answered from the stored response", () => {
    const s = Fields.from({ etag: '"v1"', "last-modified": httpDate(T0) });
    assert.ok(clientNotModified(Fields.from({ "if-none-match": 'W/"v1", "v0"' }), s));
    assert.ok(!clientNotModified(Fields.from({ "if-none-match": '"v2"' }), s));
    assert.ok(clientNotModified(Fields.from({ "if-modified-since": httpDate(T0 + 1) }), s));
    assert.ok(!clientNotModified(Fields.from({ "if-modified-since": httpDate(T0 - 1000) }), s));
  });
});
