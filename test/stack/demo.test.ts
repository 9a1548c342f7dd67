/**
 * `npm start` (package.json: `brigade up` in examples/demo) serves the bundled demo at once:
 * the app's page and JSON API through the web tier, and its static assets from public/ by the
 * web tier alone. Ports are moved to ephemeral ones through the env vars, as a user could.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { killOnExit } from "../helpers/process.ts";
import { get } from "./harness.ts";

const root = new URL("../..", import.meta.url).pathname;

test("npm start serves the demo stack: page, API, slow endpoint, static assets", async (t) => {
  const run = mkdtempSync(join(tmpdir(), "brigade-demo-"));
  t.after(() => rmSync(run, { recursive: true, force: true }));
  const child = spawn("npm", ["start", "--silent"], {
    cwd: root,
    env: {
      ...process.env,
      BRIGADE_WEB_LISTEN: "127.0.0.1:0",
      BRIGADE_STACK_ADMIN: "127.0.0.1:0",
      BRIGADE_STACK_RUNTIME_DIR: run,
      BRIGADE_LOG_FORMAT: "text",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  killOnExit(t, child.pid);
  let out = "";
  child.stderr.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const summary = await new Promise<string>((resolve, reject) => {
    let text = "";
    const timer = setTimeout(
      () => reject(new Error(`no readiness summary in 60 s:\n${text}${out}`)),
      60_000,
    );
    child.stdout.on("data", (c: Buffer) => {
      text += c.toString();
      if (/ {2}config .*\n/.test(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    });
    child.once("exit", (code) => reject(new Error(`npm start exited ${code}:\n${text}${out}`)));
  });
  const master = Number(/master pid (\d+)/.exec(summary)![1]);
  killOnExit(t, master);
  const port = /web +http:\/\/127\.0\.0\.1:(\d+)/.exec(summary)![1];
  assert.match(summary, /files from \.\/public, everything else from the app/);
  assert.match(summary, /app +app\.ts: \d+ async worker/);
  assert.match(summary, /config none \(embedded defaults\)/);
  const base = `http://127.0.0.1:${port}`;

  const page = await get(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(page.body, /Brigade is serving/);
  for (const [path, type] of [
    ["/style.css", /^text\/css/],
    ["/app.js", /javascript/],
    ["/favicon.svg", /^image\/svg\+xml/],
    ["/hello.json", /^application\/json/],
  ] as const) {
    assert.ok(page.body.includes(path) || path === "/hello.json", `the page links ${path}`);
    const r = await get(`${base}${path}`);
    assert.equal(r.status, 200, path);
    assert.match(r.headers.get("content-type") ?? "", type, path);
    assert.ok(r.headers.get("etag"), `${path} is a file served by the web tier`);
  }
  const info = JSON.parse((await get(`${base}/api/info`)).body) as { pid: number; method: string };
  assert.equal(info.method, "GET");
  assert.ok(info.pid > 0 && info.pid !== master);
  assert.equal((await get(`${base}/slow?ms=100`)).body, "slept 100 ms\n");
  const echo = await get(`${base}/api/echo`, { method: "POST", body: "hi there" });
  assert.deepEqual(JSON.parse(echo.body), { length: 8, body: "hi there" });

  process.kill(master, "SIGTERM");
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  assert.equal(code, 0, out);
});
