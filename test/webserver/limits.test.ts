/**
 * Rate and concurrency limits and auth_request on a real `brigade web` with two workers, clients
 * on distinct loopback addresses. Counts, never timings: a rate of 1 r/m makes a run of a few
 * seconds see only the burst.
 */
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { okLocation, passThrough, request, startWeb, stopWeb, tempDir } from "./webHarness.ts";

/** `n` requests over fresh connections, `parallel` at a time, spread over the workers. */
async function burst(port: number, path: string, n: number, parallel: number, from?: string) {
  const out: { status: number; body: string; retryAfter: string | undefined }[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        const r = await request(port, path, from ? { from } : {});
        out.push({
          status: r.status,
          body: r.body,
          retryAfter: r.headers["retry-after"] as string,
        });
      }
    }),
  );
  return out;
}

const pidOf = (body: string) => body.match(/pid=(\d+)/)?.[1];

/** One request over `agent` (keep-alive, one socket), from `from`. */
function viaAgent(port: number, path: string, agent: http.Agent, from: string) {
  return new Promise<{ status: number; body: string; retryAfter: string | undefined }>(
    (resolve, reject) => {
      const req = http.request(
        { host: "127.0.0.1", port, path, agent, localAddress: from, timeout: 10_000 },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            body += c;
          });
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body,
              retryAfter: res.headers["retry-after"] as string | undefined,
            }),
          );
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${path} timed out`)));
      req.on("error", reject);
      req.end();
    },
  );
}

/**
 * Keep-alive clients pinned to distinct workers: the kernel hands a new connection to whichever
 * worker accepts first, so on a busy machine one worker can take them all. Open one-socket
 * agents until `workers` distinct pids answered (bounded), and keep one agent per pid.
 */
async function pinnedClients(port: number, workers: number, from: string) {
  const byPid = new Map<string, http.Agent>();
  for (let i = 0; i < 60 && byPid.size < workers; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const r = await viaAgent(port, "/probe", agent, from);
    const pid = pidOf(r.body);
    if (pid && !byPid.has(pid)) byPid.set(pid, agent);
    else agent.destroy();
  }
  assert.equal(byPid.size, workers, "could not reach every worker with a connection");
  return [...byPid.values()];
}

test("limits across two workers: rate, keys, delay, dry run, concurrency", async (t) => {
  // The auth server holds /hold requests until told, so requests stay in flight.
  const held: http.ServerResponse[] = [];
  const auth = http.createServer((req, res) => {
    if (String(req.headers["x-original-uri"]).startsWith("/busy")) held.push(res);
    else res.end();
  });
  await new Promise<void>((r) => auth.listen(0, "127.0.0.1", r));
  t.after(() => {
    auth.closeAllConnections();
    auth.close();
  });
  const authUrl = `http://127.0.0.1:${(auth.address() as AddressInfo).port}/check`;

  const web = await startWeb(t, {
    workers: 2,
    servers: [
      {
        listen: ["127.0.0.1:0"],
        ...passThrough,
        locations: [
          okLocation,
          {
            match: "/limited",
            limitReq: [{ rate: "1r/m", burst: 19, nodelay: true }],
            limitReqStatus: 429,
          },
          {
            match: "/keyed",
            limitReq: [
              { zone: "api", key: "$http_x_api_key", rate: "1r/m", burst: 1, nodelay: true },
            ],
          },
          // The same zone from another location: one bucket for both.
          {
            match: "/keyed-too",
            limitReq: [
              { zone: "api", key: "$http_x_api_key", rate: "1r/m", burst: 1, nodelay: true },
            ],
          },
          { match: "/delayed", limitReq: [{ rate: "20r/s", burst: 5, delay: 1 }] },
          { match: "/dry", limitReq: [{ rate: "1r/m" }], limitReqDryRun: true },
          { match: "/busy", limitConn: [{ max: 2 }], authRequest: authUrl },
        ],
      },
    ],
  });
  const p = web.port;

  await t.test("a rate limit holds across the workers (counts within 10%)", async () => {
    // 1 r/m with a burst of 19: 20 of 100 pass, with the requests alternating between two
    // keep-alive connections held by the two workers.
    const agents = await pinnedClients(p, 2, "127.0.0.2");
    const got: Awaited<ReturnType<typeof viaAgent>>[] = [];
    await Promise.all(
      agents.map(async (agent) => {
        for (let i = 0; i < 50; i++) got.push(await viaAgent(p, "/limited", agent, "127.0.0.2"));
      }),
    );
    for (const agent of agents) agent.destroy();
    const passed = got.filter((g) => g.status === 200);
    const pids = new Set(passed.map((g) => pidOf(g.body)));
    const all = new Set(got.map((g) => g.status));
    assert.deepEqual([...all].sort(), [200, 429]);
    assert.ok(
      passed.length >= 18 && passed.length <= 22,
      `${passed.length} passed, expected 20 ±10%`,
    );
    assert.equal(passed.length, 20, "exactly the burst, in fact");
    assert.equal(pids.size, 2, "both workers served");
    for (const g of got.filter((x) => x.status === 429)) {
      assert.ok(
        Number(g.retryAfter) >= 1 && Number(g.retryAfter) <= 60,
        `Retry-After ${g.retryAfter}`,
      );
    }
    // Another client has a bucket of its own.
    assert.equal((await request(p, "/limited", { from: "127.0.0.3" })).status, 200);
  });

  await t.test(
    "keys from a header; a zone shared by two locations; empty keys not limited",
    async () => {
      const key = (k: string) => ({ headers: { "x-api-key": k } });
      const a = [
        await request(p, "/keyed", key("a")),
        await request(p, "/keyed-too", key("a")),
        await request(p, "/keyed", key("a")),
      ];
      assert.deepEqual(
        a.map((r) => r.status),
        [200, 200, 503],
        "503 by default; the two locations share zone api",
      );
      assert.equal((await request(p, "/keyed", key("b"))).status, 200, "another key");
      for (let i = 0; i < 5; i++) assert.equal((await request(p, "/keyed")).status, 200, "no key");
    },
  );

  await t.test(
    "delay: requests past `delay` are held, not refused; dry run counts only",
    async () => {
      const got = await burst(p, "/delayed", 6, 6, "127.0.0.4");
      assert.deepEqual(new Set(got.map((g) => g.status)), new Set([200]));
      const statuses = got.map((g) => g.body.match(/req=(\w*)/)?.[1]);
      assert.equal(statuses.filter((s) => s === "DELAYED").length, 4, statuses.join(","));
      assert.equal(statuses.filter((s) => s === "PASSED").length, 2);
      const dry = await burst(p, "/dry", 3, 1, "127.0.0.4");
      assert.deepEqual(
        dry.map((d) => [d.status, d.body.match(/req=(\w*)/)?.[1]]),
        [
          [200, "PASSED"],
          [200, "REJECTED_DRY_RUN"],
          [200, "REJECTED_DRY_RUN"],
        ],
      );
    },
  );

  await t.test("limitConn: requests in flight per address, across workers", async () => {
    const inFlight = [
      request(p, "/busy/1", { from: "127.0.0.5" }),
      request(p, "/busy/2", { from: "127.0.0.5" }),
    ];
    for (let i = 0; i < 100 && held.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(held.length, 2, "two requests reached the auth server and wait there");
    // A third from the same address, whichever worker takes it, is refused at once.
    assert.equal((await request(p, "/busy/3", { from: "127.0.0.5" })).status, 503);
    assert.equal((await request(p, "/busy/3", { from: "127.0.0.5" })).status, 503);
    // Another address is not affected; its request waits at the auth server too.
    const other = request(p, "/busy/4", { from: "127.0.0.6" });
    for (let i = 0; i < 100 && held.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(held.length, 3);
    for (const res of held.splice(0)) res.end();
    assert.deepEqual(
      (await Promise.all([...inFlight, other])).map((r) => r.status),
      [200, 200, 200],
    );
    // Done requests give their counts back, just after their responses went out (as nginx's
    // limit_conn does at request cleanup): a request sent in that moment may still be refused,
    // so each is retried until it is held (bounded), and both end up held at once.
    const holdOne = async (path: string) => {
      for (let attempt = 0; attempt < 50; attempt++) {
        const before = held.length;
        const pending = request(p, path, { from: "127.0.0.5" });
        const refused = pending.then((r) => r.status === 503);
        for (let i = 0; i < 100 && held.length === before; i++) {
          const settled = await Promise.race([
            refused,
            new Promise<undefined>((r) => setTimeout(r, 20)),
          ]);
          if (settled === true) break;
        }
        if (held.length > before) return { pending };
      }
      throw new Error(`${path} was never let through`);
    };
    const again = [(await holdOne("/busy/5")).pending, (await holdOne("/busy/6")).pending];
    assert.equal(held.length, 2);
    for (const res of held.splice(0)) res.end();
    assert.deepEqual(
      (await Promise.all(again)).map((r) => r.status),
      [200, 200],
    );
  });

  assert.equal(await stopWeb(web), 0);
});

test("auth_request: 2xx lets in and copies headers, 401/403 pass on, others are 500", async (t) => {
  const seen: http.IncomingHttpHeaders[] = [];
  const handler: http.RequestListener = (req, res) => {
    seen.push({ ...req.headers, ":method": req.method, ":path": req.url });
    const token = req.headers.authorization ?? "";
    if (token === "Bearer good") {
      res.setHeader("x-user", "alice");
      res.end("ok");
    } else if (token === "Bearer forbidden") {
      res.statusCode = 403;
      res.end();
    } else if (token === "Bearer broken") {
      res.statusCode = 502;
      res.end();
    } else {
      res.statusCode = 401;
      res.setHeader("www-authenticate", 'Bearer realm="api"');
      res.end("who are you");
    }
  };
  const tcp = http.createServer(handler);
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  const sock = join(tempDir(t, "brigade-auth-"), "auth.sock");
  const unix = http.createServer(handler);
  await new Promise<void>((r) => unix.listen(sock, r));
  t.after(() => {
    for (const s of [tcp, unix]) {
      s.closeAllConnections();
      s.close();
    }
  });
  const port = (tcp.address() as AddressInfo).port;
  const web = await startWeb(t, {
    workers: 1,
    servers: [
      {
        listen: ["127.0.0.1:0"],
        ...passThrough,
        locations: [
          okLocation,
          {
            match: "/api",
            authRequest: {
              url: `http://127.0.0.1:${port}/verify?from=brigade`,
              copyHeaders: ["x-user"],
              setHeaders: { "x-client": "$remote_addr" },
            },
          },
          { match: "/sock", authRequest: `http://unix:${sock}:/verify` },
          { match: "/nowhere", authRequest: "http://127.0.0.1:9/verify" },
        ],
      },
    ],
  });
  const p = web.port;
  const bearer = (v: string, more: Record<string, string> = {}) => ({
    headers: { authorization: `Bearer ${v}`, ...more },
  });

  const ok = await request(p, "/api/items?page=2", {
    from: "127.0.0.7",
    ...bearer("good", { "x-user": "mallory", "x-forwarded-for": "10.0.0.1" }),
  });
  assert.equal(ok.status, 200);
  assert.match(ok.body, /xuser=alice /, "the auth server's x-user replaced the client's");
  const sub = seen.at(-1)!;
  assert.equal(sub[":method"], "GET");
  assert.equal(sub[":path"], "/verify?from=brigade");
  assert.equal(sub["x-original-uri"], "/api/items?page=2");
  assert.equal(sub["x-original-method"], "GET");
  assert.equal(sub["x-forwarded-for"], "10.0.0.1, 127.0.0.7");
  assert.equal(sub["x-forwarded-uri"], "/api/items?page=2");
  assert.equal(sub["x-client"], "127.0.0.7");
  assert.equal(sub.authorization, "Bearer good", "the original headers go along");
  assert.equal(sub["x-user"], undefined, "a copied header is never the client's, even here");
  assert.equal(sub["content-length"], undefined);

  const no = await request(p, "/api/x", { method: "POST", body: "data", ...bearer("nope") });
  assert.equal(no.status, 401);
  assert.equal(no.headers["www-authenticate"], 'Bearer realm="api"');
  assert.equal(seen.at(-1)![":method"], "GET", "a GET whatever the original method");
  assert.equal(seen.at(-1)!["x-original-method"], "POST");
  assert.equal((await request(p, "/api/x", bearer("forbidden"))).status, 403);
  assert.equal((await request(p, "/api/x", bearer("broken"))).status, 500);
  assert.equal((await request(p, "/nowhere", bearer("good"))).status, 500, "unreachable: 500");
  assert.equal((await request(p, "/sock/x", bearer("good"))).status, 200, "over a unix socket");
  assert.equal((await request(p, "/sock/x", bearer("nope"))).status, 401);
  assert.ok(
    web.lines.some((l) => /auth request answered an unexpected status .*status=502/.test(l)),
  );
  assert.equal(await stopWeb(web), 0);
});
