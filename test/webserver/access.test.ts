/**
 * The access-phase modules on a real `brigade web`, clients on distinct loopback addresses:
 * allow/deny (IPv4, IPv6, IPv4-mapped on a dual-stack listener, 444), realip (trusted peers
 * only, recursive or not), block (path, header, method rules), basic auth (every htpasswd
 * format, the file re-read on change) and `satisfy any`.
 */
import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { waitFor } from "../helpers/process.ts";
import { htpasswdLines } from "./htpasswdVectors.ts";
import {
  basic,
  closedUnanswered,
  okLocation,
  passThrough,
  request,
  startWeb,
  stopWeb,
} from "./webHarness.ts";

test("allow/deny, realip, block and basic auth on one server", async (t) => {
  const users = await htpasswdLines();
  const web = await startWeb(
    t,
    {
      workers: 1,
      servers: [
        {
          listen: ["[::]:0"],
          ...passThrough,
          locations: [
            okLocation,
            {
              match: "/office",
              access: [
                "allow 127.0.0.2",
                "allow 127.0.0.64/26",
                { deny: "127.0.0.3", status: 444 },
                "allow ::1",
                "deny all",
              ],
            },
            { match: "/no6", access: ["deny ::1", "allow all"] },
            {
              match: "/proxied",
              realIpFrom: ["127.0.0.2", "127.0.0.5"],
              access: ["deny 10.9.8.7", "allow all"],
              locations: [{ match: "/proxied/deep", realIpRecursive: true }],
            },
            { match: "/real-ip", realIpFrom: ["127.0.0.2"], realIpHeader: "X-Real-IP" },
            {
              match: "/guarded",
              block: [
                { path: "~* \\.(php|env)$", status: 444 },
                { headers: { "user-agent": false } },
                { headers: { "user-agent": "~* (sqlmap|nikto)" }, status: 400 },
                { methods: ["TRACE"], status: 405 },
              ],
              allowMethods: ["GET", "POST"],
            },
            { match: "/private", authBasic: "Staff only", authBasicUserFile: "users" },
            {
              match: "/either",
              access: ["allow 127.0.0.2", "deny all"],
              authBasic: "Either",
              authBasicUserFile: "users",
              satisfy: "any",
            },
          ],
        },
      ],
    },
    { files: { users: users.text } },
  );
  const p = web.port;

  await t.test("allow/deny: first match wins; IPv4-mapped clients match IPv4 rules", async () => {
    const ok = await request(p, "/office", { from: "127.0.0.2" });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /addr=127\.0\.0\.2 /, "the mapped address is shown in IPv4 form");
    assert.equal((await request(p, "/office", { from: "127.0.0.100" })).status, 200, "in /26");
    assert.equal((await request(p, "/office", { from: "127.0.0.4" })).status, 403);
    assert.equal(await closedUnanswered(p, "/office", "127.0.0.3"), true, "444: closed");
    assert.equal(await closedUnanswered(p, "/office", "127.0.0.2"), false);
    assert.equal((await request(p, "/office", { host: "::1" })).status, 200, "IPv6 allow");
    assert.equal((await request(p, "/no6", { host: "::1" })).status, 403, "IPv6 deny");
    assert.equal((await request(p, "/no6", { from: "127.0.0.4" })).status, 200);
  });

  await t.test("realip: the header counts only from a trusted peer", async () => {
    const xff = (v: string) => ({ "x-forwarded-for": v });
    const trusted = await request(p, "/proxied/a", { from: "127.0.0.2", headers: xff("10.1.2.3") });
    assert.match(trusted.body, /addr=10\.1\.2\.3 /);
    // A client from an untrusted address cannot claim another.
    const spoof = await request(p, "/proxied/a", { from: "127.0.0.3", headers: xff("10.1.2.3") });
    assert.match(spoof.body, /addr=127\.0\.0\.3 /);
    // The real address is what allow/deny sees.
    const denied = await request(p, "/proxied/a", { from: "127.0.0.2", headers: xff("10.9.8.7") });
    assert.equal(denied.status, 403);
    // Not recursive: the last entry (what the trusted peer saw), even a trusted proxy's.
    const chain = xff("10.9.8.7, 10.4.4.4, 127.0.0.5");
    const flat = await request(p, "/proxied/a", { from: "127.0.0.2", headers: chain });
    assert.match(flat.body, /addr=127\.0\.0\.5 /);
    // Recursive: trusted proxies are skipped from the end; the first untrusted is the client.
    const deep = await request(p, "/proxied/deep", { from: "127.0.0.2", headers: chain });
    assert.match(deep.body, /addr=10\.4\.4\.4 /);
    // A value that is not an address changes nothing.
    const junk = await request(p, "/proxied/a", { from: "127.0.0.2", headers: xff("unknown") });
    assert.match(junk.body, /addr=127\.0\.0\.2 /);
    const real = await request(p, "/real-ip", {
      from: "127.0.0.2",
      headers: { "x-real-ip": "2001:db8::7" },
    });
    assert.match(real.body, /addr=2001:db8::7 /);
  });

  await t.test("block: path patterns, header presence and values, methods", async () => {
    const ua = { "user-agent": "test" };
    assert.equal((await request(p, "/guarded/x", { headers: ua })).status, 200);
    assert.equal(await closedUnanswered(p, "/guarded/wp-login.PHP"), true);
    // closedUnanswered sends no User-Agent: the second rule refuses it with 403.
    assert.equal(await closedUnanswered(p, "/guarded/x"), false);
    assert.equal((await request(p, "/guarded/x")).status, 403);
    const scanner = { "user-agent": "sqlmap/1.7" };
    assert.equal((await request(p, "/guarded/x", { headers: scanner })).status, 400);
    const trace = await request(p, "/guarded/x", { method: "TRACE", headers: ua });
    assert.equal(trace.status, 405);
    const del = await request(p, "/guarded/x", { method: "DELETE", headers: ua });
    assert.equal(del.status, 405);
    assert.equal(del.headers.allow, "GET, POST, HEAD");
    assert.equal((await request(p, "/guarded/x", { method: "HEAD", headers: ua })).status, 200);
  });

  await t.test("basic auth: every htpasswd format, wrong passwords, the challenge", async () => {
    const none = await request(p, "/private");
    assert.equal(none.status, 401);
    assert.equal(none.headers["www-authenticate"], 'Basic realm="Staff only", charset="UTF-8"');
    for (const u of users.entries) {
      const good = await request(p, "/private", { headers: basic(u.user, u.password) });
      assert.equal(good.status, 200, `${u.format} (${u.user})`);
      assert.match(good.body, new RegExp(`user=${u.user} `));
      const bad = await request(p, "/private", { headers: basic(u.user, `${u.password}x`) });
      assert.equal(bad.status, 401, `${u.format} with a wrong password`);
    }
    // The bcrypt user again: answered from the verification cache, same result.
    const b = users.entries.find((e) => e.format.startsWith("bcrypt"))!;
    assert.equal(
      (await request(p, "/private", { headers: basic(b.user, b.password) })).status,
      200,
    );
    assert.equal((await request(p, "/private", { headers: basic("nobody", "x") })).status, 401);
    const des = users.refused[0]!;
    assert.equal(
      (await request(p, "/private", { headers: basic(des.user, des.password) })).status,
      401,
    );
    const garbage = await request(p, "/private", { headers: { authorization: "Basic !!!" } });
    assert.equal(garbage.status, 401);
    // The log names the user and never the password.
    const failures = web.lines.filter((l) => /basic auth failed/.test(l));
    assert.ok(failures.some((l) => l.includes(`user=${b.user}`)));
    for (const u of users.entries) {
      assert.ok(!failures.some((l) => l.includes(u.password)), "no password in the log");
    }
    assert.ok(web.lines.some((l) => /DES crypt hashes are refused/.test(l)));
  });

  await t.test("basic auth: the file is re-read when it changes", async () => {
    const before = await request(p, "/private", { headers: basic("late", "comer") });
    assert.equal(before.status, 401);
    appendFileSync(join(web.dir, "users"), "late:{PLAIN}comer\n");
    await waitFor(
      async () =>
        (await request(p, "/private", { headers: basic("late", "comer") })).status === 200,
      "the new user to be accepted",
      10_000,
      200,
    );
  });

  await t.test("satisfy any: the address or a password", async () => {
    assert.equal((await request(p, "/either", { from: "127.0.0.2" })).status, 200);
    const elsewhere = await request(p, "/either", { from: "127.0.0.9" });
    assert.equal(elsewhere.status, 401, "a 401 wins over the 403, so browsers ask");
    const u = users.entries[0]!;
    const withPw = await request(p, "/either", {
      from: "127.0.0.9",
      headers: basic(u.user, u.password),
    });
    assert.equal(withPw.status, 200);
  });

  assert.equal(await stopWeb(web), 0);
});

test("a config naming a missing htpasswd file is refused before anything starts", async (t) => {
  const web = startWeb(t, {
    servers: [{ listen: ["127.0.0.1:0"], authBasic: "x", authBasicUserFile: "missing" }],
  });
  await assert.rejects(web, /authBasicUserFile: cannot read .*missing/);
});
