/**
 * Zero-downtime actions on real processes: HUP with a broken config keeps the old workers, HUP
 * with a good one replaces them under a stream of requests with no error, USR2 brings up a new
 * master on the same sockets under a stream of connections with no refusal.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { alive, boundedLoad, httpGet, killOnExit, waitFor } from "../helpers/process.ts";
import { type FixtureConfig, startMaster } from "./harness.ts";

/**
 * `loops` concurrent request loops (a new connection each) until `stop()`, or a bound of
 * `maxRequests` in all or `maxMs`, whichever comes first.
 */
function requestStream(port: number, loops = 2, maxRequests = 4000, maxMs = 40_000) {
  return boundedLoad(() => httpGet({ port }, "/", 10_000), {
    loops: Array.from({ length: loops }, (_, i) => i),
    maxRequests,
    maxMs,
  });
}

const base: FixtureConfig = {
  workers: 2,
  listen: ["127.0.0.1:0"],
  timeout: 10,
  gracefulTimeout: 5,
  worker: "hello",
  data: { v: 1 },
};

test("HUP: a broken config keeps the old workers; a good one replaces them with no failed request", async (t) => {
  const m = await startMaster(t, base);
  const oldPids = m
    .lastSnapshot()!
    .workerList.map((w) => w.pid)
    .sort();

  // Broken file: the reload fails, the error is logged, the same workers go on serving.
  writeFileSync(m.configFile, "{ not json");
  let mark = m.lines.length;
  process.kill(m.pid, "SIGHUP");
  await m.waitForLine(/reload failed; keeping the running configuration/, { from: mark });
  const r = await httpGet({ port: m.port! });
  assert.match(r.body, /gen=1 data=\{"v":1\}/);
  assert.ok(oldPids.includes(Number(r.body.match(/pid=(\d+)/)![1])));
  assert.ok(oldPids.every(alive));

  // Good file: new workers come up, then the old ones drain, while requests keep flowing.
  m.writeConfig({ ...base, data: { v: 2 } });
  const stream = requestStream(m.port!);
  await waitFor(() => stream.bodies.length >= 20, "requests before the reload");
  mark = m.lines.length;
  process.kill(m.pid, "SIGHUP");
  await m.waitForLine(/reload complete/, { from: mark });
  for (const pid of oldPids) {
    await m.waitForLine(new RegExp(`worker exited worker=\\d pid=${pid} `), { from: mark });
  }
  const seen = stream.bodies.length;
  await waitFor(() => stream.bodies.length >= seen + 20, "requests after the reload");
  await stream.stop();
  assert.deepEqual(stream.errors, []);
  assert.ok(stream.bodies.some((b) => /gen=1 data=\{"v":1\}/.test(b)));
  assert.match(stream.bodies.at(-1)!, /gen=2 data=\{"v":2\}/);
  assert.ok(oldPids.every((p) => !alive(p)));

  // A config whose app cannot load: the new workers fail, the reload is abandoned, and the
  // master keeps serving with generation 2 instead of exiting 4.
  m.writeConfig({ ...base, worker: "appload" });
  mark = m.lines.length;
  process.kill(m.pid, "SIGHUP");
  await m.waitForLine(/reload failed: a new worker did not boot; keeping the old workers/, {
    from: mark,
  });
  assert.match((await httpGet({ port: m.port! })).body, /gen=2 data=\{"v":2\}/);

  process.kill(m.pid, "SIGTERM");
  assert.equal((await m.exited).code, 0, m.output());
});

test("USR2: a new master takes over the sockets with no refused connection; TERM ends the old one", async (t) => {
  const m = await startMaster(t, (dir) => ({ ...base, pidfile: join(dir, "pid") }));
  const pidfile = join(m.dir, "pid");
  const stream = requestStream(m.port!);
  await waitFor(() => stream.bodies.length >= 20, "requests before USR2");

  const mark = m.lines.length;
  process.kill(m.pid, "SIGUSR2");
  const started = await m.waitForLine(/started a new master \(USR2\) pid=(\d+)/, { from: mark });
  const newPid = Number(started.match[1]);
  killOnExit(t, newPid);
  await m.waitForLine(new RegExp(`\\[${newPid}\\] \\[INFO\\] master ready`), { from: mark });
  assert.equal(readFileSync(pidfile, "utf8").trim(), String(newPid));
  assert.equal(readFileSync(`${pidfile}.oldbin`, "utf8").trim(), String(m.pid));

  // Both generations serve; WINCH stops the old workers but keeps the old master (for a
  // rollback); TERM then stops it for good.
  const seen = stream.bodies.length;
  await waitFor(() => stream.bodies.length >= seen + 20, "requests with two masters");
  const mark2 = m.lines.length;
  process.kill(m.pid, "SIGWINCH");
  await m.waitForLine(new RegExp(`\\[${m.pid}\\] \\[INFO\\] worker exited worker=1 `), {
    from: mark2,
  });
  await m.waitForLine(new RegExp(`\\[${m.pid}\\] \\[INFO\\] worker exited worker=2 `), {
    from: mark2,
  });
  assert.ok(alive(m.pid), "the old master stays after WINCH");
  const seen1 = stream.bodies.length;
  await waitFor(() => stream.bodies.length >= seen1 + 20, "requests after WINCH");
  process.kill(m.pid, "SIGTERM");
  assert.equal((await m.exited).code, 0, m.output());
  const seen2 = stream.bodies.length;
  await waitFor(() => stream.bodies.length >= seen2 + 20, "requests after the old master left");
  await stream.stop();
  assert.deepEqual(stream.errors, []);
  assert.equal(existsSync(`${pidfile}.oldbin`), false);
  assert.equal(readFileSync(pidfile, "utf8").trim(), String(newPid));

  // The new master serves alone now, on the same port.
  const snap = await waitFor(() => {
    for (let i = m.lines.length - 1; i >= mark; i--) {
      const l = m.lines[i]!;
      if (l.startsWith("SNAPSHOT ") && l.includes(`"pid":${newPid},`))
        return JSON.parse(l.slice(9));
    }
    return undefined;
  }, "a snapshot from the new master");
  const workerPids = (snap as { workerList: { pid: number }[] }).workerList.map((w) => w.pid);
  for (const p of workerPids) killOnExit(t, p);
  const r = await httpGet({ port: m.port! });
  assert.ok(workerPids.includes(Number(r.body.match(/pid=(\d+)/)![1])));

  process.kill(newPid, "SIGTERM");
  await waitFor(() => !alive(newPid), "the new master to exit");
  assert.equal(existsSync(pidfile), false);
});

test("USR2: if the new master dies, the old one restores its pidfile and goes on", async (t) => {
  const m = await startMaster(t, (dir) => ({ ...base, workers: 1, pidfile: join(dir, "pid") }));
  const pidfile = join(m.dir, "pid");
  const mark = m.lines.length;
  process.kill(m.pid, "SIGUSR2");
  const started = await m.waitForLine(/started a new master \(USR2\) pid=(\d+)/, { from: mark });
  const newPid = Number(started.match[1]);
  killOnExit(t, newPid);
  await m.waitForLine(new RegExp(`\\[${newPid}\\] \\[INFO\\] master ready`), { from: mark });
  process.kill(newPid, "SIGKILL");
  await m.waitForLine(/the new master exited; this master goes on/, { from: mark });
  assert.equal(readFileSync(pidfile, "utf8").trim(), String(m.pid));
  assert.equal(existsSync(`${pidfile}.oldbin`), false);
  assert.match((await httpGet({ port: m.port! })).body, /^hello/);
  process.kill(m.pid, "SIGTERM");
  assert.equal((await m.exited).code, 0, m.output());
});
