/**
 * loadApp: spec parsing, every module format, and each load failure's message (fixtures under
 * test/fixtures/gateway/).
 */
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { test } from "node:test";
import {
  AppLoadError,
  formatAppLoadError,
  loadApp,
  parseAppSpec,
  toNodeListener,
} from "../../src/appserver/load.ts";
import { serve } from "./serve.ts";

const cwd = resolve(import.meta.dirname, "../fixtures/gateway");

async function loadError(spec: string): Promise<AppLoadError> {
  try {
    await loadApp(spec, { cwd });
  } catch (err) {
    assert.ok(err instanceof AppLoadError, `expected AppLoadError, got ${String(err)}`);
    return err;
  }
  assert.fail(`${spec} loaded`);
}

test("parseAppSpec: path, path:name, path:factory()", () => {
  assert.deepEqual(parseAppSpec("app.ts"), { path: "app.ts", exportName: "default", call: false });
  assert.deepEqual(parseAppSpec("src/app.ts:api"), {
    path: "src/app.ts",
    exportName: "api",
    call: false,
  });
  assert.deepEqual(parseAppSpec("app.ts:create()"), {
    path: "app.ts",
    exportName: "create",
    call: true,
  });
  assert.deepEqual(parseAppSpec("./a/b:$x"), { path: "./a/b", exportName: "$x", call: false });
  assert.throws(() => parseAppSpec("app.ts:create(1)"), {
    name: "AppLoadError",
    message: /bad app spec/,
  });
  assert.throws(() => parseAppSpec("app.ts:"), /bad app spec/);
  assert.throws(() => parseAppSpec(":app"), /no module path/);
});

test("loads named exports, sync and async factories, and every file format", async (t) => {
  const cases: [string, string, string][] = [
    ["named.ts:api", "fetch", "named api"],
    ["named.ts:create()", "fetch", "from create()"],
    ["named.ts:createAsync()", "node", "from async factory"],
    ["listener.cjs", "node", "cjs listener"],
    ["handler.mjs", "fetch", "mjs /x"],
    ["handler.mts", "fetch", "mts GET"],
    ["handler", "fetch", "mts GET"], // no extension: .ts, .mts, .js, .mjs, .cjs tried in order
  ];
  for (const [spec, kind, body] of cases) {
    const app = await loadApp(spec, { cwd });
    assert.equal(app.kind, kind, spec);
    const { url } = await serve(t, toNodeListener(app, {}));
    const res = await fetch(`${url}/x`);
    assert.equal(await res.text(), body, spec);
  }
});

test("not found names the resolved path", async () => {
  const err = await loadError("nope/missing.ts");
  assert.equal(err.reason, "not-found");
  assert.equal(err.file, resolve(cwd, "nope/missing.ts"));
  assert.match(err.message, /app module not found: .*nope\/missing\.ts/);
});

test("syntax error names the file and keeps the cause", async () => {
  const err = await loadError("syntax-error.mjs");
  assert.equal(err.reason, "syntax");
  assert.match(err.message, /syntax error in .*syntax-error\.mjs/);
  assert.ok(err.cause instanceof SyntaxError);
});

test("a throw at import keeps the original stack", async () => {
  const err = await loadError("throws-at-import.ts");
  assert.equal(err.reason, "import-failed");
  assert.match(
    err.message,
    /throws-at-import\.ts threw while being imported: Error: boom at import/,
  );
  assert.ok(err.cause instanceof Error);
  assert.match(err.cause.stack ?? "", /explode .*throws-at-import\.ts/);
  assert.match(
    formatAppLoadError(err),
    /threw while being imported.*\ncaused by: Error: boom at import\n\s+at explode/,
  );
});

test("a missing dependency says so", async () => {
  const err = await loadError("missing-dep.ts");
  assert.equal(err.reason, "import-failed");
  assert.match(err.message, /imports a module that cannot be found.*brigade-no-such-package/);
});

test("a missing export lists the exports that exist", async () => {
  const noDefault = await loadError("no-default.ts");
  assert.equal(noDefault.reason, "missing-export");
  assert.match(noDefault.message, /has no default export; it exports: first, second/);
  const noName = await loadError("named.ts:nope");
  assert.match(noName.message, /has no export "nope"; it exports: .*api.*create/);
});

test("wrong shapes say what was found and what is accepted", async () => {
  const num = await loadError("not-an-app.ts");
  assert.equal(num.reason, "shape");
  assert.match(
    num.message,
    /not-an-app\.ts is not an app: found a number \(42\); accepted: a fetch handler/,
  );
  const obj = await loadError("not-an-app.ts:alsoNot");
  assert.match(obj.message, /found an object with keys hello; accepted/);
  const notFn = await loadError("named.ts:notAFunction()");
  assert.match(notFn.message, /is not a function, so it cannot be called as a factory/);
  const nothing = await loadError("named.ts:createNothing()");
  assert.match(nothing.message, /what .*createNothing\(\) returned is not an app: found undefined/);
});

test("a factory that throws keeps its cause", async () => {
  const err = await loadError("named.ts:createFails()");
  assert.equal(err.reason, "factory-failed");
  assert.match(
    err.message,
    /named\.ts:createFails\(\) threw while creating the app: Error: factory exploded/,
  );
  assert.ok(err.cause instanceof Error);
});
