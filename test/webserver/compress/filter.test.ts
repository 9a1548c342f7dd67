/** The compression filter on responses of every body kind, decompressed back to check. */
import assert from "node:assert/strict";
import { openSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { type TestContext, test } from "node:test";
import zlib from "node:zlib";
import compressModule, { type CompressSettings } from "../../../src/webserver/compress/index.ts";
import { typeMatcher } from "../../../src/webserver/compress/types.ts";
import { type Body, Fields, type WebResponse } from "../../../src/webserver/exchange.ts";
import type { ResponseFilter } from "../../../src/webserver/module.ts";
import { bodyOf, request, setUp, tree } from "../static/harness.ts";

const text = "hello compressible world. ".repeat(400); // 10.4 KB

async function filter(
  t: TestContext,
  settings: Partial<CompressSettings>,
): Promise<ResponseFilter> {
  const h = await setUp(t, compressModule, settings);
  assert.ok(h?.filter);
  return h.filter;
}

function res(body: Body, fields: Record<string, string> = {}, status = 200): WebResponse {
  return {
    status,
    fields: Fields.from({ "content-type": "text/html; charset=utf-8", ...fields }),
    body,
  };
}

const bytes = (s: string = text): Body => ({ kind: "bytes", data: Buffer.from(s) });

function decode(coding: string | undefined, data: Buffer): string {
  switch (coding) {
    case "gzip":
      return zlib.gunzipSync(data).toString();
    case "br":
      return zlib.brotliDecompressSync(data).toString();
    case "zstd":
      return zlib.zstdDecompressSync(data).toString();
    default:
      return data.toString();
  }
}

test("off by default: no filter at all", async (t) => {
  assert.equal(await setUp(t, compressModule, {}), undefined);
});

test("each coding, chosen by Accept-Encoding; Vary, weak ETag, no Accept-Ranges", async (t) => {
  const f = await filter(t, { gzip: true, brotli: true, zstd: true });
  for (const [ae, expected] of [
    ["gzip", "gzip"],
    ["br", "br"],
    ["zstd", "zstd"],
    ["gzip, deflate, br, zstd", "zstd"],
    ["gzip, br", "br"],
    ["br;q=0.5, gzip", "gzip"],
  ] as const) {
    const out = await f(
      request("GET", "/", { "accept-encoding": ae }),
      res(bytes(), { etag: '"abc-1"', "accept-ranges": "bytes" }),
    );
    assert.equal(out.fields.get("content-encoding"), expected, ae);
    assert.equal(out.fields.get("vary"), "Accept-Encoding");
    assert.equal(out.fields.get("etag"), 'W/"abc-1"');
    assert.equal(out.fields.get("accept-ranges"), undefined);
    assert.equal(out.body.kind, "bytes", "a body in memory stays in memory (with a length)");
    const data = await bodyOf(out);
    assert.ok(data.length < text.length / 5);
    assert.equal(decode(expected, data), text);
  }
});

test("not accepted: unchanged but Vary; not eligible: untouched", async (t) => {
  const f = await filter(t, { gzip: true });
  const plain = await f(request("GET", "/"), res(bytes(), { vary: "Origin" }));
  assert.equal(plain.fields.get("content-encoding"), undefined);
  assert.equal(plain.fields.get("vary"), "Origin, Accept-Encoding");
  assert.equal((await bodyOf(plain)).toString(), text);
  const ae = { "accept-encoding": "gzip" };
  const cases: [string, WebResponse][] = [
    ["small", res(bytes("tiny"))],
    ["image", res(bytes(), { "content-type": "image/png" })],
    ["octet-stream", res(bytes(), { "content-type": "application/octet-stream" })],
    ["no type", { status: 200, fields: new Fields(), body: bytes() }],
    ["already encoded", res(bytes(), { "content-encoding": "br" })],
    ["no-transform", res(bytes(), { "cache-control": "public, no-transform" })],
    ["206", res(bytes(), { "content-range": "bytes 0-9/100" }, 206)],
    ["304", res({ kind: "empty" }, {}, 304)],
    ["301", res(bytes(), {}, 301)],
    ["empty body", res({ kind: "empty" })],
  ];
  for (const [name, r] of cases) {
    const out = await f(request("GET", "/", ae), r);
    assert.equal(out.fields.get("content-encoding") === "gzip", false, name);
    assert.equal(out.fields.get("vary"), undefined, name);
  }
  const notFound = await f(request("GET", "/", ae), res(bytes(), {}, 404));
  assert.equal(
    notFound.fields.get("content-encoding"),
    "gzip",
    "error pages are compressed, as nginx does",
  );
});

test("file and stream bodies are streamed through the compressor", async (t) => {
  const dir = tree(t, { "page.html": `XXXX${text}YYYY` });
  const f = await filter(t, { brotli: true, compressMinLength: 100 });
  const fd = openSync(join(dir, "page.html"), "r");
  const file = await f(
    request("GET", "/", { "accept-encoding": "br" }),
    res({ kind: "file", fd, start: 4, end: 4 + text.length, path: "page.html" }),
  );
  assert.equal(file.body.kind, "stream");
  assert.equal(file.body.kind === "stream" && file.body.length, undefined, "chunked");
  assert.equal(decode("br", await bodyOf(file)), text);
  const stream = await f(
    request("GET", "/", { "accept-encoding": "br" }),
    res({ kind: "stream", stream: Readable.from([text.slice(0, 5000), text.slice(5000)]) }),
  );
  assert.equal(decode("br", await bodyOf(stream)), text);
  // unknown length is compressed (nothing to compare with the minimum)
  const unknown = await f(
    request("GET", "/", { "accept-encoding": "br" }),
    res({ kind: "stream", stream: Readable.from(["short"]) }),
  );
  assert.equal(unknown.fields.get("content-encoding"), "br");
  assert.equal(decode("br", await bodyOf(unknown)), "short");
});

test("HEAD: the headers a GET would get, no body work", async (t) => {
  const dir = tree(t, { "page.html": text });
  const f = await filter(t, { gzip: true });
  const fd = openSync(join(dir, "page.html"), "r");
  const out = await f(
    request("HEAD", "/", { "accept-encoding": "gzip" }),
    res({ kind: "file", fd, start: 0, end: text.length, path: "page.html" }),
  );
  assert.equal(out.fields.get("content-encoding"), "gzip");
  assert.equal(out.body.kind === "stream" && out.body.length, undefined);
});

test("compressTypes patterns and the default set", () => {
  const d = typeMatcher(undefined);
  for (const yes of [
    "text/html",
    "text/css",
    "text/plain",
    "application/json",
    "text/javascript",
    "application/javascript",
    "image/svg+xml",
    "application/wasm",
    "application/manifest+json",
    "font/ttf",
  ]) {
    assert.ok(d(yes), yes);
  }
  for (const no of [
    "image/png",
    "image/jpeg",
    "video/mp4",
    "application/zip",
    "application/gzip",
    "font/woff2",
    "application/octet-stream",
    "text/event-stream",
  ]) {
    assert.ok(!d(no), no);
  }
  const m = typeMatcher(["text/*", "application/json"]);
  assert.ok(m("text/x-anything") && m("application/json") && !m("application/xml"));
  assert.ok(typeMatcher(["*"])("image/png"));
});
