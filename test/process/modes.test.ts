/**
 * Thread mode, and USR1 log reopening, on real processes.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { httpGet, waitFor } from "../helpers/process.ts";
import { startMaster } from "./harness.ts";

test("thread mode: workers run as worker_threads on SO_REUSEPORT sockets and stop on TERM", async (t) => {
  const m = await startMaster(t, {
    workers: 2,
    listen: ["127.0.0.1:0"],
    timeout: 10,
    gracefulTimeout: 5,
    mode: "thread",
    worker: "hello",
  });
  const snap = m.lastSnapshot()!;
  assert.equal(snap.workerList.length, 2);
  for (const w of snap.workerList) {
    assert.equal(w.pid, m.pid, "a thread lives in the master's process");
    assert.ok(w.threadId! > 0);
  }
  const threads = new Set<string>();
  for (let i = 0; i < 40 && threads.size < 2; i++) {
    const r = await httpGet({ port: m.port! });
    assert.equal(r.status, 200);
    assert.equal(Number(r.body.match(/pid=(\d+)/)![1]), m.pid);
    threads.add(r.body.match(/thread=(\d+)/)![1]!);
  }
  assert.ok(threads.size >= 1);
  assert.ok(!threads.has("0"), "answered from a worker thread, not the main thread");
  process.kill(m.pid, "SIGTERM");
  assert.equal((await m.exited).code, 0, m.output());
});

test("USR1 reopens the master's and the workers' log files after a rename", async (t) => {
  const m = await startMaster(
    t,
    (dir) => ({
      workers: 1,
      listen: ["127.0.0.1:0"],
      timeout: 10,
      gracefulTimeout: 5,
      worker: "hello",
      logFile: join(dir, "error.log"),
    }),
    { waitReady: false },
  );
  const log = join(m.dir, "error.log");
  const text = (): string => (existsSync(log) ? readFileSync(log, "utf8") : "");
  await waitFor(() => /master ready/.test(text()), "master ready in the log file");
  const port = Number(text().match(/listening address=127\.0\.0\.1:(\d+)/)![1]);
  renameSync(log, `${log}.1`);
  process.kill(m.pid, "SIGUSR1");
  await waitFor(() => /action=reopen/.test(readFileSync(`${log}.1`, "utf8")), "the reopen action");
  // The master writes to the new file...
  process.kill(m.pid, "SIGTTIN");
  await waitFor(() => /worker ready worker=2/.test(text()), "master lines in the new file");
  // ...and so does the worker that was running before USR1 (slot 1 logs its slow requests),
  // once the master's message reached it: its lines may land in the old file until then, so
  // poll (bounded) until one lands in the new file...
  await waitFor(
    async () => {
      await httpGet({ port }, "/slow?ms=1");
      return /slow request started .*worker=1 ms=1/.test(text());
    },
    "a line of worker 1 in the new file",
    10_000,
  );
  // ...and from then on every line goes there, none to the old file.
  const old = readFileSync(`${log}.1`, "utf8");
  for (let i = 0; i < 3; i++) await httpGet({ port }, "/slow?ms=2");
  await waitFor(
    () => (text().match(/slow request started .*ms=2/g) ?? []).length >= 3,
    "three more lines in the new file",
    5000,
  );
  assert.equal(readFileSync(`${log}.1`, "utf8"), old, "nothing more in the old file");
  process.kill(m.pid, "SIGTERM");
  assert.equal((await m.exited).code, 0);
});
