/**
 * Sync workers (`-k sync`): a busy worker is never handed another connection while another
 * worker is idle, whether it is busy awaiting (its event loop free, where a plain Node server
 * would accept more) or busy computing; and it closes the connection after each response.
 *
 * No timing: a request that reached the busy worker would wait for the held one, which is
 * released only after every other request has been answered, so it would fail the test by
 * never completing within its timeout instead.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
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
