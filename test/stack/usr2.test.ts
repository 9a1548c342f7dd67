/**
 * USR2 under `brigade up`, as under `brigade app` (docs/process.md): a new master starts on the
 * inherited web and admin listeners and takes the control socket over once ready; WINCH drains
 * the old master's workers, TERM ends it; no request fails throughout. A new master that cannot
 * start leaves the old one serving, with its admin listener and control socket.
 */
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { request } from "../appserver/harness.ts";
import { alive, boundedLoad, waitFor } from "../helpers/process.ts";
import { appSource, type Stack, startStack } from "./harness.ts";

/** Sequential one-shot requests in two loops, bounded in count and time, until stopped. */
function load(port: number, maxRequests = 3000, maxMs = 60_000) {
  return boundedLoad(() => request(port, "/x"), { loops: [1, 2], maxRequests, maxMs });
}

/** The new master's pid, once it printed its readiness summary. */
async function successor(s: Stack, from: number): Promise<number> {
  const m = await s.waitForLine(/^brigade up: ready \(master pid (\d+)\)/, {
    from,
    timeoutMs: 60_000,
  });
  return Number(m.match[1]);
}

/** Kill a master that outlives the test, and every worker it logged. */
function cleanup(t: TestContext, s: Stack, pid: () => number | undefined): void {
  t.after(() => {
    const master = pid();
    if (master === undefined) return;
    for (const line of s.lines) {
      const m = new RegExp(`\\[${master}\\] .* worker spawned .*pid=(\\d+)`).exec(line);
      if (m) {
        try {
          process.kill(Number(m[1]), "SIGKILL");
        } catch {
          // gone
        }
      }
    }
    try {
      process.kill(master, "SIGKILL");
    } catch {
      // gone
    }
  });
}

const statusPid = async (s: Stack): Promise<number> => {
  const r = await s.cli(["status", "--json"]);
  assert.equal(r.code, 0, r.stdout);
  return (JSON.parse(r.stdout) as { pid: number }).pid;
};

test("USR2: a new master on the same sockets, WINCH and TERM retire the old one, no request fails", async (t) => {
  const s = await startStack(t, { args: ["--app-workers", "1", "--web-workers", "1"] });
  let next: number | undefined;
  cleanup(t, s, () => next);
  const traffic = load(s.port);
  await waitFor(() => traffic.bodies.length >= 20, "requests before USR2");

  const mark = s.lines.length;
  process.kill(s.masterPid, "SIGUSR2");
  next = await successor(s, mark);
  assert.notEqual(next, s.masterPid);
  await s.waitForLine(/the new master is ready; it answers on the admin listener/, { from: mark });
  // The control socket and the admin listener are the new master's now.
  assert.equal(await statusPid(s), next);
  const ready = await request(s.admin, "/readyz");
  assert.equal(ready.status, 200, ready.body);

  // WINCH: the old master's workers drain, the new ones serve everything.
  const winch = s.lines.length;
  process.kill(s.masterPid, "SIGWINCH");
  await s.waitForLine(new RegExp(`\\[${s.masterPid}\\] .*worker exited pool=app`), {
    from: winch,
  });
  const seen = traffic.bodies.length;
  await waitFor(() => traffic.bodies.length >= seen + 20, "requests after WINCH");
  // TERM: the old master exits 0 and leaves the new one's sockets alone.
  process.kill(s.masterPid, "SIGTERM");
  assert.equal((await s.exited).code, 0);
  const after = traffic.bodies.length;
  await waitFor(() => traffic.bodies.length >= after + 20, "requests after the old master left");
  await traffic.stop();
  assert.deepEqual(
    traffic.errors,
    [],
    s.lines.filter((l) => /WARN|ERROR|WINCH|exited|stopping/.test(l)).join("\n"),
  );
  assert.ok(traffic.bodies.every((b) => b === "version 1 /x\n"));
  assert.equal(await statusPid(s), next);
  assert.equal((await request(s.admin, "/readyz")).status, 200);

  const stop = await s.cli(["stop"]);
  assert.equal(stop.code, 0, stop.stdout);
  await waitFor(() => !alive(next!), "the new master to exit");
  assert.ok(!existsSync(join(s.runtimeDir, "control.sock")), "the control socket is removed");
});

test("USR2 with a new master that cannot start: the old one goes on, admin and control included", async (t) => {
  const s = await startStack(t, { args: ["--app-workers", "1", "--web-workers", "1"] });
  let next: number | undefined;
  cleanup(t, s, () => next);
  writeFileSync(s.appFile, appSource("2", "syntax"));
  const mark = s.lines.length;
  process.kill(s.masterPid, "SIGUSR2");
  const started = await s.waitForLine(/started a new master \(USR2\) pid=(\d+)/, { from: mark });
  next = Number(started.match[1]);
  await s.waitForLine(/the new master exited; this master goes on code=4/, { from: mark });
  await s.waitForLine(/admin listener and control socket are this master's again/, {
    from: mark,
  });
  assert.equal((await request(s.port, "/y")).body, "version 1 /y\n");
  assert.equal((await request(s.admin, "/readyz")).status, 200);
  assert.equal(await statusPid(s), s.masterPid);
  process.kill(s.masterPid, "SIGTERM");
  assert.equal((await s.exited).code, 0);
});
