/**
 * Differential: real nginx (Debian) and `brigade web` serve the same directory with the same
 * settings; every request goes to both and the status and the fields that matter must agree
 * (Content-Type, Content-Length, ETag, Last-Modified, Content-Range, Location, Vary,
 * Content-Encoding, Accept-Ranges), and the body of every 200 and 206. Where we differ on
 * purpose, the case says so and checks each side's own answer; docs/static.md lists each one.
 */
import assert from "node:assert/strict";
import { mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { requireTool } from "../../helpers/peers.ts";
import { tree } from "./harness.ts";
import { type RawResponse, request, startBrigade, startNginxStatic } from "./servers.ts";

const compared = [
  "content-type",
  "content-length",
  "etag",
  "last-modified",
  "content-range",
  "location",
  "vary",
  "content-encoding",
] as const;

const charsetTypes = [
  "text/html",
  "text/plain",
  "text/css",
  "application/json",
  "application/javascript",
  "text/javascript",
  "text/xml",
  "application/xml",
  "image/svg+xml",
];

interface Case {
  target: string;
  headers?: Record<string, string>;
  method?: string;
  /** An intended difference: what each side answers instead of agreeing (see docs/static.md). */
  differs?: { why: string; check(nginx: RawResponse, ours: RawResponse): void };
  /** Fields not compared for this case (with the reason in a comment). */
  skip?: readonly string[];
}

/**
 * Error pages are each server's own HTML: compare their status only (nginx's `charset` also
 * applies to its error pages; ours is the static module's, for the files it serves).
 */
const errorPage = ["content-length", "content-type"];

function normaliseLocation(v: string | undefined): string | undefined {
  return v?.replace(/^http:\/\/localhost:\d+/, "");
}

test("nginx and brigade web agree on static files", async (t) => {
  if (!requireTool(t, "nginx")) return;
  const root = tree(t, {
    "index.html": "<h1>home</h1>",
    "a.txt": "0123456789abcdefghij",
    "style.css": "body{}\n",
    "data.json": '{"a":1}\n',
    "pic.png": Buffer.from(Array.from({ length: 300 }, (_, i) => i % 256)),
    "unknown.qqq": "x\n",
    noext: "y\n",
    "big.bin": Buffer.alloc(200_000, "b"),
    "docs/index.html": "docs\n",
    "empty/": "",
    "spa/index.html": "spa\n",
    "assets/app.js": "console.log(1)\n",
    "assets/plain.css": "p{}\n",
    "pictures/p.png": "p\n",
    "list/f.txt": "f\n",
    "list/sub/": "",
    "with space.txt": "s\n",
    "empty.txt": "",
    "ümlaut.txt": "u\n",
  });
  writeFileSync(join(root, "assets/app.js.gz"), gzipSync("console.log(1)\n"));
  mkdirSync(join(root, "list/sub"), { recursive: true });
  // Fixed times: Last-Modified and ETag come out the same whatever the clock.
  const when = new Date("2024-03-01T12:00:00Z");
  for (const f of [
    "a.txt",
    "index.html",
    "big.bin",
    "assets/app.js",
    "assets/app.js.gz",
    "list/f.txt",
    "list/sub",
    "list",
  ]) {
    utimesSync(join(root, f), when, when);
  }

  const [nginx, ours] = await Promise.all([
    startNginxStatic(
      t,
      `    root ${root};
    charset utf-8;
    charset_types ${charsetTypes.join(" ")};
    default_type application/octet-stream;
    location /spa/ { try_files $uri /spa/index.html; }
    location /assets/ { gzip_static on; gzip_vary on; }
    location /img/ { alias ${root}/pictures/; }
    location /list/ { autoindex on; autoindex_format json; }`,
    ),
    startBrigade(t, {
      root,
      charsetTypes,
      dotfiles: "allow",
      locations: [
        { match: "/spa/", tryFiles: ["$uri", "/spa/index.html"] },
        { match: "/assets/", precompressed: ["gzip"] },
        { match: "/img/", alias: `${root}/pictures/` },
        { match: "/list/", autoindex: true, autoindexFormat: "json" },
      ],
    }),
  ]);

  const first = await request(nginx.port, "/a.txt");
  const etag = first.headers.etag!;
  const lastModified = first.headers["last-modified"]!;

  const cases: Case[] = [
    { target: "/a.txt" },
    { target: "/a.txt", method: "HEAD" },
    { target: "/index.html" },
    { target: "/style.css" },
    { target: "/data.json" },
    { target: "/pic.png" },
    { target: "/unknown.qqq" },
    { target: "/noext" },
    { target: "/big.bin" },
    { target: "/with%20space.txt" },
    { target: "/%C3%BCmlaut.txt" },
    { target: "/a%2etxt" },
    { target: "/docs/../a.txt" },
    { target: "/./a.txt" },
    { target: "//a.txt" },
    { target: "/a.txt?query=1" },
    { target: "/missing", skip: errorPage },
    { target: "/a.txt/", skip: errorPage },
    { target: "/empty/", skip: errorPage },
    { target: "/docs", skip: errorPage },
    { target: "/docs?x=1", skip: errorPage },
    { target: "/spa/some/route" },
    { target: "/spa/index.html" },
    { target: "/img/p.png" },
    // conditionals
    { target: "/a.txt", headers: { "if-none-match": etag } },
    { target: "/a.txt", headers: { "if-none-match": `"other", ${etag}` } },
    { target: "/a.txt", headers: { "if-none-match": "*" } },
    { target: "/a.txt", headers: { "if-none-match": '"other"' } },
    { target: "/a.txt", headers: { "if-modified-since": lastModified } },
    { target: "/a.txt", headers: { "if-modified-since": "Sat, 02 Mar 2024 12:00:00 GMT" } },
    { target: "/a.txt", headers: { "if-modified-since": "garbage" } },
    {
      target: "/a.txt",
      headers: { "if-none-match": '"other"', "if-modified-since": lastModified },
    },
    { target: "/a.txt", headers: { "if-match": etag } },
    { target: "/a.txt", headers: { "if-match": '"nope"' }, skip: errorPage },
    {
      target: "/a.txt",
      headers: { "if-unmodified-since": "Thu, 01 Jan 1970 00:00:00 GMT" },
      skip: errorPage,
    },
    { target: "/a.txt", headers: { "if-unmodified-since": lastModified } },
    // ranges
    { target: "/a.txt", headers: { range: "bytes=0-4" } },
    { target: "/a.txt", headers: { range: "bytes=-5" } },
    { target: "/a.txt", headers: { range: "bytes=15-" } },
    { target: "/a.txt", headers: { range: "bytes=5-100" } },
    { target: "/big.bin", headers: { range: "bytes=100000-100099" } },
    {
      target: "/a.txt",
      headers: { range: "bytes=0-1,5-6" },
      skip: ["content-type"] /* boundary */,
    },
    { target: "/a.txt", headers: { range: "bytes=100-" }, skip: errorPage },
    { target: "/a.txt", headers: { range: "items=0-1" } },
    { target: "/a.txt", headers: { range: "bytes=0-1,3-4,6-7" }, skip: ["content-type"] },
    { target: "/empty.txt" },
    { target: "/empty.txt", headers: { range: "bytes=0-0" } },
    { target: "/empty.txt", headers: { range: "bytes=-5" } },
    { target: "/a.txt", headers: { range: "bytes=5-", "if-range": `W/${etag}` } },
    { target: "/docs/", method: "HEAD" },
    { target: "/docs/?x" },
    { target: "/a.txt", headers: { range: "bytes=0-4", "if-range": etag } },
    { target: "/a.txt", headers: { range: "bytes=0-4", "if-range": '"old"' } },
    { target: "/a.txt", headers: { range: "bytes=0-4", "if-range": lastModified } },
    // precompressed
    { target: "/assets/app.js", headers: { "accept-encoding": "gzip" }, skip: ["content-type"] },
    { target: "/assets/app.js", skip: ["content-type"] },
    { target: "/assets/plain.css", headers: { "accept-encoding": "gzip" } },
    // intended differences
    {
      target: "/a.txt",
      method: "POST",
      differs: {
        why: "405 carries Allow",
        check(n, o) {
          assert.equal(n.status, 405);
          assert.equal(o.status, 405);
          assert.equal(n.headers.allow, undefined);
          assert.equal(o.headers.allow, "GET, HEAD");
        },
      },
    },
    {
      target: "/missing",
      method: "DELETE",
      differs: {
        why: "a missing file is 404 whatever the method (nginx: 405 before looking)",
        check(n, o) {
          assert.equal(n.status, 405);
          assert.equal(o.status, 404);
        },
      },
    },
    {
      target: "/a.txt",
      headers: { range: "bytes=a-b" },
      differs: {
        why: "a malformed Range is ignored (nginx: 416)",
        check(n, o) {
          assert.equal(n.status, 416);
          assert.equal(o.status, 200);
        },
      },
    },
    {
      target: "/a.txt",
      method: "HEAD",
      headers: { range: "bytes=0-4" },
      differs: {
        why: "Range is for GET only (nginx: 206 to HEAD)",
        check(n, o) {
          assert.equal(n.status, 206);
          assert.equal(o.status, 200);
          assert.equal(o.headers["content-length"], "20");
        },
      },
    },
    {
      target: "/a.txt",
      headers: { range: "bytes=0-1,1-2" },
      differs: {
        why: "overlapping ranges are merged",
        check(n, o) {
          assert.equal(n.status, 206);
          assert.match(n.headers["content-type"]!, /^multipart\/byteranges/);
          assert.equal(o.status, 206);
          assert.equal(o.headers["content-range"], "bytes 0-2/20");
          assert.equal(o.body.toString(), "012");
        },
      },
    },
    {
      target: "/a.txt",
      headers: { "if-none-match": etag, "if-modified-since": "Sat, 02 Mar 2024 12:00:00 GMT" },
      differs: {
        why: "If-None-Match takes precedence over If-Modified-Since (nginx wants both)",
        check(n, o) {
          assert.equal(n.status, 200);
          assert.equal(o.status, 304);
        },
      },
    },
    {
      target: "/docs",
      differs: {
        why: "the trailing-slash redirect's Location is relative",
        check(n, o) {
          assert.equal(n.status, 301);
          assert.equal(o.status, 301);
          assert.match(n.headers.location!, /^http:\/\/localhost:\d+\/docs\/$/);
          assert.equal(o.headers.location, "/docs/");
        },
      },
    },
    {
      target: "/assets/app.js",
      differs: {
        why: "`.js` is text/javascript (RFC 9239) in mime-db, application/javascript in nginx's table",
        check(n, o) {
          assert.equal(n.headers["content-type"], "application/javascript; charset=utf-8");
          assert.equal(o.headers["content-type"], "text/javascript; charset=utf-8");
        },
      },
    },
  ];

  const problems: string[] = [];
  for (const c of cases) {
    const label = `${c.method ?? "GET"} ${c.target} ${JSON.stringify(c.headers ?? {})}`;
    const [n, o] = await Promise.all([
      request(nginx.port, c.target, c.headers, c.method),
      request(ours.port, c.target, c.headers, c.method),
    ]);
    if (c.differs) {
      try {
        c.differs.check(n, o);
      } catch (err) {
        problems.push(
          `${label} (intended difference: ${c.differs.why}): ${(err as Error).message}`,
        );
      }
      continue;
    }
    if (n.status !== o.status) {
      problems.push(`${label}: status nginx ${n.status}, brigade ${o.status}`);
      continue;
    }
    for (const name of compared) {
      if (c.skip?.includes(name)) continue;
      if (name === "content-length" && n.status >= 300) continue;
      const nv = name === "location" ? normaliseLocation(n.headers[name]) : n.headers[name];
      const ov = o.headers[name];
      if (nv !== ov)
        problems.push(
          `${label}: ${name} nginx ${JSON.stringify(nv)}, brigade ${JSON.stringify(ov)}`,
        );
    }
    if (
      n.status === 200 &&
      (c.method ?? "GET") === "GET" &&
      n.headers["accept-ranges"] !== o.headers["accept-ranges"]
    ) {
      if (n.headers["content-encoding"] === undefined) {
        problems.push(
          `${label}: accept-ranges nginx ${n.headers["accept-ranges"]}, brigade ${o.headers["accept-ranges"]}`,
        );
      }
    }
    if ((n.status === 200 || n.status === 206) && (c.method ?? "GET") === "GET") {
      const nb = n.headers["content-type"]?.startsWith("multipart/")
        ? n.body.toString("latin1").replace(/[0-9a-f]{20}/g, "B")
        : n.body.toString("latin1");
      const ob = o.headers["content-type"]?.startsWith("multipart/")
        ? o.body.toString("latin1").replace(/[0-9a-f]{20}/g, "B")
        : o.body.toString("latin1");
      const json = n.headers["content-type"]?.startsWith("application/json");
      if (json ? JSON.stringify(JSON.parse(nb)) !== JSON.stringify(JSON.parse(ob)) : nb !== ob) {
        problems.push(`${label}: bodies differ (${n.body.length} vs ${o.body.length} bytes)`);
      }
    }
  }
  // The listing: same entries (nginx's JSON layout), compared as data.
  const [nl, ol] = await Promise.all([request(nginx.port, "/list/"), request(ours.port, "/list/")]);
  assert.deepEqual(JSON.parse(ol.body.toString()), JSON.parse(nl.body.toString()));
  assert.deepEqual(problems, []);
});
