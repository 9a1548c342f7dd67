/**
 * Server and location selection (nginx's precedence) and the problems compiling finds, on
 * compiled pipelines, without sockets. The same precedence is checked against real nginx in
 * nginx.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/config/problems.ts";
import type { UserConfig } from "../../src/config/schema.ts";
import { createLogger } from "../../src/core/logger.ts";
import { response } from "../../src/webserver/exchange.ts";
import { Pipeline } from "../../src/webserver/pipeline.ts";

const logger = createLogger({ level: "fatal", format: "text" });

async function compile(web: NonNullable<UserConfig["web"]>): Promise<Pipeline> {
  const config = resolveConfig({ file: { value: { web }, source: "test.json" }, env: {} });
  return Pipeline.compile({
    web: config.web,
    baseDir: "/",
    serving: false,
    logger,
    source: "test.json",
  });
}

async function problems(web: NonNullable<UserConfig["web"]>): Promise<string[]> {
  try {
    await compile(web);
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  return [];
}

test("locations: exact, longest prefix, ^~, regexes in order, nested", async () => {
  const p = await compile({
    servers: [
      {
        listen: ["127.0.0.1:1"],
        locations: [
          { match: "= /" },
          { match: "/" },
          { match: "/documents/" },
          { match: "^~ /images/" },
          { match: "~* \\.(gif|jpg|jpeg)$" },
          { match: "~ ^/documents/.*\\.pdf$" },
          { match: "~ \\.pdf$" },
          {
            match: "/api/",
            locations: [
              { match: "/api/v2/" },
              { match: "~ /api/.*\\.json$" },
              { match: "= /api/x" },
            ],
          },
          { match: "^~ /static/", locations: [{ match: "~ \\.css$" }] },
          { match: "@named" },
        ],
      },
    ],
  });
  const at = (path: string) => p.locate("", path);
  assert.equal(at("/"), "= /");
  assert.equal(at("/index.html"), "/");
  assert.equal(at("/documents/document.html"), "/documents/");
  assert.equal(at("/images/1.gif"), "^~ /images/");
  assert.equal(at("/documents/1.jpg"), "~* \\.(gif|jpg|jpeg)$");
  assert.equal(at("/documents/1.JPG"), "~* \\.(gif|jpg|jpeg)$");
  // the first regex in order of appearance wins, not the most specific
  assert.equal(at("/documents/a.pdf"), "~ ^/documents/.*\\.pdf$");
  assert.equal(at("/x/a.pdf"), "~ \\.pdf$");
  // nested: the deepest prefix, a nested regex, a nested exact
  assert.equal(at("/api/v2/users"), "/api/v2/");
  assert.equal(at("/api/v1/users"), "/api/");
  assert.equal(at("/api/v2/a.json"), "~ /api/.*\\.json$");
  assert.equal(at("/api/x"), "= /api/x");
  // an outer regex beats a nested prefix
  assert.equal(at("/api/v2/a.pdf"), "~ \\.pdf$");
  // ^~ skips the outer regexes, not its own nested ones
  assert.equal(at("/static/a.jpg"), "^~ /static/");
  assert.equal(at("/static/a.css"), "~ \\.css$");
  // named locations never match a path
  assert.equal(at("/@named"), "/");
});

test("no location matches: the server's own block", async () => {
  const p = await compile({
    servers: [{ listen: ["127.0.0.1:1"], locations: [{ match: "/a/" }] }],
  });
  assert.equal(p.locate("", "/b"), "");
});

test("server names: exact, leading and trailing wildcards, regex, default", async () => {
  const p = await compile({
    servers: [
      { listen: ["127.0.0.1:1"], serverName: ["default.test"], locations: [{ match: "/default" }] },
      { listen: ["127.0.0.1:1"], serverName: ["*.example.com"], locations: [{ match: "/star" }] },
      {
        listen: ["127.0.0.1:1"],
        serverName: ["*.www.example.com"],
        locations: [{ match: "/longer" }],
      },
      {
        listen: ["127.0.0.1:1"],
        serverName: ["www.example.*"],
        locations: [{ match: "/trailing" }],
      },
      { listen: ["127.0.0.1:1"], serverName: [".dot.test"], locations: [{ match: "/dot" }] },
      {
        listen: ["127.0.0.1:1"],
        serverName: ["~^(?<user>\\w+)\\.users\\.test$"],
        locations: [{ match: "/re" }],
      },
      {
        listen: ["127.0.0.1:1"],
        serverName: ["exact.example.com", ""],
        locations: [{ match: "/exact" }],
      },
    ],
  });
  const name = (host: string) => {
    for (const m of ["/default", "/star", "/longer", "/trailing", "/dot", "/re", "/exact"]) {
      if (p.locate(host, `${m}x`) === m) return m;
    }
    return "?";
  };
  assert.equal(name("exact.example.com"), "/exact");
  assert.equal(name("a.example.com"), "/star");
  assert.equal(name("a.b.example.com"), "/star");
  assert.equal(name("x.www.example.com"), "/longer");
  assert.equal(name("www.example.org"), "/trailing");
  // the leading wildcard wins over the trailing one
  assert.equal(name("www.example.com"), "/star");
  assert.equal(name("dot.test"), "/dot");
  assert.equal(name("a.dot.test"), "/dot");
  assert.equal(name("bob.users.test"), "/re");
  assert.equal(name(""), "/exact");
  assert.equal(name("unknown.test"), "/default");
  assert.equal(name("example.com"), "/default");
});

test("every structural problem at once, with key paths", async () => {
  const lines = await problems({
    servers: [
      {
        listen: ["127.0.0.1:1", { address: "127.0.0.1:2", tls: true }],
        serverName: ["a.test"],
        locations: [
          { match: "/a/", locations: [{ match: "/b/" }, { match: "@inner" }] },
          { match: "= /x", locations: [{ match: "= /x" }] },
          { match: "/a/" },
        ],
      },
      { listen: ["127.0.0.1:1"], serverName: ["a.test"] },
      { listen: ["127.0.0.1:2"] },
      {
        listen: [
          { address: "127.0.0.1:3", defaultServer: true },
          { address: "127.0.0.1:3", defaultServer: true },
        ],
      },
      { listen: [{ address: "127.0.0.1:4", defaultServer: true }] },
      {
        listen: [{ address: "127.0.0.1:4", defaultServer: true }],
        tls: { cert: "/nonexistent.crt", key: "/nonexistent.key" },
      },
    ],
  });
  const expect = [
    'test.json: web.servers[0].locations[0].locations[0].match: location "/b/" is outside its parent location (nested prefixes must start with "/a/")',
    "test.json: web.servers[0].locations[0].locations[1].match: a named location can only be in a server block, not nested",
    "test.json: web.servers[0].locations[1].locations: an exact location cannot hold nested locations",
    'test.json: web.servers[0].locations[2].match: duplicate location "/a/" (also web.servers[0].locations[0])',
    "test.json: web.servers[2].listen[0]: 127.0.0.1:2 is a TLS listener (web.servers[0].listen[1]); every server listening there must say the same `tls`",
    "test.json: web.servers[3].listen[1]: this server already listens on 127.0.0.1:3",
    "test.json: web.servers[5].tls: cannot use the certificate and key: ENOENT: no such file or directory, open '/nonexistent.crt'",
    'test.json: web.servers[1].serverName: server name "a.test" on 127.0.0.1:1 is also servers[0]\'s',
    "test.json: web.servers[5].listen[0]: a second default server for 127.0.0.1:4 (the first is web.servers[4].listen[0])",
    "test.json: web.servers[0]: listens with TLS on 127.0.0.1:2 but has no `tls` certificate and key",
  ];
  for (const e of expect) assert.ok(lines.includes(e), `missing:\n${e}\nin:\n${lines.join("\n")}`);
});

test("a module's setup error names the location; an unknown variable gets a did-you-mean", async () => {
  const lines = await problems({
    servers: [
      {
        listen: ["127.0.0.1:1"],
        locations: [{ match: "/", addHeaders: { "x-a": "$reqest_uri" }, return: "200 $nope" }],
      },
    ],
  });
  assert.deepEqual(lines, [
    'test.json: web.servers[0].locations[0]: rewrite: unknown variable "$nope"',
    'test.json: web.servers[0].locations[0]: headers: addHeaders["x-a"]: unknown variable "$reqest_uri"; did you mean "$request_uri"?',
  ]);
});

test("a second content handler in one location is a config error", async () => {
  const claim = (name: string) => ({
    name,
    doc: "test",
    setup: () => ({ content: () => response(200) }),
  });
  const config = resolveConfig({ file: { value: { web: {} }, source: "t" }, env: {} });
  await assert.rejects(
    Pipeline.compile({
      web: config.web,
      baseDir: "/",
      serving: false,
      logger,
      source: "t",
      modules: [claim("one"), claim("two")],
    }),
    /web: both one and two would answer this location/,
  );
});

test("wildcard and address-specific listeners on one port share the wildcard's socket", async () => {
  const p = await compile({
    servers: [
      { listen: [":1"], serverName: ["any.test"] },
      { listen: ["127.0.0.1:1"], serverName: ["local.test"] },
      { listen: ["127.0.0.2:5"] },
    ],
  });
  assert.deepEqual(
    p.listeners.map((l) => l.plan.key),
    ["0.0.0.0:1", "127.0.0.2:5"],
  );
});
