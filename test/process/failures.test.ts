/**
 * Failure handling on real processes: a worker stuck in `while (true)` is killed after the
 * heartbeat timeout and replaced; boot failures end the master with exit 3 after bounded
 * retries; an app-load failure ends it with exit 4 at once; a live pidfile refuses a start.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { httpGet } from "../helpers/process.ts";
import { startMaster } from "./harness.ts";

test("a worker whose event loop is blocked is killed after the timeout and replaced", async (t) => {
  const m = await startMaster(t, {
    workers: 1,
    listen: ["127.0.0.1:0"],
    timeout: 1,
    gracefulTimeout: 5,
    worker: "hello",
  });
  const first = await httpGet({ port: m.port! });
  const pid = Number(first.body.match(/pid=(\d+)/)![1]);
  const mark = m.lines.length;
  // The request never gets an answer: the worker spins until the master kills it.
  const spin = httpGet({ port: m.port! }, "/spin", 20_000).catch((e: Error) => e);
  await m.waitForLine(
    new RegExp(`worker timed out \\(no heartbeat\\); killing worker=1 pid=${pid}`),
    {
      from: mark,
    },
  );
  await m.waitForLine(new RegExp(`worker exited worker=1 pid=${pid} .*reason=timeout`), {
    from: mark,
  });
  await m.waitForLine(/worker ready worker=1 /, { from: mark });
  assert.ok((await spin) instanceof Error, "the spinning request died with its worker");
  const again = await httpGet({ port: m.port! });
  assert.equal(again.status, 200);
  assert.notEqual(Number(again.body.match(/pid=(\d+)/)![1]), pid);
  process.kill(m.pid, "SIGTERM");
  assert.equal((await m.exited).code, 0);
});

test("workers that throw at boot make the master exit 3 after bounded retries", async (t) => {
  const m = await startMaster(
    t,
    {
      workers: 1,
      listen: ["127.0.0.1:0"],
      timeout: 10,
      gracefulTimeout: 5,
      bootRetries: 3,
      worker: "boom",
    },
    { waitReady: false },
  );
  const { code } = await m.exited;
  assert.equal(code, 3, m.output());
  const spawns = m.lines.filter((l) => /worker spawned/.test(l)).length;
  assert.equal(spawns, 3, m.output());
  assert.match(m.output(), /boom at boot/);
  assert.match(m.output(), /workers failed to boot; giving up/);
});

test("a worker that cannot load the app makes the master exit 4 without respawning", async (t) => {
  const m = await startMaster(
    t,
    { workers: 2, listen: ["127.0.0.1:0"], timeout: 10, gracefulTimeout: 5, worker: "appload" },
    { waitReady: false },
  );
  const { code } = await m.exited;
  assert.equal(code, 4, m.output());
  // Both initial workers start at once; none is started again after the failure.
  assert.ok(m.lines.filter((l) => /worker spawned/.test(l)).length <= 2, m.output());
  assert.match(m.output(), /the app cannot be loaded/);
});

test("a pidfile naming a live process refuses the start; a stale one is replaced", async (t) => {
  const m = await startMaster(
    t,
    (dir) => ({
      workers: 1,
      listen: ["127.0.0.1:0"],
      timeout: 10,
      gracefulTimeout: 5,
      pidfile: join(dir, "pid"),
      worker: "hello",
    }),
    { waitReady: false },
  );
  // A second master on the same pidfile while the first is alive must refuse to start.
  await m.waitForLine(/master ready/, { timeoutMs: 30_000 });
  const pidfile = join(m.dir, "pid");
  assert.equal(readFileSync(pidfile, "utf8").trim(), String(m.pid));
  const second = await startMaster(
    t,
    {
      workers: 1,
      listen: ["127.0.0.1:0"],
      timeout: 10,
      gracefulTimeout: 5,
      pidfile,
      worker: "hello",
    },
    { waitReady: false },
  );
  assert.equal((await second.exited).code, 1, second.output());
  assert.match(second.output(), /names a running process/);
  assert.equal(
    readFileSync(pidfile, "utf8").trim(),
    String(m.pid),
    "the first master's pidfile is intact",
  );

  process.kill(m.pid, "SIGKILL");
  await m.exited;
  // Left behind by the killed master, now stale: a new master takes it over.
  writeFileSync(pidfile, `${m.pid}\n`);
  const third = await startMaster(t, {
    workers: 1,
    listen: ["127.0.0.1:0"],
    timeout: 10,
    gracefulTimeout: 5,
    pidfile,
    worker: "hello",
  });
  assert.equal(readFileSync(pidfile, "utf8").trim(), String(third.pid));
  process.kill(third.pid, "SIGTERM");
  assert.equal((await third.exited).code, 0);
});
