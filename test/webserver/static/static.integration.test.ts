/**
 * The static module and the compression filter through real `brigade web` processes on ephemeral
 * ports: the quick start (and edits showing up), then one configured server for internal
 * redirects (index, tryFiles) through the core's router, error fields on the wire, large files,
 * compression, listings, and a corpus of traversal attempts sent as raw bytes. (Few processes:
 * each costs seconds to start.)
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it, test } from "node:test";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import type { RunningServer } from "../../../bench/lib/peers.ts";
import { tree } from "./harness.ts";
import { raw, request, startBrigade, startQuick } from "./servers.ts";

const page = `<!doctype html><title>x</title>${"<p>compressible paragraph</p>\n".repeat(300)}`;

test("quick start: index, files, 404, 405 with Allow, 416 with Content-Range, flags, edits show up", async (t) => {
  const root = tree(t, {
    "index.html": "<h1>hi</h1>",
    "a.txt": "0123456789",
    "sub/index.html": "sub",
    "list/x.txt": "x",
    "page.html": page,
  });
  const s = await startQuick(t, root, ["--autoindex", "--gzip"]);
  const home = await request(s.port, "/");
  assert.equal(home.status, 200);
  assert.equal(home.body.toString(), "<h1>hi</h1>");
  assert.equal(home.headers["content-type"], "text/html; charset=utf-8");
  assert.match(home.headers.etag ?? "", /^"[0-9a-f]+-b"$/);
  const sub = await request(s.port, "/sub");
  assert.equal(sub.status, 301);
  assert.equal(sub.headers.location, "/sub/");
  assert.equal((await request(s.port, "/sub/")).body.toString(), "sub");
  assert.equal((await request(s.port, "/nope")).status, 404);
  assert.match((await request(s.port, "/list/")).body.toString(), /href="x.txt"/, "--autoindex");
  const gz = await request(s.port, "/page.html", { "accept-encoding": "gzip" });
  assert.equal(gunzipSync(gz.body).toString(), page, "--gzip");
  const post = await request(s.port, "/a.txt", { "content-length": "0" }, "POST");
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, "GET, HEAD");
  const bad = await request(s.port, "/a.txt", { range: "bytes=50-" });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers["content-range"], "bytes */10");
  const head = await request(s.port, "/a.txt", {}, "HEAD");
  assert.equal(head.headers["content-length"], "10");
  assert.equal(head.body.length, 0);
  const etag = (await request(s.port, "/a.txt")).headers.etag!;
  const nm = await request(s.port, "/a.txt", { "if-none-match": etag });
  assert.equal(nm.status, 304);
  assert.equal(nm.body.length, 0);

  // An edit shows up once the cache revalidates (open-file cache `valid` is 1 s by default).
  writeFileSync(join(root, "a.txt"), "changed!");
  const deadline = Date.now() + 10_000;
  let seen = "";
  while (Date.now() < deadline) {
    seen = (await request(s.port, "/a.txt")).body.toString();
    if (seen === "changed!") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(seen, "changed!");
});

describe("a configured server", () => {
  const cleanups: (() => unknown)[] = [];
  const life = { after: (fn: () => unknown) => cleanups.push(fn) };
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  const big = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251;
  let s: RunningServer;

  before(async () => {
    const base = tree(life, {
      "www/index.html": "in",
      "www/ok.txt": "ok",
      "www/app/index.html": "SPA",
      "www/app/main.js": "js",
      "www/docs/index.html": "DOCS",
      "www/other/x": "x",
      "www/big.bin": big,
      "www/c/page.html": page,
      "www/c/pre.css": "p{}".repeat(300),
      "www/c/img.png": Buffer.alloc(5000, 1),
      "www/files/a.txt": "a",
      "www/files/b/": "",
      "pics/p.png": "p",
      "secret.txt": "TOPSECRET",
      "picsx/secret.txt": "TOPSECRET",
    });
    const www = join(base, "www");
    writeFileSync(join(www, "c/pre.css.gz"), gzipSync("PRE"));
    symlinkSync(join(base, "secret.txt"), join(www, "leak.txt"));
    symlinkSync(base, join(www, "up"));
    s = await startBrigade(life, {
      root: www,
      symlinks: "off",
      locations: [
        { match: "/app/", tryFiles: ["$uri", "/app/index.html"] },
        { match: "/docs", tryFiles: ["$uri", "$uri/", "=404"] },
        { match: "/other/", tryFiles: ["$uri", "@fallback"] },
        { match: "@fallback", return: "204" },
        { match: "/q/", tryFiles: ["$uri", "/args"] },
        { match: "/qa/", tryFiles: ["$uri", "/args?$args&more=1"] },
        { match: "= /args", return: "200 args=$args uri=$uri" },
        { match: "/c/", gzip: true, brotli: true, precompressed: ["gzip"] },
        { match: "/files/", autoindex: true },
        { match: "/img", alias: `${base}/pics/` },
      ],
    });
  });

  it("routes tryFiles, index and named locations through the router", async () => {
    assert.equal((await request(s.port, "/app/deep/route?x=1")).body.toString(), "SPA");
    assert.equal((await request(s.port, "/app/main.js")).body.toString(), "js");
    assert.equal((await request(s.port, "/docs")).body.toString(), "DOCS");
    assert.equal((await request(s.port, "/docs/missing")).status, 404);
    assert.equal((await request(s.port, "/other/x")).body.toString(), "x");
    assert.equal((await request(s.port, "/other/y")).status, 204);
    // nginx's: a fallback without "?" drops the client's query; with one, it is what it says
    assert.equal((await request(s.port, "/q/x?a=1")).body.toString(), "args= uri=/args");
    assert.equal((await request(s.port, "/qa/x?a=1")).body.toString(), "args=a=1&more=1 uri=/args");
  });

  it("streams large files whole, and ranges of them", async () => {
    const r = await request(s.port, "/big.bin");
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-length"], String(big.length));
    const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    assert.equal(digest(r.body), digest(big));
    const part = await request(s.port, "/big.bin", { range: "bytes=1000000-1000999" });
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, big.subarray(1000000, 1001000));
    const multi = await request(s.port, "/big.bin", { range: "bytes=0-9,-10" });
    assert.equal(multi.status, 206);
    assert.match(multi.headers["content-type"]!, /^multipart\/byteranges; boundary=/);
    assert.equal(multi.body.length, Number(multi.headers["content-length"]));
  });

  it("compresses on the fly and serves precompressed siblings", async () => {
    const br = await request(s.port, "/c/page.html", { "accept-encoding": "gzip, br" });
    assert.equal(br.headers["content-encoding"], "br");
    assert.equal(br.headers.vary, "Accept-Encoding");
    assert.match(br.headers.etag ?? "", /^W\/"/);
    assert.equal(brotliDecompressSync(br.body).toString(), page);
    const gz = await request(s.port, "/c/page.html", { "accept-encoding": "gzip" });
    assert.equal(gunzipSync(gz.body).toString(), page);
    const plain = await request(s.port, "/c/page.html");
    assert.equal(plain.headers["content-encoding"], undefined);
    assert.equal(plain.body.toString(), page);
    const head = await request(s.port, "/c/page.html", { "accept-encoding": "br" }, "HEAD");
    assert.equal(head.headers["content-encoding"], "br");
    assert.equal(head.body.length, 0);
    // a precompressed sibling is served as it is, not compressed again
    const pre = await request(s.port, "/c/pre.css", { "accept-encoding": "gzip, br" });
    assert.equal(pre.headers["content-encoding"], "gzip");
    assert.equal(gunzipSync(pre.body).toString(), "PRE");
    // images are not compressed; ranges are not compressed
    const img = await request(s.port, "/c/img.png", { "accept-encoding": "br" });
    assert.equal(img.headers["content-encoding"], undefined);
    const range = await request(s.port, "/c/page.html", {
      "accept-encoding": "br",
      range: "bytes=0-9",
    });
    assert.equal(range.status, 206);
    assert.equal(range.headers["content-encoding"], undefined);
    // compression is per location
    const elsewhere = await request(s.port, "/ok.txt", { "accept-encoding": "br" });
    assert.equal(elsewhere.headers["content-encoding"], undefined);
  });

  it("lists directories as HTML, and JSON when asked", async () => {
    const html = await request(s.port, "/files/");
    assert.equal(html.status, 200);
    assert.match(html.body.toString(), /<a href="b\/">b\/<\/a>.*<a href="a.txt">a.txt<\/a>/s);
    const json = await request(s.port, "/files/", { accept: "application/json" });
    assert.deepEqual(
      JSON.parse(json.body.toString()).map((e: { name: string }) => e.name),
      ["b", "a.txt"],
    );
  });

  it("never lets a traversal attempt out of the root or alias", async () => {
    const targets = [
      "/../secret.txt",
      "/../../../../../../etc/passwd",
      "/%2e%2e/secret.txt",
      "/%2E%2E/secret.txt",
      "/.%2e/secret.txt",
      "/%2e%2e%2fsecret.txt",
      "/..%2fsecret.txt",
      "/..%2Fsecret.txt",
      "/%252e%252e/secret.txt",
      "/%252e%252e%252fsecret.txt",
      "/..\\secret.txt",
      "/%5c..%5csecret.txt",
      "/..%5csecret.txt",
      "/ok.txt/../../secret.txt",
      "/ok.txt%00.html",
      "/%00/../secret.txt",
      "/%c0%ae%c0%ae/secret.txt",
      "/%c0%af../secret.txt",
      "/%e0%80%ae%e0%80%ae/secret.txt",
      "/leak.txt",
      "/up/secret.txt",
      "/up/picsx/secret.txt",
      "/img../secret.txt",
      "/img/../secret.txt",
      "/img/..%2fsecret.txt",
      "/imgx/secret.txt",
      "/img..%2fsecret.txt",
      "http://localhost/../secret.txt",
      "/./.././secret.txt",
      "/a/b/c/../../../../secret.txt",
      `/${"a".repeat(5000)}`,
      `/${"../".repeat(1000)}secret.txt`,
      `/${"%2e%2e/".repeat(300)}secret.txt`,
    ];
    for (const target of targets) {
      const r = await raw(s.port, `GET ${target} HTTP/1.1\r\nHost: localhost`);
      assert.ok(!r.body.includes("TOPSECRET"), `${target} leaked: ${r.status}`);
      assert.ok([400, 403, 404, 414].includes(r.status), `${target}: ${r.status}`);
    }
    // and the legitimate neighbours still work
    assert.equal((await request(s.port, "/ok.txt")).status, 200);
    assert.equal((await request(s.port, "/img/p.png")).body.toString(), "p");
  });
});
