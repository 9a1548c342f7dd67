/**
 * The cache across worker processes and restarts, with a disk tier: 100 concurrent misses make
 * one upstream request; a response stored by one worker is a hit in the other; a purge reaches
 * every worker's memory; stale-if-error when the upstream is killed or times out; the cache
 * survives a restart of the server.
 */
import assert from "node:assert/strict";
import http from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { freePort } from "../../helpers/process.ts";
import { request, startOrigin, startWeb, tempDir, xcs } from "./harness.ts";

const TOKEN = "test-token-0123456789";

test("cache with a disk tier, two workers", async (t) => {
  const dir = tempDir(t);
  const cacheDir = join(dir, "cache");
  const origin = await startOrigin(t);
  const origin2 = await startOrigin(t);
  const memPort = await freePort();
  const webConfig = {
    workers: 2,
    servers: [
      {
        // memory only: each worker its own copy, purges fanned out over the worker channel
        listen: [`127.0.0.1:${memPort}`],
        cache: true,
        cacheZone: "mem",
        cacheXStatusHeader: true,
        locations: [{ match: "/" }, { match: "= /_cache", cacheAdmin: { token: TOKEN } }],
      },
      {
        cache: true,
        cacheDir,
        cacheXStatusHeader: true,
        locations: [
          { match: "/" },
          { match: "/o2/", cacheStaleIfError: "1h", proxyReadTimeout: "1500ms" },
          { match: "= /_cache", cacheAdmin: { token: TOKEN } },
        ],
      },
    ],
  };
  let web = await startWeb(t, webConfig, { origin, origin2 }, dir);

  /** `n` requests at once, each on its own connection. */
  const burst = (
    path: string,
    n: number,
    headers: Record<string, string> = {},
    port = web.port,
  ) => {
    const agent = new http.Agent({ keepAlive: false, maxSockets: n });
    return Promise.all(
      Array.from({ length: n }, () => request(port, path, { agent, headers })),
    ).finally(() => agent.destroy());
  };

  /** Bursts of `path` until both workers have answered (bounded); every reply. */
  const untilBoth = async (path: string, port = web.port) => {
    const replies: Awaited<ReturnType<typeof request>>[] = [];
    const pids = new Set<unknown>();
    for (let i = 0; i < 20 && pids.size < 2; i++) {
      for (const r of await burst(path, 16, {}, port)) {
        replies.push(r);
        pids.add(r.headers["x-worker-pid"]);
      }
    }
    assert.equal(pids.size, 2, "both workers answered");
    return replies;
  };

  await t.test("100 concurrent misses for one key: exactly one upstream request", async () => {
    // Every attempt must make one upstream request. An attempt proves the lock holds across
    // workers once both took part (the kernel decides who accepts what): up to three tries.
    let both = false;
    for (let attempt = 0; attempt < 3 && !both; attempt++) {
      const path = `/collapse${attempt}?cc=max-age%3D60&delay=300`;
      const replies = await burst(path, 100);
      assert.equal(await origin.count(`/collapse${attempt}`), 1);
      assert.ok(replies.every((r) => r.status === 200 && r.body === replies[0]!.body));
      assert.equal(replies.filter((r) => xcs(r) === "MISS").length, 1);
      both = new Set(replies.map((r) => r.headers["x-worker-pid"])).size === 2;
    }
    assert.ok(both, "both workers took part in one of three attempts");
  });

  await t.test("a response stored by one worker is a hit in the other", async () => {
    const path = "/shared?cc=max-age%3D60";
    const first = await request(web.port, path);
    assert.equal(xcs(first), "MISS");
    for (const r of await untilBoth(path)) {
      assert.equal(xcs(r), "HIT");
      assert.equal(r.body, first.body);
    }
    assert.equal(await origin.count("/shared"), 1);
  });

  await t.test("a purge reaches every worker's memory tier", async () => {
    const path = "/purged?cc=max-age%3D60&tag=news";
    await request(web.port, path);
    await untilBoth(path); // both workers now hold it in memory
    const p = await request(web.port, "/_cache?tag=news", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(p.status, 200);
    const after = await untilBoth(path);
    assert.ok(
      after.every((r) => /n=2/.test(r.body)),
      "no worker served the purged copy",
    );
    assert.equal(await origin.count("/purged"), 2);
  });

  await t.test("memory-only zone: collapsing per worker, purges reach both workers", async () => {
    const path = "/mem?cc=max-age%3D60&delay=300&tag=m";
    const replies = [...(await burst(path, 40, {}, memPort)), ...(await untilBoth(path, memPort))];
    const n = await origin.count("/mem");
    assert.ok(n >= 1 && n <= 2, `one upstream request per worker at most, got ${n}`);
    assert.ok(replies.every((r) => r.status === 200));
    const p = await request(memPort, "/_cache?tag=m", {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(p.status, 200);
    const old = new Set(replies.map((r) => r.body));
    const again = await untilBoth(path, memPort);
    assert.ok(
      again.every((r) => !old.has(r.body)),
      "no worker served its purged copy",
    );
  });

  await t.test("stale-if-error: the upstream times out, then is killed", async () => {
    const path = "/o2/sie?cc=max-age%3D0";
    const first = await request(web.port, path);
    assert.equal(xcs(first), "MISS");
    const slow = await request(web.port, path, { headers: { "x-delay": "4000" } });
    assert.equal(xcs(slow), "STALE");
    assert.equal(slow.body, first.body);
    assert.match(String(slow.headers["cache-status"]), /fwd-status=504; .*detail=stale-if-error/);
    // must-revalidate forbids it: the error passes through
    const strict = "/o2/strict?cc=max-age%3D0%2C%20must-revalidate&etag=%22s%22";
    await request(web.port, strict);
    await origin2.kill();
    const down = await request(web.port, path);
    assert.equal(xcs(down), "STALE");
    assert.equal(down.body, first.body);
    assert.match(String(down.headers["cache-status"]), /fwd-status=502/);
    assert.equal((await request(web.port, strict)).status, 502);
    // the response's own stale-if-error, where the operator sets none
    const own = "/own-sie?cc=max-age%3D0%2C%20stale-if-error%3D600";
    const ok = await request(web.port, own);
    const failed = await request(web.port, own, { headers: { "x-fail": "1" } });
    assert.equal(xcs(failed), "STALE");
    assert.equal(failed.body, ok.body);
  });

  await t.test("the cache survives a restart", async () => {
    const path = "/restart?cc=max-age%3D600";
    const before = await request(web.port, path);
    await web.stop();
    web = await startWeb(t, webConfig, { origin, origin2: origin }, dir);
    const after = await request(web.port, path);
    assert.equal(xcs(after), "HIT");
    assert.equal(after.body, before.body);
    assert.equal(await origin.count("/restart"), 1);
  });
  await web.stop();
});
