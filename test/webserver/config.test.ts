/**
 * The web server's settings: every module's table is mounted in the schema (one declaration,
 * no orphans, no key claimed twice), the recursive location type reports problems deep down with
 * their key paths, and the shorthands normalise to their object forms.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resolveConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/config/problems.ts";
import { staticFields } from "../../src/config/settings/web/static.ts";
import { moduleFields, moduleServerFields } from "../../src/config/settings/web.ts";
import { modules } from "../../src/webserver/modules.ts";

test("each module's fields are the tables mounted in server and location blocks", () => {
  const mounted = new Map<string, unknown>([
    ...Object.entries(moduleFields),
    ...Object.entries(moduleServerFields),
  ]);
  const claimed = new Map<string, string>();
  for (const m of modules) {
    for (const [key, field] of [
      ...Object.entries(m.fields ?? {}),
      ...Object.entries(m.serverFields ?? {}),
    ]) {
      assert.equal(mounted.get(key), field, `${m.name}.${key} is not the mounted declaration`);
      assert.equal(
        claimed.get(key),
        undefined,
        `${key} claimed by ${claimed.get(key)} and ${m.name}`,
      );
      claimed.set(key, m.name);
    }
  }
  // Mounted fields no module claims: only the static module's, while it lives on its branch.
  const orphans = [...mounted.keys()].filter((k) => !claimed.has(k));
  for (const k of orphans) assert.ok(k in staticFields, `${k} is mounted but no module reads it`);
});

test("problems deep in nested locations carry their full key path", () => {
  try {
    resolveConfig({
      file: {
        source: "f.json",
        value: {
          web: {
            servers: [
              {
                locations: [
                  {
                    match: "/a/",
                    locations: [
                      {
                        match: "/a/b/",
                        locations: [{ match: "/a/b/c/", expires: "soon", typo: 1 }],
                      },
                    ],
                  },
                ],
              },
            ],
          },
        },
      },
      env: {},
    });
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.message.split("\n"), [
      'f.json: web.servers[0].locations[0].locations[0].locations[0].typo: unknown setting; did you mean "types"?',
      'f.json: web.servers[0].locations[0].locations[0].locations[0].expires: expected a duration ("30d", "1h", -1), "modified 1h", "epoch", "max" or "off", found "soon"',
    ]);
  }
});

test("shorthands normalise to the object forms the modules read", () => {
  const c = resolveConfig({
    file: {
      source: "f.json",
      value: {
        web: {
          servers: [
            {
              listen: [":80", { address: ":443", tls: true }],
              tls: { cert: "c", key: "k" },
              return: "301 https://$host$request_uri",
              rewrite: ["^/a$ /b last"],
              errorPages: ["500 502 =200 /x", "404 = @app"],
              addHeaders: { "X-A": "1" },
              expires: "modified 1h",
              accessLog: ["-", { path: "a.log", format: "json", buffer: 0 }],
            },
          ],
        },
      },
    },
    env: {},
  });
  const s = c.web.servers[0]!;
  assert.deepEqual(s.listen, [
    { address: ":80", tls: false, http2: false, defaultServer: false },
    { address: ":443", tls: true, http2: true, defaultServer: false },
  ]);
  assert.deepEqual(s.return, { status: 301, url: "https://$host$request_uri" });
  assert.deepEqual(s.rewrite, [{ regex: "^/a$", replacement: "/b", flag: "last" }]);
  assert.deepEqual(s.errorPages, [
    { codes: [500, 502], uri: "/x", status: 200 },
    { codes: [404], uri: "@app", status: "response" },
  ]);
  assert.deepEqual(s.addHeaders, [{ name: "X-A", value: "1", always: false }]);
  assert.deepEqual(s.expires, { kind: "modified", seconds: 3600 });
  assert.deepEqual(s.accessLog, [
    { path: "-", format: "combined", buffer: 65536, flush: 1 },
    { path: "a.log", format: "json", buffer: 0, flush: 1 },
  ]);
});

test("quick-start flags and env vars reach the web section", () => {
  const c = resolveConfig({
    env: { BRIGADE_WEB_ROOT: "./public", BRIGADE_WEB_ACCESS_LOG: "-" },
    overrides: [{ section: "web", key: "listen", value: [":9000"], source: "--listen" }],
  });
  assert.equal(c.web.root, "./public");
  assert.deepEqual(c.web.listen, [":9000"]);
  assert.deepEqual(c.web.accessLog, [{ path: "-", format: "combined", buffer: 65536, flush: 1 }]);
  assert.deepEqual(c.web.servers, []);
});

test("module settings: inherited from location to server to the web section; own without", async () => {
  const { Pipeline } = await import("../../src/webserver/pipeline.ts");
  const { createLogger } = await import("../../src/core/logger.ts");
  const seen: Record<string, { settings: unknown; own: unknown; serving: boolean }> = {};
  const spy = {
    name: "spy",
    doc: "records what setup sees",
    fields: staticFields,
    setup(scope: {
      location: { match: string };
      settings: unknown;
      own: unknown;
      serving: boolean;
    }) {
      seen[scope.location.match] = {
        settings: scope.settings,
        own: scope.own,
        serving: scope.serving,
      };
      return undefined;
    },
  };
  const compile = async (web: unknown) => {
    const config = resolveConfig({ file: { source: "t", value: { web } }, env: {} });
    for (const k of Object.keys(seen)) delete seen[k];
    await Pipeline.compile({
      web: config.web,
      baseDir: "/",
      serving: false,
      logger: createLogger({ level: "fatal" }),
      source: "t",
      modules: [spy],
    });
  };
  // The quick start: no servers, one made from web.root.
  await compile({ root: "./public" });
  assert.deepEqual(seen[""], { settings: { root: "./public" }, own: {}, serving: false });
  await compile({
    root: "/http",
    servers: [
      {
        index: ["a.html"],
        locations: [
          { match: "/x/", root: "/x", locations: [{ match: "/x/y/" }] },
          { match: "/z/" },
        ],
      },
    ],
  });
  assert.deepEqual(seen[""]!.settings, { root: "/http", index: ["a.html"] });
  assert.deepEqual(seen[""]!.own, { index: ["a.html"] });
  assert.deepEqual(seen["/x/"]!.settings, { root: "/x", index: ["a.html"] });
  assert.deepEqual(seen["/x/y/"], {
    settings: { root: "/x", index: ["a.html"] },
    own: {},
    serving: false,
  });
  assert.deepEqual(seen["/z/"]!.settings, { root: "/http", index: ["a.html"] });
});
