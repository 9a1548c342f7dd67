/** Loading: file formats, precedence, every problem at once, fresh re-import on reload. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { pathToFileURL } from "node:url";
import { loadConfig } from "../../src/config/load.ts";
import { ConfigError, formatProblem } from "../../src/config/problems.ts";

const indexUrl = pathToFileURL(join(import.meta.dirname, "../../src/index.ts")).href;

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function problems(p: Promise<unknown>): Promise<string[]> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.message, err.problems.map(formatProblem).join("\n"));
    return err.problems.map(formatProblem);
  }
  assert.fail("expected a ConfigError");
}

test("no config file: the defaults", async (t) => {
  const { config, file } = await loadConfig({ cwd: tmp(t), env: {} });
  assert.equal(file, undefined);
  assert.deepEqual(config.app.bind, ["127.0.0.1:8000"]);
  assert.deepEqual(config.web.listen, ["127.0.0.1:8080"]);
  assert.equal(config.app.workers, 1);
  assert.ok(config.web.workers >= 1);
  assert.equal(config.app.timeout, 30);
  assert.equal(config.app.pidfile, undefined);
  assert.equal(config.log.level, "info");
  const concurrent = await loadConfig({ cwd: tmp(t), env: { WEB_CONCURRENCY: "5" } });
  assert.equal(concurrent.config.app.workers, 5);
});

test(".ts with defineConfig, .json, .yaml and .yml all load", async (t) => {
  const dir = tmp(t);
  writeFileSync(
    join(dir, "brigade.config.ts"),
    `import { defineConfig } from ${JSON.stringify(indexUrl)};\n` +
      `const workers: number = 3;\nexport default defineConfig({ app: { workers, timeout: "1m" } });\n`,
  );
  writeFileSync(join(dir, "c.json"), JSON.stringify({ app: { workers: 4, bind: ":9000" } }));
  writeFileSync(join(dir, "c.yaml"), "web:\n  workers: 5\n  gracefulTimeout: 500ms\n");
  writeFileSync(join(dir, "c.yml"), "log:\n  level: debug\n");
  writeFileSync(join(dir, "plain.mjs"), "export default { app: { workers: 6 } };\n");
  const ts = await loadConfig({ cwd: dir, env: {} });
  assert.equal(ts.file, join(dir, "brigade.config.ts"));
  assert.equal(ts.config.app.workers, 3);
  assert.equal(ts.config.app.timeout, 60);
  const json = await loadConfig({ cwd: dir, env: {}, file: "c.json" });
  assert.equal(json.config.app.workers, 4);
  assert.deepEqual(json.config.app.bind, [":9000"]);
  const yaml = await loadConfig({ cwd: dir, env: {}, file: "c.yaml" });
  assert.equal(yaml.config.web.workers, 5);
  assert.equal(yaml.config.web.gracefulTimeout, 0.5);
  assert.equal((await loadConfig({ cwd: dir, env: {}, file: "c.yml" })).config.log.level, "debug");
  assert.equal((await loadConfig({ cwd: dir, env: {}, file: "plain.mjs" })).config.app.workers, 6);
});

test("precedence: defaults < file < env < flags", async (t) => {
  const dir = tmp(t);
  writeFileSync(
    join(dir, "brigade.config.json"),
    JSON.stringify({ app: { workers: 2, timeout: 10, gracefulTimeout: 11 } }),
  );
  const { config } = await loadConfig({
    cwd: dir,
    env: { BRIGADE_APP_WORKERS: "3", BRIGADE_APP_TIMEOUT: "20s", BRIGADE_APP_BIND: "a:1, b:2" },
    overrides: [{ section: "app", key: "workers", value: 4, source: "--workers" }],
  });
  assert.equal(config.app.workers, 4); // flag over env over file
  assert.equal(config.app.timeout, 20); // env over file
  assert.equal(config.app.gracefulTimeout, 11); // file over default
  assert.equal(config.app.workerMode, "process"); // default
  assert.deepEqual(config.app.bind, ["a:1", "b:2"]);
});

test("every problem at once, each with its source and key path", async (t) => {
  const dir = tmp(t);
  writeFileSync(
    join(dir, "brigade.config.yaml"),
    "app:\n  wrokers: 2\n  timeout: soon\n  bind: ['127.0.0.1:80', 'x:']\nlgo: {}\nweb: 3\n",
  );
  const found = await problems(
    loadConfig({
      cwd: dir,
      env: { BRIGADE_LOG_LEVEL: "loud" },
      overrides: [{ section: "web", key: "workers", value: 0, source: "--web-workers" }],
    }),
  );
  assert.deepEqual(found, [
    'brigade.config.yaml: app.wrokers: unknown setting; did you mean "workers"?',
    'brigade.config.yaml: lgo: unknown section; did you mean "log"?',
    "brigade.config.yaml: web: expected an object of settings, found 3",
    'BRIGADE_LOG_LEVEL: log.level: expected one of "debug", "info", "warn", "error", "fatal", found "loud"',
    'brigade.config.yaml: app.bind[1]: expected a listen address ("host:port", ":port", "[::1]:port", "port" or "unix:/path"), found "x:"',
    'brigade.config.yaml: app.timeout: expected a duration (seconds, or "500ms", "30s", "5m", "1h"), found "soon"',
    '--web-workers: web.workers: expected an integer ≥ 1 or "auto", found 0',
  ]);
});

test("a config file that fails to import is reported with the file and the cause", async (t) => {
  const dir = tmp(t);
  writeFileSync(join(dir, "brigade.config.ts"), "export default { app: {\n");
  const [ts] = await problems(loadConfig({ cwd: dir, env: {} }));
  assert.match(ts!, /^brigade\.config\.ts: could not be loaded: SyntaxError/);
  writeFileSync(join(dir, "throws.mjs"), "throw new Error('no database');\n");
  assert.deepEqual(await problems(loadConfig({ cwd: dir, env: {}, file: "throws.mjs" })), [
    "throws.mjs: could not be loaded: Error: no database",
  ]);
  writeFileSync(join(dir, "bad.json"), "{ nope");
  const [json] = await problems(loadConfig({ cwd: dir, env: {}, file: "bad.json" }));
  assert.match(json!, /^bad\.json: could not be parsed: SyntaxError/);
  assert.deepEqual(await problems(loadConfig({ cwd: dir, env: {}, file: "missing.yaml" })), [
    "missing.yaml: config file not found",
  ]);
});

test("a reload re-imports an edited .ts config", async (t) => {
  const dir = tmp(t);
  const file = join(dir, "brigade.config.ts");
  writeFileSync(file, "export default { app: { workers: 2 } };\n");
  const options = { cwd: dir, env: {} };
  assert.equal((await loadConfig(options)).config.app.workers, 2);
  writeFileSync(file, "export default { app: { workers: 7 } };\n");
  assert.equal((await loadConfig(options)).config.app.workers, 7);
});
