/**
 * The static content handler on real files, called directly (no engine): every decision of
 * serve.ts, with the settings of fields.ts.
 */
import assert from "node:assert/strict";
import { chmodSync, lchownSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { staticFields } from "../../../src/config/settings/web/static.ts";
import type { Issue } from "../../../src/config/types.ts";
import { HttpError, type WebRequest, type WebResponse } from "../../../src/webserver/exchange.ts";
import type { ContentHandler, Reroute } from "../../../src/webserver/module.ts";
import staticModule, { type StaticSettings } from "../../../src/webserver/static/index.ts";
import { bodyOf, discard, isReroute, request, setUp, tree } from "./harness.ts";

const big = Buffer.alloc(1536 * 1024, "b"); // above the in-memory limit (1 MiB)

function site(t: TestContext): string {
  return tree(t, {
    "index.html": "<h1>home</h1>",
    "a.txt": "0123456789",
    "style.css": "body{}",
    "big.bin": big,
    "docs/index.html": "docs",
    "empty/": "",
    "noindex/x.txt": "x",
    "noindex/sub/": "",
    ".env": "SECRET=1",
    ".git/config": "[core]",
    ".well-known/security.txt": "Contact: x",
    "app.js": "console.log(1)",
    "app.js.br": "BROTLI",
    "app.js.gz": "GZIP!",
    "only.css.gz": "gz",
  });
}

async function handler(
  t: TestContext,
  settings: Partial<StaticSettings>,
  match = "",
): Promise<ContentHandler> {
  const h = await setUp(t, staticModule, settings, match);
  assert.ok(h?.defaultContent, "static is the default content of the location");
  assert.equal(h.content, undefined, "and does not claim it over another module");
  return h.defaultContent;
}

async function get(
  h: ContentHandler,
  target: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<WebResponse> {
  const r = await h(request(method, target, headers));
  assert.ok(
    !isReroute(r),
    `expected a response for ${target}, got a reroute to ${(r as Reroute).reroute}`,
  );
  return r;
}

async function status(
  h: ContentHandler,
  target: string | WebRequest,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<number> {
  try {
    const r = await h(typeof target === "string" ? request(method, target, headers) : target);
    if (isReroute(r)) return -1;
    discard(r);
    return r.status;
  } catch (err) {
    if (err instanceof HttpError) return err.status;
    throw err;
  }
}

/** `call` must fail with an HttpError of status `code` (thrown, or as a rejection). */
async function rejects(
  call: () => unknown,
  code: number,
  check?: (e: HttpError) => void,
): Promise<void> {
  await assert.rejects(Promise.resolve().then(call), (e: unknown) => {
    assert.ok(e instanceof HttpError, String(e));
    assert.equal(e.status, code);
    check?.(e);
    return true;
  });
}

test("no root or alias: the module stays out of the location", async (t) => {
  assert.equal(await setUp(t, staticModule, {}), undefined);
  await assert.rejects(
    setUp(t, staticModule, { tryFiles: ["$uri", "=404"] }),
    /tryFiles: needs a root/,
  );
});

test("GET and HEAD of a small file: from memory, with validators", async (t) => {
  const root = site(t);
  const h = await handler(t, { root });
  const r = await get(h, "/a.txt");
  assert.equal(r.status, 200);
  assert.equal(r.body.kind, "bytes");
  assert.equal((await bodyOf(r)).toString(), "0123456789");
  assert.equal(r.fields.get("content-type"), "text/plain; charset=utf-8");
  assert.match(r.fields.get("etag")!, /^"[0-9a-f]+-a"$/);
  assert.match(r.fields.get("last-modified")!, /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.equal(r.fields.get("accept-ranges"), "bytes");
  assert.equal(r.fields.get("vary"), undefined);
  const head = await get(h, "/a.txt", {}, "HEAD");
  assert.equal(head.status, 200);
  assert.equal(head.fields.get("etag"), r.fields.get("etag"));
});

test("the whole-file answer is reused only for the same file, unconditionally asked", async (t) => {
  const root = site(t);
  const h = await handler(t, {
    root,
    openFileCache: { max: 10, inactive: 60, valid: 0.05, maxFileSize: 65536, maxBytes: 1 << 20 },
  });
  const first = await get(h, "/a.txt");
  const again = await get(h, "/a.txt");
  assert.deepEqual(again.fields.list, first.fields.list, "the same fields for the same entry");
  assert.notEqual(again.fields, first.fields, "each answer has fields of its own");
  again.fields.set("x-changed-by-a-filter", "1");
  const etag = first.fields.get("etag")!;
  assert.equal(await status(h, "/a.txt", { "if-none-match": etag }), 304);
  assert.equal(await status(h, "/a.txt", { "if-match": '"other"' }), 412);
  const part = await get(h, "/a.txt", { range: "bytes=0-1" });
  assert.equal(part.status, 206);
  assert.equal((await bodyOf(part)).toString(), "01");
  assert.deepEqual(
    (await get(h, "/a.txt")).fields.list,
    first.fields.list,
    "neither a changed answer nor conditional and range requests change the next",
  );
  // A changed file is a new cache entry: a new answer with its own bytes and validators.
  writeFileSync(join(root, "a.txt"), "changed!");
  utimesSync(join(root, "a.txt"), new Date(), new Date(Date.now() + 5000));
  await new Promise((r) => setTimeout(r, 80));
  const after = await get(h, "/a.txt");
  assert.equal((await bodyOf(after)).toString(), "changed!");
  assert.notEqual(after.fields.get("etag"), etag);
  assert.equal((await bodyOf(first)).toString(), "0123456789", "the old answer is untouched");
});

test("a large file is a file body (the engine streams it), with the descriptor's facts", async (t) => {
  const root = site(t);
  const h = await handler(t, { root });
  const r = await get(h, "/big.bin");
  assert.equal(r.body.kind, "file");
  assert.equal(r.fields.get("etag")?.endsWith(`-${big.length.toString(16)}"`), true);
  assert.deepEqual(await bodyOf(r), big);
});

test("caching off: small files are file bodies too", async (t) => {
  const root = site(t);
  const h = await handler(t, {
    root,
    openFileCache: { max: 0, inactive: 60, valid: 1, maxFileSize: 65536, maxBytes: 1 << 20 },
  });
  const r = await get(h, "/a.txt");
  assert.equal(r.body.kind, "file");
  assert.equal((await bodyOf(r)).toString(), "0123456789");
});

test("locations with the same cache settings share one open-file cache", async (t) => {
  const root = site(t);
  const shared = new Map<string, unknown>();
  const a = (await setUp(t, staticModule, { root }, "/a/", process.cwd(), shared))!.defaultContent!;
  const b = (await setUp(t, staticModule, { root }, "/b/", process.cwd(), shared))!.defaultContent!;
  const c = (await setUp(
    t,
    staticModule,
    {
      root,
      openFileCache: { max: 5, inactive: 60, valid: 1, maxFileSize: 1024, maxBytes: 1 << 20 },
    },
    "/c/",
    process.cwd(),
    shared,
  ))!.defaultContent!;
  const caches = [...shared.values()];
  assert.equal(caches.length, 2, "one for the defaults, one for the other settings");
  await a(request("GET", "/a.txt"));
  await b(request("GET", "/style.css"));
  await c(request("GET", "/a.txt"));
  assert.deepEqual(
    caches.map((x) => (x as { size: number }).size),
    [2, 1],
  );
});

test("other methods: 405 with Allow; a missing file is 404 whatever the method", async (t) => {
  const h = await handler(t, { root: site(t) });
  for (const m of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
    await rejects(
      () => h(request(m, "/a.txt")),
      405,
      (e) => assert.equal(e.fields?.get("allow"), "GET, HEAD"),
    );
  }
  await rejects(() => h(request("POST", "/missing")), 404);
  await rejects(() => h(request("GET", "/missing.txt")), 404);
  await rejects(() => h(request("GET", "/a.txt/")), 404, undefined);
});

test("directories: 301 to add the slash (query kept, path encoded), index by internal redirect, else 403", async (t) => {
  const root = site(t);
  mkdirSync(join(root, "with space"));
  const h = await handler(t, { root });
  const r = await get(h, "/docs?x=1");
  assert.equal(r.status, 301);
  assert.equal(r.fields.get("location"), "/docs/?x=1");
  assert.equal((await get(h, "/with space")).fields.get("location"), "/with%20space/");
  assert.deepEqual(await h(request("GET", "/docs/")), { reroute: "/docs/index.html" });
  assert.deepEqual(await h(request("GET", "/?a=b")), { reroute: "/index.html?a=b" });
  await rejects(() => h(request("GET", "/noindex/")), 403);
  const h2 = await handler(t, { root, index: ["missing.html", "/fallback.html"] });
  assert.deepEqual(await h2(request("GET", "/docs/")), { reroute: "/fallback.html" });
  const issues: Issue[] = [];
  staticFields.index.type.check(["/a.html", "b.html"], [], issues);
  assert.match(issues[0]?.message ?? "", /only the last index/);
});

test("autoindex: HTML and JSON, dirs first, dotfiles hidden, names escaped", async (t) => {
  const root = site(t);
  writeFileSync(join(root, "noindex", "<b>&.txt"), "z");
  writeFileSync(join(root, "noindex", ".hidden"), "z");
  const h = await handler(t, { root, autoindex: true });
  const html = await get(h, "/noindex/");
  assert.equal(html.fields.get("content-type"), "text/html; charset=utf-8");
  assert.equal(html.fields.get("vary"), "Accept");
  const text = (await bodyOf(html)).toString();
  assert.match(text, /Index of \/noindex\//);
  assert.match(text, /href="%3Cb%3E%26.txt">&#60;b&#62;&#38;.txt</);
  assert.ok(text.indexOf('href="sub/"') < text.indexOf('href="x.txt"'), "directories first");
  assert.ok(!text.includes(".hidden"));
  const json = await get(h, "/noindex/", { accept: "application/json" });
  assert.equal(json.fields.get("content-type"), "application/json; charset=utf-8");
  const items = JSON.parse((await bodyOf(json)).toString());
  assert.deepEqual(
    items.map((i: { name: string; type: string; size?: number }) => [i.name, i.type, i.size]),
    [
      ["sub", "directory", undefined],
      ["<b>&.txt", "file", 1],
      ["x.txt", "file", 1],
    ],
  );
  const browser = await get(h, "/noindex/", {
    accept: "text/html,application/xhtml+xml,*/*;q=0.8",
  });
  assert.equal(browser.fields.get("content-type"), "text/html; charset=utf-8");
  const forced = await handler(t, {
    root,
    autoindex: true,
    autoindexFormat: "json",
    dotfiles: "allow",
  });
  const all = JSON.parse((await bodyOf(await get(forced, "/noindex/"))).toString());
  assert.ok(
    all.some((i: { name: string }) => i.name === ".hidden"),
    "listed when dotfiles are allowed",
  );
  // an index file still wins over the listing
  assert.ok(isReroute(await h(request("GET", "/docs/"))));
});

test("conditional requests: 304 keeps validators, 412 for failed If-Match", async (t) => {
  const h = await handler(t, { root: site(t) });
  const r = await get(h, "/a.txt");
  const etag = r.fields.get("etag")!;
  const lm = r.fields.get("last-modified")!;
  const nm = await get(h, "/a.txt", { "if-none-match": etag });
  assert.equal(nm.status, 304);
  assert.equal(nm.body.kind, "empty");
  assert.equal(nm.fields.get("etag"), etag);
  assert.equal(nm.fields.get("last-modified"), lm);
  assert.equal(nm.fields.get("content-type"), undefined);
  assert.equal((await get(h, "/a.txt", { "if-modified-since": lm })).status, 304);
  assert.equal(
    (await get(h, "/a.txt", { "if-none-match": '"nope"', "if-modified-since": lm })).status,
    200,
  );
  await rejects(() => h(request("GET", "/a.txt", { "if-match": '"nope"' })), 412);
  await rejects(() => h(request("GET", "/big.bin", { "if-match": '"nope"' })), 412);
  await rejects(
    () => h(request("GET", "/a.txt", { "if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT" })),
    412,
  );
  assert.equal((await get(h, "/big.bin", { "if-none-match": "*" })).status, 304);
});

test("ETag off and If-Modified-Since policies", async (t) => {
  const root = site(t);
  const mtime = new Date("2024-01-15T10:30:00Z");
  utimesSync(join(root, "a.txt"), mtime, mtime);
  const noTag = await handler(t, { root, etag: false });
  assert.equal((await get(noTag, "/a.txt")).fields.get("etag"), undefined);
  const later = "Tue, 16 Jan 2024 10:30:00 GMT";
  const exact = await handler(t, { root });
  assert.equal((await get(exact, "/a.txt", { "if-modified-since": later })).status, 200);
  const before = await handler(t, { root, ifModifiedSince: "before" });
  assert.equal((await get(before, "/a.txt", { "if-modified-since": later })).status, 304);
  const off = await handler(t, { root, ifModifiedSince: "off" });
  assert.equal(
    (await get(off, "/a.txt", { "if-modified-since": "Mon, 15 Jan 2024 10:30:00 GMT" })).status,
    200,
  );
});

test("ranges: single, suffix, multipart, unsatisfiable, If-Range, GET only", async (t) => {
  const h = await handler(t, { root: site(t) });
  const one = await get(h, "/a.txt", { range: "bytes=2-4" });
  assert.equal(one.status, 206);
  assert.equal(one.fields.get("content-range"), "bytes 2-4/10");
  assert.equal((await bodyOf(one)).toString(), "234");
  assert.equal((await bodyOf(await get(h, "/a.txt", { range: "bytes=-3" }))).toString(), "789");
  const multi = await get(h, "/a.txt", { range: "bytes=0-1,8-" });
  assert.equal(multi.status, 206);
  const ct = multi.fields.get("content-type")!;
  const boundary = /^multipart\/byteranges; boundary=(\w+)$/.exec(ct)![1]!;
  assert.equal(
    (await bodyOf(multi)).toString(),
    `\r\n--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-1/10\r\n\r\n01` +
      `\r\n--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 8-9/10\r\n\r\n89` +
      `\r\n--${boundary}--\r\n`,
  );
  await rejects(
    () => h(request("GET", "/a.txt", { range: "bytes=10-" })),
    416,
    (e) => assert.equal(e.fields?.get("content-range"), "bytes */10"),
  );
  const etag = one.fields.get("etag")!;
  assert.equal((await get(h, "/a.txt", { range: "bytes=0-0", "if-range": etag })).status, 206);
  assert.equal((await get(h, "/a.txt", { range: "bytes=0-0", "if-range": '"old"' })).status, 200);
  assert.equal((await get(h, "/a.txt", { range: "bytes=0-0" }, "HEAD")).status, 200);
  assert.equal((await get(h, "/a.txt", { range: "bytes=x" })).status, 200);
  const noRanges = await handler(t, { root: site(t), maxRanges: 0 });
  const whole = await get(noRanges, "/a.txt", { range: "bytes=0-0" });
  assert.equal(whole.status, 200);
  assert.equal(whole.fields.get("accept-ranges"), undefined);
});

test("ranges of a large file: file bodies and a streamed multipart", async (t) => {
  const h = await handler(t, { root: site(t) });
  const one = await get(h, "/big.bin", { range: "bytes=100000-100009" });
  assert.deepEqual(one.body.kind === "file" && [one.body.start, one.body.end], [100000, 100010]);
  assert.equal((await bodyOf(one)).toString(), "bbbbbbbbbb");
  const multi = await get(h, "/big.bin", { range: "bytes=0-99999,150000-" });
  assert.equal(multi.body.kind, "stream");
  const body = await bodyOf(multi);
  assert.equal(multi.body.kind === "stream" && multi.body.length, body.length);
  assert.equal(body.length > 150000, true);
  // destroyed before being read: the descriptor is released (no leak to observe but no throw)
  discard(await get(h, "/big.bin", { range: "bytes=0-1,5-6" }));
});

test("precompressed siblings by Accept-Encoding, with Vary and the sibling's validators", async (t) => {
  const root = site(t);
  const h = await handler(t, { root, precompressed: ["br", "zstd", "gzip"] });
  const br = await get(h, "/app.js", { "accept-encoding": "gzip, deflate, br, zstd" });
  assert.equal(br.fields.get("content-encoding"), "br");
  assert.equal(br.fields.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(br.fields.get("vary"), "Accept-Encoding");
  assert.equal((await bodyOf(br)).toString(), "BROTLI");
  assert.match(br.fields.get("etag")!, /-6"$/, "the sibling's size");
  const gz = await get(h, "/app.js", { "accept-encoding": "gzip" });
  assert.equal(gz.fields.get("content-encoding"), "gzip");
  assert.equal((await bodyOf(gz)).toString(), "GZIP!");
  const q = await get(h, "/app.js", { "accept-encoding": "br;q=0.5, gzip;q=0.9" });
  assert.equal(q.fields.get("content-encoding"), "gzip");
  const plain = await get(h, "/app.js");
  assert.equal(plain.fields.get("content-encoding"), undefined);
  assert.equal(
    plain.fields.get("vary"),
    "Accept-Encoding",
    "the response varies even when identity",
  );
  assert.equal((await bodyOf(plain)).toString(), "console.log(1)");
  const none = await get(h, "/a.txt", { "accept-encoding": "br, gzip" });
  assert.equal(none.fields.get("vary"), undefined, "no sibling, no Vary");
  // a sibling without its original is not served by name
  await rejects(() => h(request("GET", "/only.css", { "accept-encoding": "gzip" })), 404);
  const off = await handler(t, { root });
  assert.equal(
    (await get(off, "/app.js", { "accept-encoding": "br" })).fields.get("content-encoding"),
    undefined,
  );
});

test("tryFiles: the SPA fallback, directories, statuses, named locations, variables", async (t) => {
  const root = site(t);
  const spa = await handler(t, { root, tryFiles: ["$uri", "/index.html"] });
  assert.deepEqual(await spa(request("GET", "/some/route?x=1")), { reroute: "/index.html?" });
  const served = await spa(request("GET", "/a.txt"));
  assert.equal(!isReroute(served) && served.status, 200);
  // a directory is not a file for `$uri`
  assert.deepEqual(await spa(request("GET", "/docs")), { reroute: "/index.html?" });
  const dirs = await handler(t, { root, tryFiles: ["$uri", "$uri/", "=404"] });
  assert.deepEqual(await dirs(request("GET", "/docs")), { reroute: "/docs/index.html" });
  assert.deepEqual(await dirs(request("GET", "/docs/")), { reroute: "/docs/index.html" }, "no //");
  await rejects(() => dirs(request("GET", "/nope")), 404);
  await rejects(() => dirs(request("GET", "/noindex")), 403);
  const named = await handler(t, { root, tryFiles: ["$uri", "@app"] });
  assert.deepEqual(await named(request("GET", "/x")), { reroute: "@app" });
  const args = await handler(t, { root, tryFiles: ["/static$uri", "/index.php?q=$uri&$args"] });
  assert.deepEqual(await args(request("GET", "/p?a=1")), { reroute: "/index.php?q=/p&a=1" });
  const req = request("GET", "/x");
  const alt = await handler(t, { root, tryFiles: ["$uri", "/a.txt", "=404"] });
  const r = await alt(req);
  assert.equal(!isReroute(r) && (await bodyOf(r)).toString(), "0123456789");
  assert.equal(req.path, "/a.txt", "$uri becomes the entry that matched");
  const hidden = await handler(t, { root, tryFiles: ["$uri", "/index.html"] });
  assert.deepEqual(
    await hidden(request("GET", "/.env")),
    { reroute: "/index.html?" },
    "hidden files do not count",
  );
  for (const badList of [["$uri"], ["$uri", "index.html"], ["$uri", "=99"]]) {
    await assert.rejects(setUp(t, staticModule, { root, tryFiles: badList }), /tryFiles/);
  }
});

test("tryFiles: answered synchronously once the open-file cache knows every entry", async (t) => {
  const root = site(t);
  const h = await handler(t, { root, tryFiles: ["$uri", "$uri/index.html", "@app"] });
  // First time: the file system is asked (a promise); the answers are cached, misses too.
  const first = h(request("GET", "/nope"));
  assert.ok(first instanceof Promise, "the first lookup goes to the file system");
  assert.deepEqual(await first, { reroute: "@app" });
  const again = h(request("GET", "/nope"));
  assert.ok(!(again instanceof Promise), "cached misses decide at once");
  assert.deepEqual(again, { reroute: "@app" });
  await h(request("GET", "/a.txt"));
  const req = request("GET", "/a.txt");
  const hit = h(req);
  assert.ok(!(hit instanceof Promise), "a small cached file is answered at once");
  assert.equal(!isReroute(hit) && hit.status, 200);
  assert.equal(!isReroute(hit) && (await bodyOf(hit)).toString(), "0123456789");
  assert.equal(req.path, "/a.txt");
  // `$uri` of a directory is not a file; `$uri/index.html` is, from the cache at once.
  await h(request("GET", "/docs/"));
  const index = request("GET", "/docs/");
  const dir = h(index);
  assert.ok(!(dir instanceof Promise));
  assert.equal(!isReroute(dir) && (await bodyOf(dir)).toString(), "docs");
  assert.equal(index.path, "/docs/index.html");
  // A directory test (`$uri/`) goes the asynchronous way (index files, redirects), as before.
  const dirs = await handler(t, { root, tryFiles: ["$uri", "$uri/", "=404"] });
  await dirs(request("GET", "/docs"));
  assert.deepEqual(await dirs(request("GET", "/docs")), { reroute: "/docs/index.html" });
});

test("dotfiles: ignored (404), denied (403) or allowed; .well-known always", async (t) => {
  const root = site(t);
  const ignore = await handler(t, { root });
  assert.equal(await status(ignore, "/.env"), 404);
  assert.equal(await status(ignore, "/.git/config"), 404);
  assert.equal(await status(ignore, "/.well-known/security.txt"), 200);
  const deny = await handler(t, { root, dotfiles: "deny" });
  assert.equal(await status(deny, "/.env"), 403);
  const allow = await handler(t, { root, dotfiles: "allow" });
  assert.equal(await status(allow, "/.env"), 200);
});

test("alias: prefix replaced; nginx's off-by-slash traversal does not work", async (t) => {
  const base = tree(t, { "pics/a.png": "PNG", "secret.txt": "S", "picsx/b": "B" });
  const h = await handler(t, { alias: `${base}/pics/` }, "/img");
  assert.equal(await status(h, "/img/a.png"), 200);
  assert.equal(await status(h, "/img../secret.txt"), 404);
  const h2 = await handler(t, { alias: `${base}/pics` }, "^~ /img");
  assert.equal(await status(h2, "/img/a.png"), 200);
  assert.equal(await status(h2, "/imgx/b"), 404);
  const h3 = await handler(t, { alias: `${base}/$1` }, "~ ^/files/(.+)$");
  const r = await h3(request("GET", "/files/pics/a.png", {}, { 1: "pics/a.png" }));
  assert.equal(!isReroute(r) && (await bodyOf(r)).toString(), "PNG");
  await assert.rejects(
    setUp(t, staticModule, { alias: base }, ""),
    /alias is valid in a location only/,
  );
});

test("symlinks: followed, refused in any component, or only with a matching owner", async (t) => {
  const base = tree(t, { "www/real/f.txt": "F", "outside/o.txt": "O", "www/plain.txt": "P" });
  const www = join(base, "www");
  symlinkSync(join(base, "outside"), join(www, "dirlink"));
  symlinkSync(join(www, "real", "f.txt"), join(www, "filelink.txt"));
  const on = await handler(t, { root: www });
  assert.equal(await status(on, "/dirlink/o.txt"), 200);
  assert.equal(await status(on, "/filelink.txt"), 200);
  const off = await handler(t, { root: www, symlinks: "off" });
  assert.equal(await status(off, "/dirlink/o.txt"), 403, "a link in a middle component");
  assert.equal(await status(off, "/filelink.txt"), 403, "a link as the last component");
  assert.equal(await status(off, "/real/f.txt"), 200);
  assert.equal(await status(off, "/plain.txt"), 200);
  // the root itself may be a link (deploys switch a `current` link)
  symlinkSync(www, join(base, "current"));
  const viaLink = await handler(t, { root: join(base, "current"), symlinks: "off" });
  assert.equal(await status(viaLink, "/plain.txt"), 200);
  assert.equal(await status(viaLink, "/dirlink/o.txt"), 403);
  const owner = await handler(t, { root: www, symlinks: "ifOwnerMatch" });
  assert.equal(await status(owner, "/dirlink/o.txt"), 200, "same owner");
  if (process.getuid?.() === 0) {
    lchownSync(join(www, "dirlink"), 12345, 12345);
    const owner2 = await handler(t, { root: www, symlinks: "ifOwnerMatch" });
    assert.equal(await status(owner2, "/dirlink/o.txt"), 403, "link owned by someone else");
    assert.equal(await status(owner2, "/filelink.txt"), 200);
  }
});

test("traversal through the handler: nothing outside the root is ever served", async (t) => {
  const base = tree(t, { "www/index.html": "in", "secret.txt": "SECRET" });
  const www = join(base, "www");
  symlinkSync(join(base, "secret.txt"), join(www, "leak.txt"));
  const h = await handler(t, { root: www, symlinks: "off", dotfiles: "deny" });
  const attempts = [
    "/../secret.txt",
    "/..\\secret.txt",
    "/x/..\\..\\secret.txt",
    "/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/leak.txt",
    "/secret.txt\0.html",
    `/${"a".repeat(300)}`,
    `/${"x/".repeat(2100)}`,
  ];
  for (const path of attempts) {
    const req = request("GET", "/");
    req.path = path;
    const s = await status(h, req);
    assert.ok([400, 403, 404].includes(s), `${JSON.stringify(path)}: ${s}`);
  }
});

test("unreadable files are 403", {
  skip: process.getuid?.() === 0 ? "root reads everything" : false,
}, async (t) => {
  const root = site(t);
  chmodSync(join(root, "a.txt"), 0);
  const h = await handler(t, { root });
  assert.equal(await status(h, "/a.txt"), 403);
});
