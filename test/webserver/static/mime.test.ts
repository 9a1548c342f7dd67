/** Content-Type from the MIME table, default type and charset. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { staticDefaults as defaults } from "../../../src/config/settings/web/static.ts";
import { TypeNamer, typeMatches } from "../../../src/webserver/static/mime.ts";

const namer = new TypeNamer(defaults.defaultType, "utf-8", defaults.charsetTypes);

test("types from the table, charset on text-like types only", () => {
  assert.equal(namer.forPath("/a/index.html"), "text/html; charset=utf-8");
  assert.equal(namer.forPath("/a/INDEX.HTM"), "text/html; charset=utf-8");
  assert.equal(namer.forPath("/s.css"), "text/css; charset=utf-8");
  assert.equal(namer.forPath("/app.js"), "text/javascript; charset=utf-8");
  assert.equal(namer.forPath("/m.mjs"), "text/javascript; charset=utf-8");
  assert.equal(namer.forPath("/d.json"), "application/json; charset=utf-8");
  assert.equal(namer.forPath("/i.svg"), "image/svg+xml; charset=utf-8");
  assert.equal(namer.forPath("/p.png"), "image/png");
  assert.equal(namer.forPath("/v.mp4"), "video/mp4");
  assert.equal(namer.forPath("/f.woff2"), "font/woff2");
  assert.equal(namer.forPath("/w.wasm"), "application/wasm");
  assert.equal(namer.forPath("/a.tar.gz"), "application/gzip");
});

test("unknown or missing extension: the default type", () => {
  assert.equal(namer.forPath("/README"), "application/octet-stream");
  assert.equal(namer.forPath("/x.unknownext"), "application/octet-stream");
  assert.equal(namer.forPath("/.hidden"), "application/octet-stream");
  const plain = new TypeNamer("text/plain", "utf-8", defaults.charsetTypes);
  assert.equal(plain.forPath("/README"), "text/plain; charset=utf-8");
});

test("charset off, and custom charset types", () => {
  const off = new TypeNamer("application/octet-stream", undefined, defaults.charsetTypes);
  assert.equal(off.forPath("/a.html"), "text/html");
  const only = new TypeNamer("application/octet-stream", "koi8-r", ["text/html"]);
  assert.equal(only.forPath("/a.html"), "text/html; charset=koi8-r");
  assert.equal(only.forPath("/a.css"), "text/css");
  assert.equal(only.withCharset("text/html; charset=latin1"), "text/html; charset=latin1");
});

test("types: extensions added over the table", () => {
  const custom = new TypeNamer(
    "application/octet-stream",
    "utf-8",
    defaults.charsetTypes,
    new Map([
      [".conf", "text/x-nginx-conf"],
      [".png", "image/x-mine"],
    ]),
  );
  assert.equal(custom.forPath("/nginx.conf"), "text/x-nginx-conf; charset=utf-8");
  assert.equal(custom.forPath("/a.PNG"), "image/x-mine");
  assert.equal(custom.forPath("/a.css"), "text/css; charset=utf-8");
});

test("type patterns", () => {
  assert.ok(typeMatches("text/html; charset=utf-8", ["text/*"]));
  assert.ok(typeMatches("Application/JSON", ["application/json"]));
  assert.ok(typeMatches("image/png", ["*"]));
  assert.ok(!typeMatches("image/png", ["text/*", "application/json"]));
  assert.ok(!typeMatches("textual/x", ["text/*"]));
});

test("forPath: the type of the last path is reused only for that path", () => {
  const t = new TypeNamer("application/octet-stream", undefined, []);
  assert.equal(t.forPath(""), "application/octet-stream");
  assert.equal(t.forPath("/a/x.html"), "text/html");
  assert.equal(t.forPath("/a/x.html"), "text/html");
  assert.equal(t.forPath("/a/x.css"), "text/css");
  assert.equal(t.forPath("/a/x.HTML"), "text/html");
  assert.equal(t.forPath("/a/x"), "application/octet-stream");
});
