/**
 * Reloads on the real command line: HUP under a bounded load (keep-alive and one-shot clients)
 * replaces every worker with zero failed requests and applies the re-read config; a bad config
 * keeps the running one; USR1 reopens the access log; `--reload` replaces workers when a source
 * file changes.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { boundedLoad, waitFor } from "../helpers/process.ts";
import { fixtureApp, request, startApp, tempDir } from "./harness.ts";

/** Request loops (two keep-alive, two one-shot) until stopped, bounded by `maxRequests` in all and `maxMs`. */
function load(port: number, maxRequests = 6000, maxMs = 45_000) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const traffic = boundedLoad(
    (keepAlive: boolean) => request(port, "/env?name=GEN", keepAlive ? { agent } : {}),
    { loops: [true, true, false, false], maxRequests, maxMs, trim: true },
  );
  return {
    bodies: traffic.bodies,
    errors: traffic.errors,
    async stop(): Promise<void> {
      await traffic.stop();
      agent.destroy();
    },
  };
}

test("HUP under load: every worker is replaced, the new config applies, no request fails", async (t) => {
  const dir = tempDir(t);
  const config = join(dir, "brigade.config.json");
  const accessLog = join(dir, "access.log");
  const write = (gen: string) =>
    writeFileSync(
      config,
      JSON.stringify({
        app: {
          app: fixtureApp,
          bind: "127.0.0.1:0",
          workers: 2,
          env: [`GEN=${gen}`],
          accessLog,
          accessLogFormat: "json",
        },
      }),
    );
  write("1");
  const app = await startApp(t, ["-c", config]);
  const traffic = load(app.port);
  await waitFor(() => traffic.bodies.length >= 50, "requests before the reload");

  for (const gen of ["2", "3"]) {
    const before = app.workers();
    write(gen);
    const mark = app.lines.length;
    process.kill(app.pid, "SIGHUP");
    await app.waitForLine(/reload complete/, { from: mark });
    for (const pid of before) {
      await app.waitForLine(new RegExp(`worker exited .*pid=${pid} .*reason=stopped`), {
        from: mark,
      });
    }
    const seen = traffic.bodies.length;
    await waitFor(() => traffic.bodies.length >= seen + 50, `requests after reload ${gen}`);
    await waitFor(() => traffic.bodies.at(-1) === gen, `GEN=${gen} served`);
  }
  // A broken config: the reload fails, the running workers go on.
  writeFileSync(config, "{ not json");
  const mark = app.lines.length;
  process.kill(app.pid, "SIGHUP");
  await app.waitForLine(/reload failed; keeping the running configuration/, { from: mark });
  const seen = traffic.bodies.length;
  await waitFor(() => traffic.bodies.length >= seen + 20, "requests after the failed reload");
  await traffic.stop();
  assert.deepEqual(traffic.errors, []);
  assert.deepEqual([...new Set(traffic.bodies)].sort(), ["1", "2", "3"], "every generation served");

  // The access log has a JSON line for every request, the old workers' included (each wrote
  // its last batch before exiting); the running ones write theirs within a moment of the
  // response, so wait for it rather than read at once. USR1 reopens it after a rotation.
  const logLines = () => readFileSync(accessLog, "utf8").trim().split("\n");
  await waitFor(
    () => logLines().length >= traffic.bodies.length,
    `${traffic.bodies.length} access log lines (${logLines().length} so far)`,
    10_000,
  );
  const lines = logLines();
  assert.equal(lines.length, traffic.bodies.length, "one line per request");
  const entry = JSON.parse(lines.at(-1)!);
  assert.equal(entry.method, "GET");
  assert.equal(entry.path, "/env");
  assert.equal(entry.query, "name=GEN");
  assert.equal(entry.status, 200);
  assert.equal(typeof entry.durationMs, "number");
  renameSync(accessLog, `${accessLog}.1`);
  const mark2 = app.lines.length;
  process.kill(app.pid, "SIGUSR1");
  await app.waitForLine(/handling action .*action=reopen/, { from: mark2 });
  await waitFor(async () => {
    await request(app.port, "/");
    return existsSync(accessLog) && readFileSync(accessLog, "utf8").includes('"path":"/"');
  }, "a line in the reopened access log");
  assert.equal(await app.stop(), 0, app.output());
});

test("--reload replaces the workers when a source file changes", async (t) => {
  const dir = tempDir(t, {
    "app.ts": 'export default { fetch: () => new Response("v1\\n") };\n',
    "lib.ts": "export const x = 1;\n",
  });
  const app = await startApp(t, ["app.ts", "-w", "1", "-b", "127.0.0.1:0", "--reload"], {
    cwd: dir,
  });
  assert.equal((await request(app.port, "/")).body, "v1\n");
  const mark = app.lines.length;
  writeFileSync(join(dir, "app.ts"), 'export default { fetch: () => new Response("v2\\n") };\n');
  await app.waitForLine(/source changed; reloading/, { from: mark });
  await app.waitForLine(/reload complete/, { from: mark });
  await waitFor(async () => (await request(app.port, "/")).body === "v2\n", "v2 served");
  assert.equal(await app.stop(), 0, app.output());
});
