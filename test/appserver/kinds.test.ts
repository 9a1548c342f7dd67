/**
 * Worker kinds and their accept gate. Sync workers (`-k sync`): a busy worker is never handed
 * another connection while another worker is idle, whether it is busy awaiting (its event loop
 * free, where a plain Node server would accept more) or busy computing; and it closes the
 * connection after each response. Async workers at `workerConnections` stop accepting.
 *
 * No timing: a request that reached the busy worker would wait for the held one, which is
 * released only after every other request has been answered, so it would fail the test by
 * never completing within its timeout instead.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { waitFor } from "../helpers/process.ts";
import { fixtureApp, pidOf, request, startApp, tempDir } from "./harness.ts";

test("sync: a worker awaiting inside a request accepts nothing; the idle one takes every connection", async (t) => {
  const dir = tempDir(t);
  const app = await startApp(t, [fixtureApp, "-k", "sync", "-w", "2", "-b", "127.0.0.1:0"]);
  assert.equal(app.workers().length, 2);

  const release = join(dir, "release");
  const started = join(dir, "started");
  const held = request(app.port, `/hold?file=${release}&started=${started}`, {
    timeoutMs: 30_000,
  });
  // Wait for the held request to be in the app: its worker then accepts nothing.
  await waitFor(() => existsSync(started), "the held request to start");
  const busy = Number(readFileSync(started, "utf8"));

  const seen: number[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await request(app.port, "/", { timeoutMs: 8000 });
    assert.equal(r.status, 200);
    assert.equal(r.headers.connection, "close", "sync workers close after each response");
    seen.push(pidOf(r.body));
  }
  const parallel = await Promise.all(
    Array.from({ length: 6 }, () => request(app.port, "/", { timeoutMs: 8000 })),
  );
  seen.push(...parallel.map((r) => pidOf(r.body)));
  const others = new Set(seen);
  assert.equal(others.size, 1, `all served by one worker: ${seen.join(",")}`);

  writeFileSync(release, "");
  const heldReply = await held;
  assert.equal(heldReply.status, 200);
  assert.equal(pidOf(heldReply.body), busy);
  assert.ok(!others.has(busy), "the busy worker answered nothing but its own request");
  assert.deepEqual(new Set(app.workers()), new Set([busy, ...others]));

  // Busy computing (event loop blocked for a while): the other worker serves meanwhile.
  const spinning = join(dir, "spinning");
  const spin = request(app.port, `/spin?ms=1500&started=${spinning}`, { timeoutMs: 30_000 });
  await waitFor(() => existsSync(spinning), "the computation to start");
  const during = await Promise.all(
    Array.from({ length: 4 }, () => request(app.port, "/", { timeoutMs: 8000 })),
  );
  const spun = pidOf((await spin).body);
  for (const r of during) assert.notEqual(pidOf(r.body), spun);
  assert.equal(await app.stop(), 0, app.output());
});

test("async: a worker at workerConnections stops accepting; new connections go to the other", async (t) => {
  const app = await startApp(t, [
    fixtureApp,
    "-w",
    "2",
    "--worker-connections",
    "1",
    "-b",
    "127.0.0.1:0",
  ]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  // This connection stays open (keep-alive): its worker is at its limit of one.
  const full = pidOf((await request(app.port, "/", { agent })).body);
  const seen = new Set<number>();
  for (let i = 0; i < 8; i++) {
    const r = await request(app.port, "/", { timeoutMs: 8000 });
    assert.equal(r.status, 200);
    seen.add(pidOf(r.body));
  }
  assert.equal(seen.size, 1);
  assert.ok(!seen.has(full), "the full worker accepted nothing");
  // Once its connection closes, it accepts again.
  agent.destroy();
  await waitFor(async () => {
    const r = await Promise.all([
      request(app.port, "/"),
      request(app.port, "/"),
      request(app.port, "/"),
    ]);
    return r.some((x) => pidOf(x.body) === full);
  }, "the worker to accept again");
  assert.equal(await app.stop(), 0, app.output());
});
