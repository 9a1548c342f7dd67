/**
 * The light Response keeps the standard behaviour: it only defers building undici's object.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { LightResponse, NativeResponse, toNativeResponse } from "../../src/gateway/index.ts";

const Light = LightResponse as unknown as typeof Response;

test("a light response reads like a native one", async () => {
  const r = new Light("héllo", { status: 201, statusText: "Made", headers: { "x-a": "1" } });
  assert.ok(LightResponse.isLight(r));
  assert.ok(r instanceof NativeResponse);
  assert.equal(r.status, 201);
  assert.equal(r.ok, true);
  assert.equal(r.statusText, "Made");
  assert.deepEqual(LightResponse.parts(r), {
    status: 201,
    statusText: "Made",
    headers: { "x-a": "1" },
    body: "héllo",
  });
  // Touching headers builds the real one; from then on everything is undici's.
  assert.equal(r.headers.get("content-type"), "text/plain;charset=UTF-8");
  assert.equal(LightResponse.parts(r), undefined);
  r.headers.set("x-b", "2");
  assert.equal(toNativeResponse(r).headers.get("x-b"), "2");
  assert.equal(await r.text(), "héllo");
  assert.equal(r.bodyUsed, true);
  const clone = new Light(new Uint8Array([104, 105])).clone();
  assert.equal(await clone.text(), "hi");
});

test("static helpers and instanceof work both ways", async () => {
  const j = (LightResponse as unknown as typeof Response).json({ a: 1 }, { status: 202 });
  assert.ok(LightResponse.isLight(j));
  assert.equal(j.status, 202);
  assert.equal(j.headers.get("content-type"), "application/json");
  assert.deepEqual(await j.json(), { a: 1 });
  const native = new NativeResponse("n");
  assert.ok(native instanceof Light);
  assert.equal(LightResponse.isLight(native), false);
  assert.equal(Light.redirect("http://x.test/", 302).headers.get("location"), "http://x.test/");
  assert.equal(Light.error().type, "error");
});

test("invalid input fails as the standard says", () => {
  assert.throws(() => new Light("x", { status: 99 }), RangeError);
  assert.throws(() => new Light("x", { status: 204 }), TypeError);
  const stream = new Light(new ReadableStream());
  assert.equal(LightResponse.parts(stream), undefined);
  assert.ok(stream.body instanceof ReadableStream);
});
