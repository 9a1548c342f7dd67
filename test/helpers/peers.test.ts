import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { processTree } from "../../bench/lib/process.ts";
import { requireTool, startGunicorn, startNginx } from "./peers.ts";

test("startNginx runs real nginx with everything inside its temp dir, and stops it", async (t) => {
  if (!requireTool(t, "nginx")) return;
  const nginx = await startNginx(t, {
    serverBlock: 'location = /hello { return 200 "from nginx"; }',
    files: { "html/a.txt": "static a" },
  });
  const hello = await fetch(`${nginx.url}hello`);
  assert.equal(await hello.text(), "from nginx");
  assert.match(hello.headers.get("server") ?? "", /^nginx/);
  assert.equal(await (await fetch(`${nginx.url}a.txt`)).text(), "static a");
  assert.equal(readFileSync(`${nginx.dir}/nginx.pid`, "utf8").trim(), String(nginx.pid));
  assert.ok(existsSync(`${nginx.dir}/error.log`));
  assert.ok(processTree(nginx.pid).length >= 2, "a master and a worker");

  await nginx.stop();
  assert.deepEqual(processTree(nginx.pid), []);
  assert.equal(existsSync(nginx.dir), false);
});

test("startNginx rejects a bad config with nginx's own message", async (t) => {
  if (!requireTool(t, "nginx")) return;
  await assert.rejects(startNginx(t, { serverBlock: "no_such_directive on;" }), (err: Error) => {
    assert.match(err.message, /unknown directive "no_such_directive"/);
    return true;
  });
});

test("startGunicorn serves the given WSGI source with its workers, and stops them", async (t) => {
  if (!requireTool(t, "gunicorn")) return;
  const app = `def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["PATH_INFO"].encode()]
`;
  const gunicorn = await startGunicorn(t, { app, args: ["-w", "2"] });
  const res = await fetch(`${gunicorn.url}some/path`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "/some/path");
  const tree = processTree(gunicorn.pid);
  assert.ok(tree.length >= 2, `master and workers, got ${tree.join(",")}`);

  await gunicorn.stop();
  for (const pid of tree) assert.deepEqual(processTree(pid), [], `pid ${pid} still alive`);
});

/** Run a one-test file that needs a tool nobody has, with and without CI=true. */
function runNeedsMissingTool(ci: boolean): Promise<{ code: number | null; out: string }> {
  const helper = new URL("./peers.ts", import.meta.url).href;
  const code = `import { test } from "node:test";
import { requireTool } from ${JSON.stringify(helper)};
test("needs a tool", (t) => { if (!requireTool(t, "brigade-no-such-tool")) return; });`;
  const env = { ...process.env };
  // Without this the child would report to our runner instead of printing its own result.
  delete env.NODE_TEST_CONTEXT;
  if (ci) env.CI = "true";
  else delete env.CI;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--test-reporter=tap", "--input-type=module", "-e", code],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c;
    });
    child.stderr.on("data", (c: Buffer) => {
      out += c;
    });
    child.once("error", reject);
    child.once("close", (exit) => resolve({ code: exit, out }));
  });
}

test("requireTool skips for a missing tool locally but fails under CI=true", async () => {
  const local = await runNeedsMissingTool(false);
  assert.equal(local.code, 0, local.out);
  assert.match(local.out, /# SKIP brigade-no-such-tool is not installed/);

  const ci = await runNeedsMissingTool(true);
  assert.equal(ci.code, 1, ci.out);
  assert.match(ci.out, /in CI a test may not skip for a missing tool/);
});
