/**
 * The core modules and the pipeline's rerouting on real sockets (in this process): return,
 * rewrite with every flag, error pages, internal and named locations, header rules and
 * expires, the access log in each format with reopen.
 */
import assert from "node:assert/strict";
import { readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import type { UserConfig } from "../../src/config/schema.ts";
import { modules } from "../../src/webserver/modules.ts";
import { waitFor } from "../helpers/process.ts";
import { exchange, request, startEngine, tempDir } from "./helpers.ts";
import { probe } from "./probe.ts";

type Server = Extract<NonNullable<NonNullable<UserConfig["web"]>["servers"]>, unknown[]>[number];

async function serve(t: TestContext, server: Omit<Server, "listen">, web: UserConfig["web"] = {}) {
  const dir = tempDir(t);
  const s = await startEngine(
    t,
    { ...web, servers: [{ listen: ["127.0.0.1:0"], ...server }] },
    { modules: [...modules, probe(dir)], baseDir: dir },
  );
  return { ...s, dir };
}

test("return: text with variables, redirects, error statuses, empty 2xx", async (t) => {
  const s = await serve(t, {
    locations: [
      { match: "= /text", return: "200 $request_method $uri?$args via $host" },
      {
        match: "= /json",
        return: { status: 201, body: '{"a":1}', contentType: "application/json" },
      },
      { match: "= /moved", return: "301 https://$host$request_uri" },
      { match: "= /found", return: "https://example.com/x" },
      { match: "= /gone", return: 410 },
      { match: "= /empty", return: 204 },
    ],
  });
  const text = await request(s.port, "/text?a=1", { host: "Site.Test" });
  assert.equal(text.text, "GET /text?a=1 via site.test");
  assert.equal(text.headers["content-type"], "text/plain; charset=utf-8");
  const json = await request(s.port, "/json");
  assert.deepEqual(
    [json.status, json.headers["content-type"], json.text],
    [201, "application/json", '{"a":1}'],
  );
  const moved = await request(s.port, "/moved?q", { host: "a.test" });
  assert.equal(moved.status, 301);
  assert.equal(moved.headers.location, "https://a.test/moved?q");
  assert.match(moved.text, /301 Moved Permanently/);
  const found = await request(s.port, "/found");
  assert.deepEqual([found.status, found.headers.location], [302, "https://example.com/x"]);
  assert.equal((await request(s.port, "/gone")).status, 410);
  const empty = await request(s.port, "/empty");
  assert.deepEqual([empty.status, empty.body.length], [204, 0]);
});

test("rewrite: last, break, redirect, permanent, no flag, args, server level", async (t) => {
  const s = await serve(t, {
    rewrite: ["^/old/(.*)$ /req/moved/$1 last", "^/legacy$ https://new.test/ permanent"],
    locations: [
      { match: "/a/", rewrite: ["^/a/(\\w+)$ /req/from-a/$1 last"] },
      { match: "/b/", rewrite: ["^/b/(.*)$ /req/b/$1 break"] },
      { match: "/c/", rewrite: ["^/c/(.*)$ /c2/$1", "^/c2/(.*)$ /req/c/$1"] },
      { match: "/r/", rewrite: ["^/r/(.*)$ /new/$1 redirect"] },
      { match: "/p/", rewrite: ["^/p/(.*)$ /new/$1?x=1 permanent"] },
      { match: "/q/", rewrite: ["^/q/(.*)$ /new/$1? permanent"] },
      { match: "/args/", rewrite: ["^/args/(.*)$ /req/args?name=$1 last"] },
      {
        match: "/named/",
        rewrite: [{ regex: "^/named/(?P<id>\\d+)$", replacement: "/req/id-$id", flag: "last" }],
      },
      { match: "/loop/", rewrite: ["^/loop/(.*)$ /loop/$1 last"] },
    ],
  });
  const path = async (p: string) => JSON.parse((await request(s.port, p)).text).path;
  assert.equal(await path("/a/x"), "/req/from-a/x");
  // break stays in /b/ (whose content is the probe): the probe sees the new path
  assert.equal(await path("/b/y"), "/req/b/y");
  assert.equal(await path("/c/z"), "/req/c/z");
  const r = await request(s.port, "/r/1?k=v");
  assert.deepEqual([r.status, r.headers.location], [302, "/new/1?k=v"]);
  const p = await request(s.port, "/p/1?k=v");
  assert.deepEqual([p.status, p.headers.location], [301, "/new/1?x=1&k=v"]);
  const q = await request(s.port, "/q/1?k=v");
  assert.deepEqual([q.status, q.headers.location], [301, "/new/1"]);
  const args = JSON.parse((await request(s.port, "/args/bob?old=1")).text);
  assert.deepEqual([args.path, args.query], ["/req/args", "name=bob&old=1"]);
  const named = JSON.parse((await request(s.port, "/named/42")).text);
  assert.equal(named.path, "/req/id-42");
  // server-level rules run before the location is chosen
  assert.equal(await path("/old/thing"), "/req/moved/thing");
  const legacy = await request(s.port, "/legacy");
  assert.deepEqual([legacy.status, legacy.headers.location], [301, "https://new.test/"]);
  // a rewrite cycle ends in a 500, not a hang
  assert.equal((await request(s.port, "/loop/x")).status, 500);
});

test("error pages: internal redirect keeping the status, =code, =, named, URL, recursion", async (t) => {
  const s = await serve(t, {
    errorPages: [
      "404 /req/not-found?from=$uri",
      "403 =200 /req/forbidden",
      "500 = @fallback",
      "410 https://elsewhere.test/",
    ],
    locations: [
      { match: "@fallback", return: "202 fallback for $uri" },
      { match: "/inner/", errorPages: ["404 /error/503"] },
      { match: "= /only-internal", internal: true, return: "200 secret" },
      { match: "/to-internal/", errorPages: ["404 /only-internal"] },
    ],
  });
  const nf = await request(s.port, "/error/404");
  assert.equal(nf.status, 404, "the error's status, the page's content");
  assert.equal(JSON.parse(nf.text).path, "/req/not-found");
  assert.equal(JSON.parse(nf.text).query, "from=/error/404", "variables in the page's URI");
  const head = await exchange(s.port, "HEAD /error/404 HTTP/1.1\r\nHost: x\r\n\r\n", {
    head: [true],
  });
  assert.equal(head.responses[0]!.status, 404);
  const post = await request(s.port, "/error/404", { method: "POST" });
  assert.equal(JSON.parse(post.text).method, "GET", "a POST's error page is fetched with GET");
  const forbidden = await request(s.port, "/error/403");
  assert.equal(forbidden.status, 200);
  const named = await request(s.port, "/throw");
  assert.deepEqual([named.status, named.text], [202, "fallback for /throw"]);
  const url = await request(s.port, "/error/410");
  assert.deepEqual([url.status, url.headers.location], [302, "https://elsewhere.test/"]);
  // the location's own errorPages replace the server's; an error while serving the page gets
  // the built-in page of that second error (nginx without recursive_error_pages)
  const inner = await request(s.port, "/inner/error/404");
  assert.equal(inner.status, 503);
  assert.match(inner.text, /<title>503 Service Unavailable/);
  // internal locations: 404 from outside, reachable by an error page
  assert.equal((await request(s.port, "/only-internal")).status, 404);
  const viaPage = await request(s.port, "/to-internal/nope");
  assert.deepEqual([viaPage.status, viaPage.text], [404, "secret"]);
});

test("headers: add (status rule, always), set, remove, expires, cache-control, variables", async (t) => {
  const s = await serve(t, {
    addHeaders: { "X-Server": "yes" },
    locations: [
      {
        match: "/h/",
        addHeaders: [
          { name: "X-Id", value: "$request_method-$uri" },
          { name: "X-Always", value: "1", always: true },
          { name: "X-Twice", value: "a" },
          { name: "X-Twice", value: "b" },
        ],
        setHeaders: { "Content-Type": "text/x-test" },
        removeHeaders: ["Server"],
        expires: "1h",
        cacheControl: "public",
      },
      { match: "/epoch/", expires: "epoch" },
      { match: "/neg/", expires: -1 },
    ],
  });
  const ok = await request(s.port, "/h/req/");
  assert.equal(ok.headers["x-id"], "GET-/h/req/");
  assert.equal(ok.headers["x-always"], "1");
  assert.equal(ok.headers["x-twice"], "a, b");
  assert.equal(ok.headers["x-server"], undefined, "the location's addHeaders replace the server's");
  assert.equal(ok.headers["content-type"], "text/x-test");
  assert.equal(ok.headers.server, undefined);
  assert.equal(ok.headers["cache-control"], "max-age=3600, public");
  const expires = Date.parse(ok.headers.expires!);
  assert.ok(Math.abs(expires - Date.now() - 3600_000) < 120_000, ok.headers.expires);
  const err = await request(s.port, "/h/error/404");
  assert.equal(err.headers["x-id"], undefined, "no additions on a 404");
  assert.equal(err.headers["x-always"], "1");
  assert.equal(err.headers["cache-control"], undefined);
  const top = await request(s.port, "/req/");
  assert.equal(top.headers["x-server"], "yes");
  const epoch = await request(s.port, "/epoch/req");
  assert.deepEqual(
    [epoch.headers.expires, epoch.headers["cache-control"]],
    ["Thu, 01 Jan 1970 00:00:01 GMT", "no-cache"],
  );
  assert.equal((await request(s.port, "/neg/req")).headers["cache-control"], "no-cache");
});

test("captures from regex locations and server names reach templates", async (t) => {
  const s = await serve(t, {
    serverName: ["~^(?<sub>\\w+)\\.example\\.test$"],
    locations: [{ match: "~ ^/user/(\\d+)/(?<tab>\\w+)$", return: "200 $sub user $1 tab $tab" }],
  });
  const r = await request(s.port, "/user/7/posts", { host: "blog.example.test" });
  assert.equal(r.text, "blog user 7 tab posts");
});

test("access log: combined, template, JSON; per location or off; reopened on USR1", async (t) => {
  const s = await serve(
    t,
    {
      accessLog: { path: "server.log", flush: "100ms" },
      locations: [
        { match: "/quiet/", accessLog: "off" },
        {
          match: "/tpl/",
          accessLog: [
            { path: "tpl.log", format: '$request_method $uri $status "$http_x_none"', buffer: 0 },
            "server.log",
          ],
        },
        { match: "/json/", accessLog: { path: "json.log", format: "json", buffer: 0 } },
      ],
    },
    {},
  );
  await request(s.port, "/req/?a=1", {
    headers: { "User-Agent": 'ua "quoted"', Referer: "http://r/" },
  });
  await request(s.port, "/quiet/req");
  await request(s.port, "/tpl/error/404");
  await request(s.port, "/json/req", { headers: { "User-Agent": "j" } });
  await exchange(s.port, "BAD REQUEST\r\n\r\n", { untilClose: true });
  const read = (f: string) => {
    try {
      return readFileSync(join(s.dir, f), "utf8");
    } catch {
      return "";
    }
  };
  await waitFor(() => read("server.log").split("\n").length >= 4, "the buffered server log", 5000);
  const lines = read("server.log").trim().split("\n");
  assert.equal(lines.length, 3, lines.join("\n"));
  // a request refused before it was parsed is logged by the default server
  assert.match(lines[2]!, /^127\.0\.0\.1 - - \[[^\]]+\] "-" 400 0 "-" "-"$/);
  assert.match(
    lines[0]!,
    /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET \/req\/\?a=1 HTTP\/1\.1" 200 \d+ "http:\/\/r\/" "ua \\x22quoted\\x22"$/,
  );
  assert.match(lines[1]!, /"GET \/tpl\/error\/404 HTTP\/1\.1" 404 /);
  // buffer 0: each line is written as soon as its response is done
  await waitFor(
    () => read("tpl.log") !== "" && read("json.log") !== "",
    "the unbuffered logs",
    5000,
  );
  assert.equal(read("tpl.log"), 'GET /tpl/error/404 404 "-"\n');
  const json = JSON.parse(read("json.log"));
  assert.equal(json.status, 200);
  assert.equal(json.uri, "/json/req");
  assert.equal(json.user_agent, "j");
  assert.equal(typeof json.request_time, "number");
  assert.match(json.request_id, /^[0-9a-f]{32}$/);
  // rotation: move the file away, reopen, the next line goes to a new file
  renameSync(join(s.dir, "tpl.log"), join(s.dir, "tpl.log.1"));
  s.pipeline.reopen();
  await request(s.port, "/tpl/req");
  await waitFor(() => read("tpl.log") !== "", "the reopened log", 5000);
  assert.equal(read("tpl.log"), 'GET /tpl/req 200 "-"\n');
  assert.equal(read("tpl.log.1"), 'GET /tpl/error/404 404 "-"\n');
});

test("unknown hosts: the default server, 421 or a closed connection", async (t) => {
  const base = { listen: ["127.0.0.1:0"] };
  const config = (unknownHost: "default" | "misdirected" | "close") => ({
    unknownHost,
    servers: [
      { ...base, serverName: ["default.test"], return: "200 default" },
      { ...base, serverName: ["known.test"], return: "200 known" },
    ],
  });
  const d = await startEngine(t, config("default"));
  assert.equal((await request(d.port, "/", { host: "other.test" })).text, "default");
  assert.equal((await request(d.port, "/", { host: "known.test" })).text, "known");
  const m = await startEngine(t, config("misdirected"));
  assert.equal((await request(m.port, "/", { host: "other.test" })).status, 421);
  assert.equal((await request(m.port, "/", { host: "known.test" })).text, "known");
  const c = await startEngine(t, config("close"));
  const closed = await exchange(c.port, "GET / HTTP/1.1\r\nHost: other.test\r\n\r\n", {
    untilClose: true,
  });
  assert.deepEqual([closed.responses.length, closed.closed], [0, true]);
  // HTTP/1.0 without Host goes to the default server whatever the setting
  const old = await exchange(c.port, "GET / HTTP/1.0\r\n\r\n", { untilClose: true });
  assert.equal(old.responses[0]!.text, "default");
});
