/**
 * The access modules' parts without a server: password schemes on known vectors, htpasswd
 * parsing, realip's walk of the header, allow/deny matching, basic credentials, and the config
 * errors a user gets (naming the setting and what was expected).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveConfig } from "../../src/config/load.ts";
import { parseBasic } from "../../src/core/credentials/basic.ts";
import { parseHtpasswd } from "../../src/core/credentials/htpasswd.ts";
import { md5Crypt, schemeOf, verifySync } from "../../src/core/credentials/passwords.ts";
import { createLogger } from "../../src/core/logger.ts";
import { createTrust } from "../../src/gateway/forwarded.ts";
import { compileRules } from "../../src/webserver/access/index.ts";
import { Pipeline } from "../../src/webserver/pipeline.ts";
import { parseNode, realClient } from "../../src/webserver/realip/index.ts";

test("password schemes: known vectors match, near misses do not", () => {
  const vectors: [string, string][] = [
    ["$apr1$ft7KujQ3$IFU08fy3WLzy18f/TX6Z5.", "pässword 1"],
    ["$1$abc$Or2rbeUYTvt12aiVzMuS/.", ""],
    ["$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "Hello world!"],
    [
      "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
      "Hello world!",
    ],
    // A salt longer than 16 is cut; a 70-byte password spans two SHA-256 blocks.
    ["$5$toolongsaltstrin$qbMdMB5LkfnGcR.70AXSDnzLm2Nmu7cVEHkplJlR5N2", "a".repeat(70)],
    [
      "$6$rounds=1000$s$2qopGRjighl7WEgWKqKKddB/g9zLJIEPceDYk5JvVKNf4EYmYcTtqAngEiidbnKUfiec5GH1kiw0wwUrBiR9i.",
      "x".repeat(200),
    ],
    ["{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=", ""],
    ["{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0", "secret"],
    ["{PLAIN}open sesame", "open sesame"],
  ];
  for (const [hash, pw] of vectors) {
    assert.equal(verifySync(hash, pw), true, hash);
    assert.equal(verifySync(hash, `${pw}x`), false, `${hash} with a wrong password`);
  }
  assert.equal(md5Crypt("pass word", "saltsalt", "$1$"), "$1$saltsalt$1K7dkhtbTNVUwUicA5kOT1");
  assert.equal(schemeOf("qVoHNQj3q6QAg"), "des-crypt");
  assert.equal(schemeOf("$2y$05$.jQIQZzpmP.TuZtI2npIFej137C0au1qAmCwYv3sT6O70YXy/JNTu"), "bcrypt");
  assert.equal(schemeOf("$2y$05$short"), undefined);
  assert.equal(verifySync("$6$broken", "x"), false);
});

test("htpasswd parsing: comments, trailing comments, refused and unknown entries", () => {
  const { users, warnings } = parseHtpasswd(
    [
      "# a comment",
      "",
      "alice:{PLAIN}a:the comment field",
      "bob:qVoHNQj3q6QAg",
      "carol:nonsense",
      "no-colon-here",
      "alice:{PLAIN}again",
    ].join("\r\n"),
  );
  assert.deepEqual([...users.keys()], ["alice"]);
  assert.equal(users.get("alice")!.hash, "{PLAIN}a");
  assert.equal(warnings.length, 4);
  assert.match(warnings[0]!, /line 4 \(user "bob"\): DES crypt hashes are refused/);
  assert.match(warnings[1]!, /line 5 \(user "carol"\): unknown hash format/);
  assert.match(warnings[2]!, /line 6: expected user:hash/);
  assert.match(warnings[3]!, /line 7: user "alice" again/);
  assert.ok(!warnings.join("\n").includes("qVoHNQj3q6QAg"), "never a hash in a warning");
});

test("realip: node forms, trust, recursion, Forwarded", () => {
  assert.equal(parseNode("10.0.0.1"), "10.0.0.1");
  assert.equal(parseNode(" 10.0.0.1:8080 "), "10.0.0.1");
  assert.equal(parseNode("[2001:db8::1]:443"), "2001:db8::1");
  assert.equal(parseNode('"[2001:db8::1]"'), "2001:db8::1");
  assert.equal(parseNode("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(parseNode("unknown"), undefined);
  assert.equal(parseNode("_hidden"), undefined);
  const o = { trusted: createTrust(["10.0.0.0/8"]), header: "x-forwarded-for", recursive: false };
  assert.equal(realClient("192.0.2.1", "1.2.3.4", o), undefined, "untrusted peer");
  assert.equal(realClient("10.0.0.1", "1.2.3.4, 10.0.0.2", o), "10.0.0.2");
  assert.equal(realClient("10.0.0.1", "1.2.3.4, 10.0.0.2", { ...o, recursive: true }), "1.2.3.4");
  assert.equal(
    realClient("10.0.0.1", "10.0.0.3, 10.0.0.2", { ...o, recursive: true }),
    "10.0.0.3",
    "all trusted: the leftmost",
  );
  assert.equal(
    realClient("10.0.0.1", "junk, 10.0.0.2", { ...o, recursive: true }),
    "10.0.0.2",
    "the walk stops at what is not an address",
  );
  const fwd = { ...o, header: "forwarded" };
  assert.equal(
    realClient("10.0.0.1", 'for=192.0.2.60;proto=http, for="[2001:db8::7]:4711"', fwd),
    "2001:db8::7",
  );
  const unix = { ...o, trusted: createTrust(["unix"]) };
  assert.equal(realClient("", "1.2.3.4", unix), "1.2.3.4", "a unix socket peer");
});

test("allow/deny matching: first match, IPv6, mapped IPv4, unix, all", () => {
  const match = compileRules([
    { allow: true, addresses: ["10.1.0.0/16"], status: 403 },
    { allow: false, addresses: ["10.0.0.0/8", "fd00::/8"], status: 444 },
    { allow: true, addresses: ["unix"], status: 403 },
    { allow: false, addresses: ["*"], status: 403 },
  ]);
  assert.equal(match("10.1.2.3")?.allow, true);
  assert.equal(match("::ffff:10.1.2.3")?.allow, true);
  assert.equal(match("10.2.0.1")?.status, 444);
  assert.equal(match("fd12::1")?.status, 444);
  assert.equal(match("")?.allow, true, "unix socket peer");
  assert.equal(match("192.0.2.1")?.status, 403);
  assert.equal(
    compileRules([{ allow: false, addresses: ["::1"], status: 403 }])("127.0.0.1"),
    undefined,
  );
});

test("basic credentials: scheme case, colons in passwords, garbage", () => {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  assert.deepEqual(parseBasic(`Basic ${b64("u:p:q")}`), { user: "u", password: "p:q" });
  assert.deepEqual(parseBasic(`bAsIc ${b64("ü:ß")}`), { user: "ü", password: "ß" });
  assert.equal(parseBasic(`Basic ${b64("nocolon")}`), undefined);
  assert.equal(parseBasic("Bearer abc"), undefined);
  assert.equal(parseBasic(undefined), undefined);
});

async function problems(web: Record<string, unknown>): Promise<string> {
  try {
    const config = resolveConfig({ file: { value: { web }, source: "test.json" }, env: {} });
    const p = await Pipeline.compile({
      web: config.web,
      baseDir: process.cwd(),
      serving: false,
      logger: createLogger({ level: "fatal" }),
      source: "test.json",
    });
    await p.close();
    return "";
  } catch (e) {
    return (e as Error).message;
  }
}

test("config errors name the setting and what was expected", async () => {
  const server = (fields: Record<string, unknown>) => ({
    servers: [{ listen: ["127.0.0.1:0"], locations: [{ match: "/", ...fields }] }],
  });
  assert.match(
    await problems(server({ access: ["allow 10.0.0.0/33"] })),
    /web\.servers\[0\]\.locations\[0\]\.access\[0\].*prefix length .* 0 to 32/,
  );
  assert.match(await problems(server({ access: ["permit all"] })), /expected "allow <address>"/);
  assert.match(
    await problems(server({ limitReq: [{ rate: "10 per second" }] })),
    /limitReq\[0\]\.rate.*expected a rate \("10r\/s"/,
  );
  assert.match(
    await problems(server({ limitReq: [{ rate: "1r/s", burst: 2, delay: 3 }] })),
    /`delay` cannot exceed `burst`/,
  );
  assert.match(await problems(server({ authBasic: "x" })), /authBasic needs authBasicUserFile/);
  assert.match(await problems(server({ authRequest: "ftp://x/" })), /expected an "http:\/\/"/);
  assert.match(
    await problems(server({ block: [{ status: 444 }] })),
    /needs at least one of `methods`, `path`, `headers`/,
  );
  assert.match(
    await problems({
      servers: [
        {
          listen: ["127.0.0.1:0"],
          locations: [
            { match: "/a", limitReq: [{ zone: "z", rate: "1r/s" }] },
            { match: "/b", limitReq: [{ zone: "z", rate: "2r/s" }] },
          ],
        },
      ],
    }),
    /zone "z" is already used with key "\$remote_addr" and rate 1 r\/s/,
  );
  assert.match(
    await problems(server({ limitReq: [{ rate: "1r/s", key: "$nosuchvar" }] })),
    /limitReq\[0\]\.key: unknown variable "\$nosuchvar"/,
  );
  assert.equal(
    await problems(server({ limitReq: [{ rate: "30r/m", burst: 5, nodelay: true }] })),
    "",
  );
});
