/** Request path -> file path: root, alias, and every way a path might try to get out. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  encodePath,
  hiddenSegment,
  type Mapping,
  mapPath,
  refusePath,
} from "../../../src/webserver/static/paths.ts";

const root: Mapping = { kind: "root", dir: "/srv/www" };
const alias = (raw: string, prefix: string): Mapping => ({
  kind: "alias",
  dir: raw.length > 1 ? raw.replace(/\/$/, "") : raw,
  raw,
  prefix,
});

test("root: the file is root + path", () => {
  assert.equal(mapPath("/", root), "/srv/www/");
  assert.equal(mapPath("/a/b.css", root), "/srv/www/a/b.css");
  assert.equal(mapPath("/dir/", root), "/srv/www/dir/");
  assert.equal(mapPath("/a", { kind: "root", dir: "/" }), "/a");
});

test("alias: the location prefix is replaced, as nginx concatenates", () => {
  assert.equal(mapPath("/img/a.png", alias("/data/pics/", "/img/")), "/data/pics/a.png");
  assert.equal(mapPath("/img/", alias("/data/pics/", "/img/")), "/data/pics/");
  assert.equal(mapPath("/img/a.png", alias("/data/pics", "/img")), "/data/pics/a.png");
  assert.equal(mapPath("/img", alias("/data/pics", "/img")), "/data/pics");
  assert.equal(mapPath("/img/a.png", alias("/data/pics/", "/img")), "/data/pics/a.png");
  assert.equal(mapPath("/other/a.png", alias("/data/pics/", "/img/")), undefined);
  assert.equal(mapPath("/favicon.ico", alias("/data/icon.ico", "/favicon.ico")), "/data/icon.ico");
});

test("alias: prefix and directory disagreeing on the slash never leave the directory", () => {
  // nginx serves /data/secret here (the well-known alias traversal); we do not.
  assert.equal(mapPath("/img../secret", alias("/data/pics/", "/img")), undefined);
  assert.equal(mapPath("/img..", alias("/data/pics/", "/img")), undefined);
  // and the sibling directory /data/picsx is not reachable either
  assert.equal(mapPath("/imgx/a", alias("/data/pics", "/img")), undefined);
});

test("alias in a regex location: captures substituted, kept inside the fixed part", () => {
  // the template "/data/$1/$2.png", rendered with these captures
  const m = (a: string, b: string): Mapping => ({
    kind: "aliasRegex",
    expand: () => `/data/${a}/${b}.png`,
    dir: "/data",
  });
  assert.equal(mapPath("/x", m("a", "b")), "/data/a/b.png");
  assert.equal(mapPath("/x", m("..", "etc/passwd")), undefined);
  assert.equal(mapPath("/x", m("a/../..", "x")), undefined);
  assert.equal(mapPath("/x", m("a\0", "x")), undefined);
});

// What a client might send, after the core's one decoding and normalisation (and before it, in
// case a path reaches us unnormalised). None of these may map outside /srv/www.
const corpus = [
  "/../etc/passwd",
  "/..",
  "/a/../../etc/passwd",
  "/./../etc/passwd",
  "/..\\..\\etc\\passwd",
  "/a\\..\\..\\etc/passwd",
  "/..%2fetc/passwd", // double-encoded: after one decoding the %2f stays literal
  "/%2e%2e/etc/passwd",
  "/%252e%252e/etc/passwd",
  "/.%2e/etc/passwd",
  "/etc/passwd\0.png",
  "/\0",
  "/..;/etc/passwd",
  "/a/..",
  "\\..\\etc\\passwd",
  `/${"a/".repeat(3000)}`,
  `/${"../".repeat(20)}etc/passwd`,
];

test("traversal corpus: refused, or mapped inside the root", () => {
  for (const path of corpus) {
    const refusal = refusePath(path);
    if (refusal !== undefined) continue;
    const file = mapPath(path, root);
    assert.ok(
      file === undefined || file === "/srv/www" || file.startsWith("/srv/www/"),
      `${JSON.stringify(path)} -> ${file}`,
    );
  }
  assert.equal(refusePath("/a/../b"), "bad");
  assert.equal(refusePath("/a\\..\\b"), "bad");
  assert.equal(refusePath("/a\0"), "bad");
  assert.equal(refusePath(`/${"a".repeat(5000)}`), "too long");
  assert.equal(refusePath("/a..b/..c/c../%2e%2e"), undefined, "dots inside names are names");
});

test("dotfiles: any hidden segment but .well-known", () => {
  assert.equal(hiddenSegment("/.env"), true);
  assert.equal(hiddenSegment("/a/.git/config"), true);
  assert.equal(hiddenSegment("/a/b.c"), false);
  assert.equal(hiddenSegment("/.well-known/acme-challenge/x"), false);
  assert.equal(hiddenSegment("/.well-known/.hidden"), true);
  assert.equal(hiddenSegment("/"), false);
});

test("Location paths are percent-encoded; a backslash cannot make them protocol-relative", () => {
  assert.equal(encodePath("/a b/é/"), "/a%20b/%C3%A9/");
  assert.equal(encodePath("/\\evil.example/"), "/%5Cevil.example/");
  assert.equal(encodePath("/what?#/"), "/what%3F%23/");
  assert.equal(encodePath("/100%/"), "/100%25/");
});
