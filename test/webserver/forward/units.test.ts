/**
 * The forward proxy's parts without a server: destination networks (the default deny-list,
 * IPv4 inside IPv6, allow and deny precedence), target parsing, domain and port matching, the
 * fields forwarded, and the config errors that keep it from being an open proxy.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveConfig } from "../../../src/config/load.ts";
import { createLogger } from "../../../src/core/logger.ts";
import { Fields } from "../../../src/webserver/exchange.ts";
import { outgoingFields } from "../../../src/webserver/forward/http.ts";
import {
  addressBytes,
  DestinationRules,
  describeRefusal,
} from "../../../src/webserver/forward/networks.ts";
import { Resolver } from "../../../src/webserver/forward/resolve.ts";
import {
  domainMatcher,
  parseAbsolute,
  parseConnect,
  portMatcher,
  type Target,
} from "../../../src/webserver/forward/target.ts";
import { Pipeline } from "../../../src/webserver/pipeline.ts";

test("the default deny-list refuses what SSRF reaches for, in every spelling", () => {
  const rules = new DestinationRules();
  const refused: [string, RegExp][] = [
    ["127.0.0.1", /loopback/],
    ["127.255.0.9", /loopback/],
    ["0.0.0.0", /unspecified/],
    ["10.20.30.40", /private/],
    ["172.31.255.255", /private/],
    ["192.168.1.1", /private/],
    ["100.64.0.1", /carrier-grade NAT/],
    ["169.254.169.254", /link-local, cloud metadata/],
    ["224.0.0.251", /multicast/],
    ["255.255.255.255", /broadcast/],
    ["::", /unspecified/],
    ["::1", /loopback/],
    ["fe80::1", /link-local/],
    ["fd00::1", /unique local/],
    ["ff02::1", /multicast/],
    ["::ffff:127.0.0.1", /loopback/],
    ["::ffff:7f00:1", /loopback/],
    ["::ffff:169.254.169.254", /cloud metadata/],
    ["::127.0.0.1", /IPv4-compatible|loopback/],
    ["64:ff9b::a9fe:a9fe", /cloud metadata/],
    ["2002:a00:1::1", /private/],
    ["2001:db8::1", /documentation/],
  ];
  for (const [address, why] of refused) {
    const r = rules.check(address);
    assert.ok(r, `${address} passed`);
    assert.match(r.network.name, why, address);
  }
  for (const address of [
    "93.184.215.14",
    "2606:4700::6810:84e5",
    "8.8.8.8",
    "172.32.0.1",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
  ]) {
    assert.equal(rules.check(address), undefined, address);
  }
  assert.equal(addressBytes("::ffff:1.2.3.4")!.join(","), "0,0,0,0,0,0,0,0,0,0,255,255,1,2,3,4");
  assert.equal(addressBytes("nope"), undefined);
});

test("allow reopens a default network in the form it matches; deny wins over allow", () => {
  const rules = new DestinationRules(["127.0.0.0/8", "10.1.0.0/16"], ["127.0.0.9/32"]);
  assert.equal(rules.check("127.0.0.1"), undefined);
  assert.equal(rules.check("::ffff:127.0.0.1"), undefined, "a mapped address is its IPv4 address");
  assert.equal(rules.check("10.1.2.3"), undefined);
  assert.ok(rules.check("10.2.0.1"));
  assert.ok(rules.check("::1"), "allowing IPv4 loopback leaves ::1 refused");
  const r = rules.check("127.0.0.9")!;
  assert.equal(r.list, "forwardDenyDestinations");
  assert.match(describeRefusal("127.0.0.9", r), /forwardDenyDestinations \(127\.0\.0\.9\/32\)/);
  // A deny matches the IPv4 inside an IPv6 address too.
  assert.equal(rules.check("::ffff:127.0.0.9")!.list, "forwardDenyDestinations");
  const everything = new DestinationRules(["0.0.0.0/0", "::/0"]);
  assert.equal(everything.check("169.254.169.254"), undefined);
  assert.equal(everything.check("::1"), undefined);
});

test("targets: absolute http URLs and CONNECT authorities, strictly", () => {
  const a = parseAbsolute("http://Example.COM./p?q=1#frag") as Target;
  assert.deepEqual(
    {
      host: a.host,
      port: a.port,
      authority: a.authority,
      path: a.pathAndQuery,
      hostPort: a.hostPort,
    },
    {
      host: "example.com",
      port: 80,
      authority: "example.com",
      path: "/p?q=1",
      hostPort: "example.com:80",
    },
  );
  const b = parseAbsolute("http://[::1]:8080?x") as Target;
  assert.equal(b.host, "::1");
  assert.equal(b.family, 6);
  assert.equal(b.authority, "[::1]:8080");
  assert.equal(b.pathAndQuery, "/?x");
  assert.equal((parseAbsolute("http://127.0.0.1:80/") as Target).authority, "127.0.0.1");
  for (const bad of [
    "https://x/",
    "ftp://x/",
    "http://u:p@x/",
    "http://x:0/",
    "http://x:65536/",
    "http://x:8a/",
    "http:///",
    "http://a..b/",
    "http://[fe80::1%25eth0]/",
    "http://-a.example/",
    "/relative",
  ]) {
    assert.equal(typeof parseAbsolute(bad), "string", bad);
  }
  const c = parseConnect("[2001:db8::1]:443") as Target;
  assert.equal(c.hostPort, "[2001:db8::1]:443");
  assert.equal((parseConnect("example.com:443") as Target).family, 0);
  for (const bad of ["example.com", "example.com:", ":443", "[::1]", "a b:443", "x:99999"]) {
    assert.equal(typeof parseConnect(bad), "string", bad);
  }
});

test("domain patterns and port ranges", () => {
  const m = domainMatcher(["example.com", ".example.org", "*.cdn.test"]);
  assert.equal(m("example.com"), "example.com");
  assert.equal(m("www.example.com"), undefined);
  assert.equal(m("example.org"), ".example.org");
  assert.equal(m("a.b.example.org"), ".example.org");
  assert.equal(m("badexample.org"), undefined);
  assert.equal(m("x.cdn.test"), "*.cdn.test");
  assert.equal(m("cdn.test"), undefined);
  assert.equal(domainMatcher(["*"])("anything"), "*");
  const p = portMatcher([
    [443, 443],
    [8000, 8999],
  ]);
  assert.ok(p(443) && p(8000) && p(8999));
  assert.ok(!p(80) && !p(9000));
});

test("fields forwarded: hop-by-hop and proxy credentials dropped, Via and Host set", () => {
  const target = parseAbsolute("http://origin.test:8080/x") as Target;
  const req = {
    fields: Fields.from([
      ["host", "wrong.test"],
      ["connection", "keep-alive, X-Hop"],
      ["proxy-connection", "keep-alive"],
      ["proxy-authorization", "Basic dTpw"],
      ["keep-alive", "300"],
      ["te", "trailers"],
      ["upgrade", "h2c"],
      ["x-hop", "1"],
      ["via", "1.0 older"],
      ["x-forwarded-for", "10.0.0.1"],
      ["accept", "*/*"],
    ]),
  } as unknown as Parameters<typeof outgoingFields>[0];
  const out = outgoingFields(req, target, {
    via: "1.1 me:3128 (brigade)",
    xForwardedFor: true,
    client: "127.0.0.1",
    parentAuthorization: undefined,
    maxForwards: undefined,
  });
  assert.deepEqual(new Fields(out).list, [
    "host",
    "origin.test:8080",
    "accept",
    "*/*",
    "via",
    "1.0 older, 1.1 me:3128 (brigade)",
    "x-forwarded-for",
    "10.0.0.1, 127.0.0.1",
  ]);
});

test("the resolver: one lookup for concurrent askers, cached for its time, failures not cached", async () => {
  let calls = 0;
  let fail = true;
  const r = new Resolver(async (host) => {
    calls++;
    if (host === "flaky.test" && fail) throw Object.assign(new Error("x"), { code: "EAI_AGAIN" });
    return [
      { address: "192.0.2.1", family: 4 },
      { address: "192.0.2.1", family: 4 },
    ];
  }, 60_000);
  const [x, y] = await Promise.all([r.resolve("a.test"), r.resolve("a.test")]);
  assert.deepEqual(x, ["192.0.2.1"]);
  assert.deepEqual(y, ["192.0.2.1"]);
  await r.resolve("a.test");
  assert.equal(calls, 1);
  await assert.rejects(r.resolve("flaky.test"), /cannot resolve flaky\.test \(EAI_AGAIN\)/);
  fail = false;
  assert.deepEqual(await r.resolve("flaky.test"), ["192.0.2.1"]);
});

async function compile(server: Record<string, unknown>): Promise<string> {
  try {
    const config = resolveConfig({
      file: {
        value: { web: { servers: [{ listen: ["127.0.0.1:0"], ...server }] } },
        source: "f.json",
      },
      env: {},
    });
    await Pipeline.compile({
      web: config.web,
      baseDir: process.cwd(),
      serving: false,
      logger: createLogger({ level: "fatal", format: "text" }),
      source: "f.json",
    });
    return "";
  } catch (e) {
    return (e as Error).message;
  }
}

test("config: never an open proxy; auth needs users; bad values name the setting", async () => {
  assert.match(
    await compile({ forwardProxy: true, forwardClients: ["all"] }),
    /web\.servers\[0\]: forward: forwardClients lets every address in, and forwardAuth is off: that is an open proxy/,
  );
  assert.match(await compile({ forwardProxy: true, forwardClients: ["0.0.0.0/0"] }), /open proxy/);
  assert.equal(
    await compile({
      forwardProxy: true,
      forwardClients: ["all"],
      forwardAuthUsers: { a: "{PLAIN}x" },
    }),
    "",
  );
  assert.match(
    await compile({ forwardProxy: true, forwardAuth: "office" }),
    /forwardAuth needs forwardAuthUserFile or forwardAuthUsers/,
  );
  assert.match(
    await compile({ forwardProxy: true, forwardAuthUsers: { a: "abcdefghijklm" } }),
    /forwardAuthUsers\.a: DES crypt hashes are refused/,
  );
  assert.match(
    await compile({ forwardProxy: true, forwardAuthUserFile: "/nonexistent/users" }),
    /forwardAuthUserFile: cannot read \/nonexistent\/users/,
  );
  assert.match(
    await compile({ forwardProxy: true, forwardConnectPorts: ["443-80"] }),
    /forwardConnectPorts\[0\]: a port range is 1 to 65535, low to high/,
  );
  assert.match(
    await compile({ forwardProxy: true, forwardAllowDestinations: ["10.0.0.0/33"] }),
    /forwardAllowDestinations: the prefix length of "10.0.0.0\/33" must be 0 to 32/,
  );
  assert.match(
    await compile({ forwardProxy: true, forwardAllowDomains: ["exa mple.com"] }),
    /forwardAllowDomains: expected a domain/,
  );
  assert.match(
    await compile({ forwardProxy: true, forwardParent: "https://p:3128" }),
    /forwardParent: the parent proxy is spoken to in plain HTTP/,
  );
  assert.equal(
    await compile({
      forwardProxy: true,
      forwardParent: "10.0.0.1:3128",
      forwardAllowDomains: ["*.example.com", "*"],
    }),
    "",
  );
});
