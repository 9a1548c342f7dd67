/**
 * The parser corpus (gunicorn's tests/requests, for us): every `corpus/<kind>/<valid|invalid>/
 * <name>.http` is a raw message (escape syntax in collect.ts) and `<name>.json` beside it says
 * what the parser must make of it:
 *
 * - valid: `messages`, each with the fields to compare (method/target or status, version, headers,
 *   body, and any of trailers, host, port, form, framing, keepAlive, upgrade, expectContinue);
 * - invalid: the `status` to answer, the error `code`, and how many `messages` parse before it.
 *
 * Optional: `limits` (parser limits for the case), `methods` (response mode: the request method
 * each response answers), `eof` (the peer closes after the bytes).
 *
 * Each case runs whole, fed byte by byte, and cut at every position: an incremental parser must
 * reach the same outcome however the bytes arrive.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { collect, type Outcome } from "./collect.ts";
import { type CorpusCase, corpusCases } from "./corpus.ts";

function run(c: CorpusCase, cuts?: number[]): Outcome {
  return collect(c.raw, {
    kind: c.kind,
    limits: c.expect.limits,
    methods: c.expect.methods,
    eof: c.expect.eof,
    cuts,
  });
}

function check(c: CorpusCase, got: Outcome, how: string): void {
  const e = c.expect;
  const where = `${c.name} (${how})`;
  if (c.valid) {
    assert.equal(got.error, undefined, `${where}: ${got.error?.code}: ${got.error?.message}`);
    assert.equal(got.partial, false, `${where}: input left unparsed`);
    const want = e.messages as Record<string, unknown>[];
    assert.equal(got.messages.length, want.length, `${where}: message count`);
    want.forEach((m, i) => {
      const actual = got.messages[i] as unknown as Record<string, unknown>;
      for (const key of Object.keys(m)) {
        assert.deepEqual(actual[key], m[key], `${where}: message ${i} ${key}`);
      }
    });
  } else {
    assert.ok(got.error, `${where}: accepted, expected ${e.status} ${e.code}`);
    assert.equal(got.error.status, e.status, `${where}: status (${got.error.code})`);
    assert.equal(got.error.code, e.code, `${where}: code`);
    assert.equal(got.messages.length, e.messages, `${where}: messages before the error`);
  }
}

const cases = corpusCases();

test("the corpus covers what it must", () => {
  const names = new Set(cases.map((c) => c.name));
  assert.ok(cases.length > 150, `${cases.length} cases`);
  for (const n of [
    "requests/invalid/smuggle-cl-te",
    "requests/invalid/smuggle-te-cl",
    "requests/invalid/smuggle-cl-cl",
    "requests/invalid/smuggle-te-xchunked",
    "requests/invalid/space-before-colon",
    "requests/invalid/chunk-size-overflow",
    "requests/invalid/chunk-ext-too-large",
    "requests/invalid/field-bare-lf",
    "requests/invalid/field-value-bare-cr",
    "requests/invalid/field-value-nul",
    "responses/invalid/cl-te",
  ]) {
    assert.ok(names.has(n), `missing ${n}`);
  }
});

for (const c of cases) {
  const meaningful = c.expect.doc;
  test(`${c.name}: ${meaningful}`, () => {
    const whole = run(c);
    check(c, whole, "whole");
    const bytes = Array.from({ length: c.raw.length }, (_, i) => i);
    check(c, run(c, bytes), "byte by byte");
    for (let cut = 1; cut < c.raw.length; cut++) {
      const got = run(c, [cut]);
      assert.deepEqual(got, whole, `${c.name}: cut at ${cut} differs from whole`);
    }
  });
}
