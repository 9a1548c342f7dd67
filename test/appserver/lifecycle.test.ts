/**
 * Worker lifecycle on the real command line: a worker killed for a timeout has its blocked
 * JavaScript stack and its request logged; max-requests replaces a worker with no failed request
 * and the master's metrics stay monotonic across it; a worker over the memory limit stops
 * accepting, finishes its request and is replaced, never killed mid-request.
 */
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { waitFor } from "../helpers/process.ts";
import { fixtureApp, pidOf, request, startApp, tempDir } from "./harness.ts";

test("timeout: the blocked stack and the request in flight are logged, then the worker is replaced", async (t) => {
  const app = await startApp(t, [fixtureApp, "-w", "1", "-t", "4", "-b", "127.0.0.1:0"]);
  const [pid] = app.workers();
  const mark = app.lines.length;
  await assert.rejects(request(app.port, "/block?why=test", { timeoutMs: 20_000 }));
  const line = await app.waitForLine(/worker timed out \(no heartbeat\); killing/, {
    from: mark,
    timeoutMs: 20_000,
  });
  assert.match(line.line, new RegExp(`pid=${pid} `), app.output());
  assert.match(
    line.line,
    /inFlight=\[\{"method":"GET","path":"\/block\?why=test","ageMs":\d+\}\]/,
    app.output(),
  );
  const stackTop = app.lines[line.index + 2] ?? "";
  assert.match(
    stackTop,
    /at blockForever \(file:\/\/.*fixtures\/appserver\/app\.ts:\d+:\d+\)/,
    app.output(),
  );
  await app.waitForLine(new RegExp(`worker exited .*pid=${pid} .*reason=timeout`), { from: mark });
  await app.waitForLine(/worker ready/, { from: mark });
  assert.equal((await request(app.port, "/")).status, 200);
  assert.equal(await app.stop(), 0, app.output());
});

/** GET /metrics from the master. */
async function metrics(port: number): Promise<Map<string, number>> {
  const r = await request(port, "/metrics");
  assert.equal(r.status, 200);
  assert.match(String(r.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
  const out = new Map<string, number>();
  for (const line of r.body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

test("max-requests: the worker is replaced with no failed request; metrics count across it", async (t) => {
  const app = await startApp(t, [
    fixtureApp,
    "-w",
    "1",
    "-b",
    "127.0.0.1:0",
    "--max-requests",
    "3",
    "--metrics-bind",
    "127.0.0.1:0",
  ]);
  assert.ok(app.metricsPort);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const [first] = app.workers();
  const mark = app.lines.length;
  for (let i = 0; i < 3; i++) {
    const r = await request(app.port, "/", { agent });
    assert.equal(r.status, 200);
    assert.equal(pidOf(r.body), first);
  }
  await app.waitForLine(/worker asks to be replaced .*reason="max requests"/, { from: mark });
  await app.waitForLine(new RegExp(`worker exited .*pid=${first} .*reason="max requests"`), {
    from: mark,
  });
  // The keep-alive connection to the old worker was closed after its last response.
  const after = await request(app.port, "/", { agent });
  assert.equal(after.status, 200);
  assert.notEqual(pidOf(after.body), first);

  const m = await waitFor(async () => {
    const got = await metrics(app.metricsPort!);
    return got.get('brigade_app_requests_total{status="2xx"}') === 4 ? got : undefined;
  }, "4 requests in the metrics");
  assert.equal(m.get("brigade_app_request_duration_seconds_count"), 4);
  assert.equal(m.get('brigade_app_request_duration_seconds_bucket{le="+Inf"}'), 4);
  assert.equal(m.get('brigade_app_worker_exits_total{reason="max requests"}'), 1);
  assert.equal(m.get('brigade_app_workers{state="ready"}'), 1);
  const rss = [...m].find(([k]) => k.startsWith("brigade_app_worker_resident_memory_bytes{"));
  assert.ok(rss && rss[1] > 10 * 1024 * 1024, `a worker's RSS: ${rss}`);
  assert.equal((await request(app.metricsPort!, "/nope")).status, 404);
  assert.equal(await app.stop(), 0, app.output());
});

test("max-worker-memory: the worker stops accepting, finishes its request, then is replaced", async (t) => {
  const dir = tempDir(t);
  const app = await startApp(t, [
    fixtureApp,
    "-w",
    "1",
    "-b",
    "127.0.0.1:0",
    "--max-worker-memory",
    "200m",
  ]);
  const [first] = app.workers();
  const release = join(dir, "release");
  const mark = app.lines.length;
  const grown = request(app.port, `/grow?mb=250&file=${release}`, { timeoutMs: 30_000 });
  await app.waitForLine(/over the memory limit; no longer accepting/, { from: mark });
  const ready = await app.waitForLine(/worker ready/, { from: mark });
  // The new worker serves while the old one still holds its request.
  const meanwhile = await request(app.port, "/");
  assert.notEqual(pidOf(meanwhile.body), first);
  assert.ok(app.workers().includes(first!), "the old worker is still there");
  assert.ok(!existsSync(release));
  writeFileSync(release, "");
  const r = await grown;
  assert.equal(r.status, 200);
  assert.equal(pidOf(r.body), first);
  await app.waitForLine(new RegExp(`worker exited .*pid=${first} .*reason="memory limit"`), {
    from: ready.index,
  });
  assert.equal(await app.stop(), 0, app.output());
});
