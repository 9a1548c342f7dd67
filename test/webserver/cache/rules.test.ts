/**
 * The cache's rules against real processes: `brigade web` (the cache around the proxy module) in
 * front of the test's own origin. One worker, so every count is exact. Each test uses its own
 * path.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { spawnNode } from "../../helpers/process.ts";
import { type Origin, request, startOrigin, startWeb, type Web, xcs } from "./harness.ts";

const TOKEN = "test-token-0123456789";

test("cache rules (one worker)", async (t) => {
  let origin: Origin;
  let web: Web;
  let get: (
    path: string,
    headers?: Record<string, string>,
    method?: string,
  ) => ReturnType<typeof request>;
  origin = await startOrigin(t);
  web = await startWeb(
    t,
    {
      workers: 1,
      servers: [
        {
          cache: true,
          cacheXStatusHeader: true,
          locations: [
            { match: "/" },
            { match: "/valid/", cacheValid: { "200 302": "1m" } },
            { match: "/ignore/", cacheIgnoreHeaders: ["set-cookie"] },
            { match: "/bypass/", cacheBypass: ["$arg_nocache"], cacheNoStore: ["$arg_nostore"] },
            { match: "/minuses/", cacheMinUses: 2 },
            { match: "/swr/", cacheStaleWhileRevalidate: "60s" },
            { match: "/off/", cache: false },
            { match: "/post/", cacheMethods: ["GET", "HEAD", "POST"] },
            { match: "/getonly/", cacheMethods: ["GET"] },
            { match: "= /_cache", cacheAdmin: { token: TOKEN } },
          ],
        },
      ],
    },
    { origin },
  );
  get = (path, headers = {}, method = "GET") => request(web.port, path, { headers, method });

  const twice = async (path: string, headers: Record<string, string> = {}) => {
    const a = await get(path, headers);
    const b = await get(path, headers);
    return { a, b, upstream: await origin.count(path.split("?")[0]!) };
  };

  await t.test("max-age: a miss, then a hit with Age and Cache-Status", async () => {
    const { a, b, upstream } = await twice("/maxage?cc=max-age%3D60");
    assert.equal(xcs(a), "MISS");
    assert.match(
      String(a.headers["cache-status"]),
      /^brigade; fwd=uri-miss; fwd-status=200; stored$/,
    );
    assert.equal(xcs(b), "HIT");
    assert.match(String(b.headers["cache-status"]), /^brigade; hit; ttl=\d+$/);
    assert.ok(Number(b.headers.age) >= 0);
    assert.equal(b.body, a.body);
    assert.equal(upstream, 1);
  });

  await t.test(
    "s-maxage counts over max-age=0; Expires; heuristic freshness from Last-Modified",
    async () => {
      assert.equal((await twice("/smaxage?cc=max-age%3D0%2C%20s-maxage%3D60")).upstream, 1);
      assert.equal((await twice("/expires?expires=60")).upstream, 1);
      assert.equal((await twice("/heuristic?lm=100000")).upstream, 1);
      // no freshness and no validator: not stored
      assert.equal((await twice("/nothing")).upstream, 2);
    },
  );

  await t.test("no-store and private are never stored", async () => {
    assert.equal((await twice("/nostore?cc=no-store%2C%20max-age%3D60")).upstream, 2);
    assert.equal((await twice("/private?cc=private%2C%20max-age%3D60")).upstream, 2);
  });

  await t.test("no-cache: stored, and validated on every use (304 -> REVALIDATED)", async () => {
    const path = "/nocache?cc=no-cache&etag=%22v1%22";
    const { a, b, upstream } = await twice(path);
    assert.equal(xcs(a), "MISS");
    assert.equal(xcs(b), "REVALIDATED");
    assert.match(String(b.headers["cache-status"]), /fwd=stale; fwd-status=304/);
    assert.equal(b.body, a.body, "the stored body, n=1");
    assert.equal(upstream, 2);
    const log = await origin.log();
    assert.ok(
      log.some((l) => l.startsWith("GET /nocache") && l.includes('inm="v1"')),
      log.join("\n"),
    );
  });

  await t.test(
    "must-revalidate and proxy-revalidate: served while fresh, never stale",
    async () => {
      for (const cc of ["must-revalidate", "proxy-revalidate"]) {
        const fresh = `/${cc}-fresh?cc=max-age%3D60%2C%20${cc}`;
        assert.equal((await twice(fresh)).upstream, 1, cc);
        // stale at once (max-age=0): a client's max-stale may not have it unvalidated
        const stale = `/${cc}-stale?cc=max-age%3D0%2C%20${cc}&etag=%22a%22`;
        await get(stale);
        const r = await get(stale, { "cache-control": "max-stale=600" });
        assert.equal(xcs(r), "REVALIDATED", cc);
      }
      // without it, max-stale is honoured
      const plain = "/plain-stale?cc=max-age%3D0&etag=%22a%22";
      await get(plain);
      const r = await get(plain, { "cache-control": "max-stale=600" });
      assert.equal(xcs(r), "STALE");
      assert.equal(await origin.count("/plain-stale"), 1);
    },
  );

  await t.test(
    "Authorization: not answered from a response that does not allow it, never leaked",
    async () => {
      // stored for an anonymous request, not for an authenticated one
      const path = "/auth1?cc=max-age%3D60";
      await get(path);
      const authed = await get(path, { authorization: "Bearer alice" });
      assert.match(authed.body, /auth=Bearer alice/);
      assert.notEqual(xcs(authed), "HIT");
      // a response to an authenticated request (no public) is not stored, so not leaked
      const secret = "/auth2?cc=max-age%3D60";
      const a = await get(secret, { authorization: "Bearer bob" });
      const anon = await get(secret);
      assert.match(a.body, /auth=Bearer bob/);
      assert.doesNotMatch(anon.body, /bob/);
      assert.equal(await origin.count("/auth2"), 2);
      // public allows both
      const pub = "/auth3?cc=public%2C%20max-age%3D60";
      await get(pub, { authorization: "Bearer carol" });
      assert.equal(xcs(await get(pub, { authorization: "Bearer dave" })), "HIT");
    },
  );

  await t.test(
    "Vary: a variant per request header value; Vary: * never served from cache",
    async () => {
      const path = "/vary?cc=max-age%3D60&vary=Accept-Language";
      const en = await get(path, { "accept-language": "en" });
      const fr = await get(path, { "accept-language": "fr" });
      const en2 = await get(path, { "accept-language": "en" });
      const fr2 = await get(path, { "accept-language": "fr" });
      assert.match(en.body, /lang=en/);
      assert.match(fr.body, /lang=fr/);
      assert.equal(xcs(fr), "MISS");
      assert.match(String(fr.headers["cache-status"]), /fwd=vary-miss/);
      assert.equal(en2.body, en.body);
      assert.equal(fr2.body, fr.body);
      assert.equal(xcs(en2), "HIT");
      assert.equal(await origin.count("/vary"), 2);
      assert.equal((await twice("/varystar?cc=max-age%3D60&vary=*")).upstream, 2);
    },
  );

  await t.test("Age: the upstream's Age counts toward freshness and grows", async () => {
    const path = "/age?cc=max-age%3D60&age=50";
    await get(path);
    const r = await get(path);
    assert.equal(xcs(r), "HIT");
    assert.ok(Number(r.headers.age) >= 50);
    // Age beyond max-age: stale on arrival, not served from cache
    assert.equal((await twice("/age-old?cc=max-age%3D60&age=100")).upstream, 2);
  });

  await t.test(
    "revalidation: a 304 updates the stored headers (merged), the body stays",
    async () => {
      const path = "/merge?cc=max-age%3D0&etag=%22m1%22&h304=x-version:2";
      const a = await get(path);
      assert.equal(a.headers["x-version"], undefined);
      const b = await get(path);
      assert.equal(xcs(b), "REVALIDATED");
      assert.equal(b.headers["x-version"], "2", "a field only the 304 carried is added");
      assert.equal(b.headers.etag, '"m1"');
      assert.equal(b.body, a.body);
      const c = await get(path);
      assert.equal(c.headers["x-version"], "2", "and stored");
    },
  );

  await t.test(
    "a validation answered by a response that may not be stored drops the old one",
    async () => {
      const path = "/obsolete?cc=max-age%3D0&etag=%22o1%22";
      await get(path);
      assert.equal(xcs(await get(path, { "cache-control": "max-stale" })), "STALE", "stored");
      const r = await get(path, { "x-cc": "no-store", "x-etag": '"o2"' });
      assert.equal(xcs(r), "EXPIRED");
      const gone = await get(path, { "cache-control": "only-if-cached, max-stale" });
      assert.equal(gone.status, 504);
    },
  );

  await t.test(
    "Range: the cache fetches the whole response and answers the range itself",
    async () => {
      const path = "/range?cc=max-age%3D60&etag=%22r1%22&size=1000";
      const miss = await get(path, { range: "bytes=0-9" });
      assert.equal(miss.status, 206);
      assert.equal(miss.headers["content-range"], "bytes 0-9/1000");
      assert.equal(miss.body.length, 10);
      const log = await origin.log();
      assert.ok(
        !log.some((l) => l.includes("/range") && l.includes("range=bytes")),
        "no Range upstream",
      );
      const hit = await get(path, { range: "bytes=-100" });
      assert.equal(hit.status, 206);
      assert.equal(xcs(hit), "HIT");
      assert.equal(hit.headers["content-range"], "bytes 900-999/1000");
      assert.equal((await get(path, { range: "bytes=990-" })).body.length, 10);
      assert.equal((await get(path, { range: "bytes=5000-" })).status, 416);
      assert.equal((await get(path, { range: "bytes=0-1", "if-range": '"r1"' })).status, 206);
      assert.equal((await get(path, { range: "bytes=0-1", "if-range": '"old"' })).status, 200);
      assert.equal((await get(path, { range: "bytes=0-1,5-6" })).status, 200, "several: the whole");
      assert.equal(await origin.count("/range"), 1);
    },
  );

  await t.test("a client's own conditional request is answered 304 from the cache", async () => {
    const path = "/cond?cc=max-age%3D60&etag=%22c1%22";
    await get(path);
    const r = await get(path, { "if-none-match": '"c1"' });
    assert.equal(r.status, 304);
    assert.equal(r.body, "");
    assert.equal(await origin.count("/cond"), 1);
  });

  await t.test("a successful unsafe method invalidates its URI and its Location", async () => {
    const a = "/inv-a?cc=max-age%3D60";
    const b = "/inv-b?cc=max-age%3D60";
    await get(a);
    await get(b);
    assert.equal(xcs(await get(a)), "HIT");
    const post = await request(web.port, `/inv-a?cc=max-age%3D60&loc=${encodeURIComponent(b)}`, {
      method: "POST",
      body: "x",
    });
    assert.equal(post.status, 200);
    // the POST's own URI carries its query; invalidate the GET's too with a DELETE to it
    await request(web.port, a, { method: "DELETE" });
    assert.equal(xcs(await get(a)), "MISS");
    assert.equal(xcs(await get(b)), "MISS", "Location's URI was invalidated");
    // a failed unsafe request invalidates nothing
    const c = "/inv-c?cc=max-age%3D60";
    await get(c);
    const failed = await request(web.port, c, { method: "POST", headers: { "x-fail": "1" } });
    assert.equal(failed.status, 500);
    assert.equal(xcs(await get(c)), "HIT");
    assert.equal(await origin.count("/inv-c"), 2);
  });

  await t.test(
    "status codes cacheable by default; others only with explicit freshness or cacheValid",
    async () => {
      assert.equal((await twice("/s404?status=404&lm=100000")).upstream, 1);
      assert.equal((await twice("/s410?status=410&lm=100000")).upstream, 1);
      assert.equal((await twice("/s302?status=302&lm=100000")).upstream, 2);
      assert.equal((await twice("/s302e?status=302&cc=max-age%3D60")).upstream, 1);
      assert.equal((await twice("/s500?status=500&lm=100000")).upstream, 2);
      // the operator's per-status lifetimes (proxy_cache_valid)
      assert.equal((await twice("/valid/a?status=302")).upstream, 1);
      assert.equal((await twice("/valid/b")).upstream, 1);
      assert.equal((await twice("/valid/c?status=404")).upstream, 2, "404 not listed");
    },
  );

  await t.test("HEAD is answered from a GET entry; a HEAD miss fetches with GET", async () => {
    const path = "/head?cc=max-age%3D60";
    const g = await get(path);
    const h = await get(path, {}, "HEAD");
    assert.equal(xcs(h), "HIT");
    assert.equal(h.body, "");
    assert.equal(h.headers["content-length"], String(Buffer.byteLength(g.body)));
    const path2 = "/head2?cc=max-age%3D60";
    const h2 = await get(path2, {}, "HEAD");
    assert.equal(h2.status, 200);
    const g2 = await get(path2);
    assert.equal(xcs(g2), "HIT");
    assert.match(g2.body, /method=GET/);
  });

  await t.test(
    "cacheMethods: POST cached under its own key with explicit freshness; GET only",
    async () => {
      const path = "/post/a?cc=max-age%3D60";
      const p1 = await get(path, {}, "POST");
      const p2 = await get(path, {}, "POST");
      assert.equal(xcs(p1), "MISS");
      assert.equal(xcs(p2), "HIT");
      assert.match(p2.body, /method=POST/);
      const g = await get(path);
      assert.equal(xcs(g), "MISS", "a GET does not get the POST's response");
      assert.match(g.body, /method=GET/);
      // without explicit freshness a POST response is not stored
      assert.equal((await twice("/post/b?lm=100000")).upstream, 1, "GET: heuristic");
      await get("/post/c?lm=100000", {}, "POST");
      await get("/post/c?lm=100000", {}, "POST");
      assert.equal(await origin.count("/post/c"), 2);
      // GET only: HEAD goes to the upstream as it is
      const go = "/getonly/a?cc=max-age%3D60";
      await get(go);
      const h = await get(go, {}, "HEAD");
      assert.equal(h.headers["cache-status"], undefined);
      assert.equal(await origin.count("/getonly/a"), 2);
    },
  );

  await t.test(
    "request directives: no-cache, max-age, min-fresh, max-stale, only-if-cached",
    async () => {
      const path = "/reqdir?cc=max-age%3D60&etag=%22r%22";
      await get(path);
      assert.equal(xcs(await get(path, { "cache-control": "no-cache" })), "REVALIDATED");
      assert.equal(xcs(await get(path, { pragma: "no-cache" })), "REVALIDATED");
      assert.equal(xcs(await get(path, { "cache-control": "max-age=0" })), "REVALIDATED");
      assert.equal(xcs(await get(path, { "cache-control": "min-fresh=3600" })), "REVALIDATED");
      assert.equal(xcs(await get(path, { "cache-control": "max-age=3600" })), "HIT");
      assert.equal(xcs(await get(path, { "cache-control": "only-if-cached" })), "HIT");
      const none = await get("/never-seen", { "cache-control": "only-if-cached" });
      assert.equal(none.status, 504);
      assert.equal(await origin.count("/never-seen"), 0);
    },
  );

  await t.test(
    "Set-Cookie responses are not stored; with set-cookie ignored, stored without it",
    async () => {
      const path = "/cookie?cc=max-age%3D60&cookie=1";
      const { a, b, upstream } = await twice(path);
      assert.equal(upstream, 2);
      assert.equal(a.headers["set-cookie"]?.[0], "session=1; Path=/");
      assert.equal(b.headers["set-cookie"]?.[0], "session=2; Path=/");
      const ign = "/ignore/cookie?cc=max-age%3D60&cookie=1";
      const x = await get(ign);
      const y = await get(ign);
      assert.equal(
        x.headers["set-cookie"]?.[0],
        "session=1; Path=/",
        "the first client gets its cookie",
      );
      assert.equal(xcs(y), "HIT");
      assert.equal(y.headers["set-cookie"], undefined, "never another client's cookie");
      // a response varying on Cookie is kept apart per cookie
      const v = "/vcookie?cc=max-age%3D60&vary=Cookie";
      const c1 = await get(v, { cookie: "u=1" });
      const c2 = await get(v, { cookie: "u=2" });
      assert.match(c1.body, /cookie=u=1/);
      assert.match(c2.body, /cookie=u=2/);
    },
  );

  await t.test(
    "bypass and no-store conditions; minimum uses; X-Accel-Expires; cache off",
    async () => {
      const path = "/bypass/x?cc=max-age%3D60";
      await get(path);
      const by = await get(`${path}`.replace("?", "?nocache=1&"));
      assert.equal(xcs(by), "BYPASS");
      const nostore = "/bypass/y?cc=max-age%3D60&nostore=1";
      assert.equal((await twice(nostore)).upstream, 2);
      const mu = "/minuses/a?cc=max-age%3D60";
      await get(mu);
      await get(mu);
      assert.equal(xcs(await get(mu)), "HIT");
      assert.equal(await origin.count("/minuses/a"), 2);
      assert.equal((await twice("/xae?cc=no-store&xae=60")).upstream, 1);
      assert.equal((await twice("/xae0?cc=max-age%3D60&xae=0")).upstream, 2);
      const off = await twice("/off/a?cc=max-age%3D60");
      assert.equal(off.upstream, 2);
      assert.equal(off.b.headers["cache-status"], undefined);
    },
  );

  await t.test("stale-while-revalidate: stale served at once, one background refresh", async () => {
    const path = "/swr-own?cc=max-age%3D0%2C%20stale-while-revalidate%3D60";
    await get(path);
    const r = await get(path);
    assert.equal(xcs(r), "UPDATING");
    assert.match(r.body, /n=1/);
    for (let i = 0; i < 250 && (await origin.count("/swr-own")) < 2; i++) {
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.equal(await origin.count("/swr-own"), 2);
    const after = await get(path);
    assert.match(after.body, /n=2/, "the refreshed response");
    // the operator's window, for a response that states none
    const op = "/swr/op?cc=max-age%3D0";
    await get(op);
    assert.equal(xcs(await get(op)), "UPDATING");
  });

  await t.test(
    "purge by URL, key and tag; invalidate marks stale; the admin endpoint needs its token",
    async () => {
      const admin = (q: string, token = TOKEN) =>
        request(web.port, `/_cache${q}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
        });
      assert.equal((await admin("?url=http://x/", "wrong-token-000000000")).status, 401);
      const u = "/purge-url?cc=max-age%3D60";
      await get(u);
      const p1 = await admin(`?url=${encodeURIComponent(`http://127.0.0.1:${web.port}${u}`)}`);
      assert.equal(p1.status, 200);
      assert.equal(JSON.parse(p1.body).purged, 1);
      assert.equal(xcs(await get(u)), "MISS");
      const k = "/purge-key?cc=max-age%3D60";
      await get(k);
      await admin(`?key=${encodeURIComponent(`http://127.0.0.1${k}`)}`);
      assert.equal(xcs(await get(k)), "MISS");
      const t1 = "/purge-tag1?cc=max-age%3D60&tag=blue%20red";
      const t2 = "/purge-tag2?cc=max-age%3D60&tag=blue";
      const t3 = "/purge-tag3?cc=max-age%3D60&tag=green";
      for (const p of [t1, t2, t3]) await get(p);
      const tagged = await get(t1);
      assert.equal(tagged.headers["surrogate-key"], undefined, "tags are not sent to clients");
      assert.equal(JSON.parse((await admin("?tag=blue")).body).purged, 2);
      assert.equal(xcs(await get(t1)), "MISS");
      assert.equal(xcs(await get(t2)), "MISS");
      assert.equal(xcs(await get(t3)), "HIT");
      // invalidate: kept, but stale: revalidated (or refetched) before use
      const iv = "/purge-inv?cc=max-age%3D60&etag=%22i%22";
      await get(iv);
      await admin(
        `?url=${encodeURIComponent(`http://127.0.0.1:${web.port}${iv}`)}&mode=invalidate`,
      );
      assert.equal(xcs(await get(iv)), "REVALIDATED");
      // brigade purge: the endpoint from --admin, or from the config file
      const brigade = new URL("../../../bin/brigade.ts", import.meta.url).pathname;
      const cli = async (...args: string[]) => {
        const p = spawnNode(t, [brigade, "purge", ...args]);
        const { code } = await p.exited;
        return { code, output: p.output() };
      };
      const c1 = "/purge-cli1?cc=max-age%3D60";
      const c2 = "/purge-cli2?cc=max-age%3D60&tag=cli";
      await get(c1);
      await get(c2);
      const adminUrl = `http://127.0.0.1:${web.port}/_cache`;
      const r1 = await cli(
        `http://127.0.0.1:${web.port}${c1}`,
        "--admin",
        adminUrl,
        "--token",
        TOKEN,
      );
      assert.equal(r1.code, 0, r1.output);
      assert.match(r1.output, /"purged":1/);
      assert.equal(xcs(await get(c1)), "MISS");
      const r2 = await cli("-c", web.configFile, "--tag", "cli");
      assert.equal(r2.code, 0, r2.output);
      assert.equal(xcs(await get(c2)), "MISS");
      const r3 = await cli("-c", web.configFile, "--tag", "cli", "--token", "not-the-token-00000");
      assert.equal(r3.code, 1);
      assert.match(r3.output, /401/);
      const stats = await request(web.port, "/_cache", {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const s = JSON.parse(stats.body);
      assert.ok(s.hits > 0 && s.misses > 0 && s.purged >= 4, stats.body);
    },
  );
});
