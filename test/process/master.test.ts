/**
 * The master on real processes: spawn, replace a killed worker, TTIN/TTOU, snapshot, pidfile,
 * unix socket, TERM draining an in-flight request.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { alive, httpGet, waitFor } from "../helpers/process.ts";
import { startMaster } from "./harness.ts";

test("spawns N workers, replaces a SIGKILLed one, TTIN/TTOU scale, pidfile lives with the master", async (t) => {
  const m = await startMaster(t, (dir) => ({
    workers: 2,
    listen: ["127.0.0.1:0"],
    timeout: 10,
    gracefulTimeout: 5,
    pidfile: join(dir, "master.pid"),
    worker: "hello",
  }));
  const pidfile = join(m.dir, "master.pid");
  assert.equal(readFileSync(pidfile, "utf8").trim(), String(m.pid));

  const snap = m.lastSnapshot()!;
  assert.equal(snap.pid, m.pid);
  assert.deepEqual(
    snap.workerList.map((w) => [w.id, w.state]),
    [
      [1, "ready"],
      [2, "ready"],
    ],
  );
  for (const w of snap.workerList) {
    assert.ok(alive(w.pid));
    assert.ok(w.ageMs >= 0);
  }
  const res = await httpGet({ port: m.port! });
  assert.equal(res.status, 200);
  assert.match(res.body, /^hello id=[12] /);

  // SIGKILL worker 1: the master logs why and a new worker takes slot 1.
  const victim = snap.workerList.find((w) => w.id === 1)!;
  const mark = m.lines.length;
  process.kill(victim.pid, "SIGKILL");
  await m.waitForLine(
    new RegExp(`worker exited worker=1 pid=${victim.pid} .*reason="signal SIGKILL"`),
    {
      from: mark,
    },
  );
  const ready = await m.waitForLine(/worker ready worker=1 pid=(\d+)/, { from: mark });
  assert.notEqual(Number(ready.match[1]), victim.pid);
  // SNAPSHOT lines come on stdout, log lines on stderr: wait rather than assume an order.
  const after = await waitFor(() => m.lastSnapshot(mark), "a snapshot after the respawn");
  assert.equal(after.workerList.length, 2);

  // TTIN: three workers; TTOU: back to two, slot 3 drains.
  const mark2 = m.lines.length;
  process.kill(m.pid, "SIGTTIN");
  await m.waitForLine(/worker ready worker=3 /, { from: mark2 });
  await waitFor(() => m.lastSnapshot(mark2)?.workerList.length === 3, "three workers");
  process.kill(m.pid, "SIGTTOU");
  await m.waitForLine(/worker exited worker=3 .*reason="scaled down"/, { from: mark2 });

  process.kill(m.pid, "SIGTERM");
  const { code } = await m.exited;
  assert.equal(code, 0, m.output());
  assert.equal(existsSync(pidfile), false, "pidfile removed on exit");
});

test("TERM lets an in-flight slow request finish, then exits 0", async (t) => {
  const m = await startMaster(t, {
    workers: 1,
    listen: ["127.0.0.1:0"],
    timeout: 10,
    gracefulTimeout: 10,
    worker: "hello",
  });
  const slow = httpGet({ port: m.port! }, "/slow?ms=1500");
  // The request must be in the worker before TERM: the fixture logs when it starts one.
  await m.waitForLine(/slow request started/);
  process.kill(m.pid, "SIGTERM");
  const res = await slow;
  assert.equal(res.status, 200);
  assert.match(res.body, /^slow done/);
  const { code } = await m.exited;
  assert.equal(code, 0, m.output());
  // Once stopped, the port refuses.
  await assert.rejects(httpGet({ port: m.port! }), /ECONNREFUSED/);
});

test("QUIT stops fast: an in-flight slow request is cut, the master exits 0", async (t) => {
  const m = await startMaster(t, {
    workers: 1,
    listen: ["127.0.0.1:0"],
    timeout: 10,
    gracefulTimeout: 30,
    worker: "hello",
  });
  const slow = httpGet({ port: m.port! }, "/slow?ms=20000").catch((e: Error) => e);
  await m.waitForLine(/slow request started/);
  process.kill(m.pid, "SIGQUIT");
  assert.ok((await slow) instanceof Error, "the in-flight request is dropped, not drained");
  assert.equal((await m.exited).code, 0, m.output());
});

test("QUIT after TERM turns the graceful stop into a fast one", async (t) => {
  const m = await startMaster(t, {
    workers: 1,
    listen: ["127.0.0.1:0"],
    timeout: 10,
    gracefulTimeout: 60,
    worker: "hello",
  });
  const slow = httpGet({ port: m.port! }, "/slow?ms=60000", 70_000).catch((e: Error) => e);
  await m.waitForLine(/slow request started/);
  process.kill(m.pid, "SIGTERM");
  await m.waitForLine(/handling action action=stop/);
  process.kill(m.pid, "SIGQUIT");
  assert.ok((await slow) instanceof Error, "the draining request is dropped");
  assert.equal((await m.exited).code, 0, m.output());
});

test("unix socket: stale file replaced, live socket not stolen, file removed on exit", async (t) => {
  const m = await startMaster(t, (dir) => ({
    workers: 1,
    listen: [`unix:${join(dir, "app.sock")}`, "127.0.0.1:0"],
    timeout: 10,
    gracefulTimeout: 5,
    worker: "hello",
  }));
  const sock = join(m.dir, "app.sock");
  assert.ok(statSync(sock).isSocket());
  const res = await httpGet({ socketPath: sock });
  assert.match(res.body, /^hello id=1 /);
  assert.match((await httpGet({ port: m.port! })).body, /^hello id=1 /);

  // A second master on the same live socket must refuse to start (exit 1), not steal it.
  const other = await startMaster(
    t,
    { workers: 1, listen: [`unix:${sock}`], timeout: 10, gracefulTimeout: 5, worker: "hello" },
    { waitReady: false },
  );
  const r2 = await other.exited;
  assert.equal(r2.code, 1, other.output());
  assert.match(other.output(), /EADDRINUSE/);
  assert.match((await httpGet({ socketPath: sock })).body, /^hello/);

  process.kill(m.pid, "SIGKILL");
  await m.exited;
  // The SIGKILLed master left a stale socket file: a new master replaces it.
  assert.ok(existsSync(sock));
  const m3 = await startMaster(
    t,
    { workers: 1, listen: [`unix:${sock}`], timeout: 10, gracefulTimeout: 5, worker: "hello" },
    { dir: m.dir },
  );
  assert.match((await httpGet({ socketPath: sock })).body, /^hello/);
  process.kill(m3.pid, "SIGTERM");
  assert.equal((await m3.exited).code, 0);
  assert.equal(existsSync(sock), false);
});
