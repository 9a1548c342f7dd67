/** The real `brigade` command, run as a child process: check, print-config, help, flag errors. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";

const bin = join(import.meta.dirname, "../../bin/brigade.ts");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run brigade in `cwd` with only the given env vars (plus PATH), bounded to 30 s. */
function brigade(args: string[], cwd: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin, ...args],
      { cwd, env: { PATH: process.env.PATH ?? "", ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function tmp(t: TestContext, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-cli-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

test("check lists all three mistakes with their key paths and exits 1", async (t) => {
  const dir = tmp(t, {
    "brigade.config.ts":
      'export default { app: { wrokers: 2, timeout: "soon" }, web: { listen: ["nope:"] } };\n',
  });
  const r = await brigade(["check"], dir);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trim().split("\n");
  assert.deepEqual(lines, [
    'brigade.config.ts: app.wrokers: unknown setting; did you mean "workers"?',
    'brigade.config.ts: app.timeout: expected a duration (seconds, or "500ms", "30s", "5m", "1h"), found "soon"',
    'brigade.config.ts: web.listen[0]: expected a listen address ("host:port", ":port", "[::1]:port", "port" or "unix:/path"), found "nope:"',
    "brigade check: 3 problems in the config",
  ]);
});

test("check on a good config exits 0; a syntax error names the file", async (t) => {
  const dir = tmp(t, {
    "brigade.config.yaml": "app:\n  workers: 2\nweb:\n  listen: [':0']\n",
    "broken.mjs": "export default { app: {\n",
  });
  const good = await brigade(["check"], dir);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /^brigade check: ok: config .*brigade\.config\.yaml\n$/);
  const bad = await brigade(["check", "-c", "broken.mjs"], dir);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^broken\.mjs: could not be loaded: SyntaxError: /);
});

test("print-config shows the effective config: defaults < file < env < flags", async (t) => {
  const dir = tmp(t, {
    "brigade.config.json": JSON.stringify({
      app: { workers: 2, timeout: 10, gracefulTimeout: "1m" },
      log: { level: "warn" },
    }),
  });
  const r = await brigade(
    ["print-config", "hello.ts:app", "--app-workers", "4", "--bind", ":1", "--bind", "unix:/s"],
    dir,
    { BRIGADE_APP_WORKERS: "3", BRIGADE_APP_TIMEOUT: "20s", BRIGADE_WEB_WORKERS: "2" },
  );
  assert.equal(r.code, 0, r.stderr);
  // Each section holds more settings than these; the layers are what is checked here.
  const printed = JSON.parse(r.stdout) as Record<string, Record<string, unknown>>;
  const pick = (o: Record<string, unknown> | undefined, keys: string[]) =>
    Object.fromEntries(keys.map((k) => [k, o?.[k]]));
  const shared = ["workers", "timeout", "gracefulTimeout", "workerMode"];
  assert.deepEqual(printed.log, { level: "warn", format: "auto", errorLog: "-" });
  assert.deepEqual(pick(printed.app, ["app", "bind", ...shared]), {
    app: "hello.ts:app",
    bind: [":1", "unix:/s"],
    workers: 4,
    timeout: 20,
    gracefulTimeout: 60,
    workerMode: "process",
  });
  assert.deepEqual(pick(printed.web, ["listen", ...shared]), {
    listen: ["127.0.0.1:8080"],
    workers: 2,
    timeout: 30,
    gracefulTimeout: 30,
    workerMode: "process",
  });
  const yaml = await brigade(["print-config", "--format", "yaml", "--log-level", "debug"], dir);
  assert.equal(yaml.code, 0, yaml.stderr);
  assert.match(yaml.stdout, /^log:\n {2}level: debug\n/);
  assert.match(yaml.stdout, /\n {2}gracefulTimeout: 60\n/);
});

test("unknown flags get a did-you-mean and exit 2", async (t) => {
  const dir = tmp(t);
  const r = await brigade(["app", "hello.ts", "--wrokers", "2"], dir);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    'brigade app: unknown flag "--wrokers"; did you mean "--workers"? (see --help)\n',
  );
  const up = await brigade(["up", "-w", "2"], dir);
  assert.equal(up.code, 2);
  assert.match(up.stderr, /"-w" is ambiguous here; use "--app-workers" or "--web-workers"/);
});

test("--help lists each flag with its env var and default; --version", async (t) => {
  const dir = tmp(t);
  const r = await brigade(["app", "--help"], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: brigade app \[options\] APP\n/);
  assert.match(
    r.stdout,
    /\n {2}-w, --workers N\|auto\n.*\n.*env BRIGADE_APP_WORKERS; default \$WEB_CONCURRENCY if set, else 1\]/,
  );
  assert.match(
    r.stdout,
    /\n {2}-b, --bind ADDRESS\n.*\n.*env BRIGADE_APP_BIND; default \["127\.0\.0\.1:8000"\]; repeatable\]/,
  );
  assert.match(r.stdout, /--log-level debug\|info\|warn\|error\|fatal\n/);
  assert.doesNotMatch(r.stdout, /--listen/);
  const v = await brigade(["--version"], dir);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
});

test("app without APP is refused before anything starts", async (t) => {
  const dir = tmp(t);
  const none = await brigade(["app"], dir);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^brigade app: app\.app: no app given/);
  // A named app reaches the tier, which finds it cannot be loaded: exit 4 (ExitCode.appLoad).
  const missing = await brigade(["app", "hello.ts", "--log-format", "text"], dir);
  assert.equal(missing.code, 4, missing.stderr);
  assert.match(missing.stderr, /the app cannot be loaded/);
});
