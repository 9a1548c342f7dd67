/**
 * `brigade up` end to end, on real sockets: static files at the front and the rest from the app;
 * metrics that match the requests sent; `brigade status` and `brigade scale`; a rolling deploy
 * under a bounded load with no failed request and one version per response; the automatic
 * rollback of a version that cannot boot and of one that answers 500s; TERM draining.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { waitFor } from "../helpers/process.ts";
import { appSource, get, startStack } from "./harness.ts";

/** The value of one Prometheus sample, by its exact name and labels. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

test("static files at the front, the rest from the app; metrics match; status and scale", async (t) => {
  const s = await startStack(t, {
    args: ["--app-workers", "2", "--web-workers", "1", "--cache", "-c", "brigade.config.json"],
    files: { "brigade.config.json": "{}" },
  });
  const base = `http://127.0.0.1:${s.port}`;
  const css = await get(`${base}/style.css`);
  assert.equal(css.status, 200);
  assert.equal(css.body, "body { color: #123; }\n");
  assert.match(css.headers.get("content-type") ?? "", /^text\/css/);
  assert.equal(css.headers.get("x-version"), null, "a static file never reaches the app");
  const root = await get(`${base}/`);
  assert.equal(root.status, 200);
  assert.equal(root.body, "version 1 /\n");
  const echo = await get(`${base}/echo`, { method: "POST", body: "x".repeat(5000) });
  assert.equal(echo.body, "echo 1 5000\n");

  // 2 + 10 static, 1 + 1 + 20 app, 2 cached: 36 web requests, 23 of them reached the app.
  for (let i = 0; i < 10; i++) assert.equal((await get(`${base}/style.css`)).status, 200);
  for (let i = 0; i < 20; i++) assert.equal((await get(`${base}/api/${i}`)).status, 200);
  assert.equal((await get(`${base}/style.css`)).status, 200);
  // With --cache, a response the app marks cacheable is answered by the front the second time.
  const first = await get(`${base}/cached`);
  const second = await get(`${base}/cached`);
  assert.equal(first.body, "cached 1\n");
  assert.equal(second.body, "cached 1\n");
  assert.match(second.headers.get("cache-status") ?? "", /^brigade; hit/);
  const metrics = await waitFor(async () => {
    const m = (await get(`http://127.0.0.1:${s.admin}/metrics`)).body;
    return /brigade_upstream_peer_state\{web_pid="\d+",peer="unix:[^"]+",state="up"\} 1/.test(m) &&
      sample(m, 'brigade_requests_total{tier="web",status="2xx"}') === 36 &&
      sample(m, 'brigade_requests_total{tier="app",status="2xx"}') === 23
      ? m
      : undefined;
  }, "the metrics to count 36 web and 23 app requests");
  assert.equal(sample(metrics, 'brigade_requests_total{tier="web",status="5xx"}'), 0);
  assert.equal(sample(metrics, 'brigade_request_duration_seconds_count{tier="app"}'), 23);
  assert.equal(sample(metrics, 'brigade_request_duration_seconds_count{tier="web"}'), 36);
  assert.equal(sample(metrics, 'brigade_cache_requests_total{result="HIT"}'), 1);
  assert.ok((sample(metrics, 'brigade_cache_requests_total{result="MISS"}') ?? 0) >= 1);
  assert.equal(sample(metrics, 'brigade_workers{tier="app",state="ready"}'), 2);
  assert.equal(sample(metrics, 'brigade_workers{tier="web",state="ready"}'), 1);
  assert.ok((sample(metrics, "brigade_sent_bytes_total") ?? 0) > 36 * 20);
  assert.match(
    metrics,
    /brigade_worker_resident_memory_bytes\{tier="app",worker="1",pid="\d+"\} \d+/,
  );
  assert.match(
    metrics,
    /brigade_worker_event_loop_lag_seconds\{tier="web",worker="1",pid="\d+",stat="p99"\}/,
  );
  assert.match(
    metrics,
    /brigade_upstream_peer_state\{web_pid="\d+",peer="unix:[^"]+app-\d+-\d-\d+\.sock",state="up"\} 1/,
  );

  assert.equal((await get(`http://127.0.0.1:${s.admin}/livez`)).status, 200);
  assert.equal((await get(`http://127.0.0.1:${s.admin}/readyz`)).body, "ready\n");

  const status = await s.cli(["status"]);
  assert.equal(status.code, 0, status.stdout);
  assert.match(status.stdout, /^brigade up: ready, master pid \d+/);
  assert.match(status.stdout, /app: 2 async workers, generation 1/);
  assert.match(status.stdout, /unix:.*app-\d+-1-\d+\.sock \(pid \d+\): web \d+: up/);
  assert.match(status.stdout, /cache: \d+% hits \(.*HIT 1/);

  const scaled = await s.cli(["scale", "app", "+1"]);
  assert.equal(scaled.code, 0, scaled.stdout);
  assert.match(scaled.stdout, /app workers: 3/);
  await waitFor(
    async () => {
      const j = await s.cli(["status", "--json"]);
      const st = JSON.parse(j.stdout) as {
        peers: { views: unknown[] }[];
        tiers: { app: { workers: { state: string }[] } };
      };
      return (
        st.tiers.app.workers.filter((w) => w.state === "ready").length === 3 &&
        st.peers.length === 3
      );
    },
    "a third app worker, ready and known to the web tier",
    30_000,
  );
  const bad = await s.cli(["scale", "db", "+1"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stdout, /usage: brigade scale app\|web/);

  // A config that only the stack can fault (a location naming no group): the reload is refused,
  // the command says why, the same workers go on.
  writeFileSync(
    join(s.dir, "brigade.config.json"),
    JSON.stringify({ web: { servers: [{ locations: [{ match: "/", proxy: "nosuch" }] }] } }),
  );
  const refused = await s.cli(["reload", "-c", "brigade.config.json"]);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(refused.stdout, /brigade reload: refused: the new config is bad: .*nosuch/);
  assert.equal((await get(`${base}/after`)).body, "version 1 /after\n");
});

/** `loops` request loops (keep-alive) until `stop()`, bounded in count and time. */
function load(base: string, loops = 4, max = 30_000, maxMs = 90_000) {
  const results: { status: number; version: string | null; body: string; error?: string }[] = [];
  let stopped = false;
  const end = Date.now() + maxMs;
  const loop = async (n: number) => {
    let i = 0;
    while (!stopped && results.length < max && Date.now() < end) {
      const post = i++ % 3 === 0;
      const r = post
        ? await get(`${base}/echo`, { method: "POST", body: `payload ${n} ${i}` })
        : await get(`${base}/item/${n}/${i}`);
      results.push({
        status: r.status,
        version: r.headers.get("x-version"),
        body: r.body,
        ...(r.error ? { error: r.error } : {}),
      });
    }
  };
  const done = Promise.all(Array.from({ length: loops }, (_, n) => loop(n)));
  return {
    results,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

test("deploys: rolling under load with no failure and one version per response; broken versions rolled back", async (t) => {
  const s = await startStack(t, {
    args: [
      "--app-workers",
      "2",
      "--web-workers",
      "1",
      // Long enough for a few heartbeats (the canary is judged on the counters they bring each
      // second) on a busy machine; a failing canary is rolled back as soon as it is judged.
      "--canary",
      "4s",
      "--canary-min-requests",
      "5",
    ],
  });
  const base = `http://127.0.0.1:${s.port}`;

  // A new version, rolled out under a bounded load of GETs and POSTs.
  const l = load(base);
  await waitFor(() => l.results.length > 50, "the load to start");
  writeFileSync(s.appFile, appSource("2"));
  const r = await s.cli(["reload"]);
  assert.equal(r.code, 0, r.stdout + s.output());
  assert.match(r.stdout, /brigade reload: complete, app generation 2/);
  const after = l.results.length;
  await waitFor(() => l.results.length > after + 50, "more requests after the reload");
  await l.stop();
  const failed = l.results.filter((x) => x.status !== 200);
  assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${l.results.length} failed`);
  for (const x of l.results) {
    // Each response is whole and from exactly one version: header and body agree.
    assert.ok(x.version === "1" || x.version === "2", JSON.stringify(x));
    assert.match(x.body, new RegExp(`^(version|echo) ${x.version} `));
  }
  assert.ok(l.results.some((x) => x.version === "1") && l.results.some((x) => x.version === "2"));
  assert.equal(l.results.at(-1)!.version, "2");
  const seq = s.lines.join("\n");
  assert.match(seq, /canary passed; rolling on pool=app/);

  // A version that cannot even load: rolled back, the reason given, v2 still serving.
  writeFileSync(s.appFile, appSource("3", "syntax"));
  const broken = await s.cli(["reload"]);
  assert.equal(broken.code, 1, broken.stdout);
  assert.match(broken.stdout, /rolled back: a new worker did not boot/);
  assert.equal((await get(`${base}/x`)).body, "version 2 /x\n");

  // A version that answers 500s: the canary is far worse than the old workers; rolled back.
  writeFileSync(s.appFile, appSource("4", "500"));
  const l2 = load(base, 3);
  const bad = await s.cli(["reload"]);
  await l2.stop();
  assert.equal(bad.code, 1, bad.stdout + s.output());
  assert.match(
    bad.stdout,
    /rolled back: the canary failed: 100% of its \d+ answers were 5xx, against 0% of the old workers'/,
  );
  assert.match(s.output(), /deploy rolled back .*the canary failed/);
  // Only the canary ever answered 500, and only during its trial; v2 serves everything now.
  assert.ok(
    l2.results.every((x) => x.status === 200 || x.version === "4"),
    "no other failure",
  );
  for (let i = 0; i < 10; i++) assert.equal((await get(`${base}/y`)).body, "version 2 /y\n");
  const st = JSON.parse((await s.cli(["status", "--json"])).stdout) as {
    tiers: { app: { generation: number; workers: { generation: number }[] } };
    lastReload: { ok: boolean; reason: string };
  };
  assert.equal(st.lastReload.ok, false);
  assert.ok(
    st.tiers.app.workers.every((w) => w.generation === 2),
    JSON.stringify(st.tiers.app),
  );
  const m = (await get(`http://127.0.0.1:${s.admin}/metrics`)).body;
  assert.equal(sample(m, 'brigade_reloads_total{outcome="complete"}'), 1);
  assert.equal(sample(m, 'brigade_reloads_total{outcome="rolled back"}'), 2);
});

test("TERM: readiness 503 first, in-flight requests finish, exit 0", async (t) => {
  const s = await startStack(t, {
    args: ["--stop-delay", "1s", "--app-workers", "1", "--web-workers", "1"],
  });
  const base = `http://127.0.0.1:${s.port}`;
  assert.equal((await get(`http://127.0.0.1:${s.admin}/readyz`)).status, 200);
  const slow = get(`${base}/slow?ms=2500`);
  await waitFor(async () => {
    const m = (await get(`http://127.0.0.1:${s.admin}/metrics`)).body;
    return sample(m, 'brigade_requests_in_flight{tier="app"}') === 1;
  }, "the slow request to reach the app");
  process.kill(s.masterPid, "SIGTERM");
  const ready = await waitFor(async () => {
    const r = await get(`http://127.0.0.1:${s.admin}/readyz`);
    return r.status === 503 ? r : undefined;
  }, "readiness to turn 503");
  assert.equal(ready.body, "not ready: stopping\n");
  const done = await slow;
  assert.equal(done.status, 200, done.error);
  assert.equal(done.body, "slow 1\n");
  const { code } = await s.exited;
  assert.equal(code, 0, s.output());
  const out = s.output();
  assert.ok(out.indexOf("readiness is 503") < out.indexOf("worker exited pool=web"), out);
  assert.ok(out.indexOf("worker exited pool=web") < out.indexOf("worker exited pool=app"), out);
});

test("sync app workers: one request at a time each, the rest queued at the front", async (t) => {
  const s = await startStack(t, {
    args: ["--app-workers", "1", "--web-workers", "1", "--worker-class", "sync"],
  });
  const base = `http://127.0.0.1:${s.port}`;
  const metrics = `http://127.0.0.1:${s.admin}/metrics`;
  const slow = [1, 2, 3].map(() => get(`${base}/slow?ms=1500`));
  let sawQueue = false;
  let maxAppConnections = 0;
  const settled = Promise.all(slow);
  let done = false;
  void settled.then(() => {
    done = true;
  });
  while (!done) {
    const m = (await get(metrics)).body;
    maxAppConnections = Math.max(
      maxAppConnections,
      sample(m, 'brigade_connections{tier="app"}') ?? 0,
    );
    if ((sample(m, 'brigade_requests_in_flight{tier="web"}') ?? 0) === 3) sawQueue = true;
    await new Promise((r) => setTimeout(r, 50));
  }
  const answers = await settled;
  assert.deepEqual(
    answers.map((a) => a.body),
    ["slow 1\n", "slow 1\n", "slow 1\n"],
  );
  // Three requests in the web tier at once, never more than one connection to the sync worker.
  assert.ok(sawQueue, "the three requests were in the web tier together");
  assert.equal(maxAppConnections, 1);

  // brigade stop: a graceful stop through the control socket, waiting until the master is gone.
  const stop = await s.cli(["stop"]);
  assert.equal(stop.code, 0, stop.stdout);
  assert.match(stop.stdout, new RegExp(`brigade stop: stopped \\(master pid ${s.masterPid}\\)`));
  assert.equal((await s.exited).code, 0);
});

test("sync app workers behind two web workers: one request at a time each, never one waiting at a busy worker while another is idle; a killed web worker's leases are freed", async (t) => {
  // The app records how many of its requests are in progress when one starts: a sync app worker
  // handed a second request while one is in the app would answer `active=2`. `/pair` waits
  // until both app workers have one (a marker file each in `meet`), up to 10 s, and says
  // whether they met: two requests sent together meet unless one waited at a busy app worker
  // while the other app worker was idle. `/hold` waits for the file `go`.
  const app = `
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
const meet = process.cwd() + "/meet";
mkdirSync(meet, { recursive: true });
let active = 0;
export default {
  async fetch(request) {
    active++;
    const seen = active;
    const url = new URL(request.url);
    const mine = meet + "/" + process.pid;
    try {
      if (url.pathname === "/pair") {
        writeFileSync(mine, "");
        // 10 s: on a loaded machine a request may take seconds to reach the front at all.
        const until = Date.now() + 10000;
        let met = false;
        while (!met && Date.now() < until) {
          met = readdirSync(meet).length >= 2;
          if (!met) await new Promise((r) => setTimeout(r, 10));
        }
        // Stay a moment so the other sees this one too.
        await new Promise((r) => setTimeout(r, 50));
        return new Response("pid=" + process.pid + " met=" + met + " active=" + seen + "\\n");
      }
      if (url.pathname === "/hold") {
        const until = Date.now() + 15000;
        while (!existsSync(process.cwd() + "/go") && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 20));
        }
        return new Response("held\\n");
      }
      const ms = Number(url.searchParams.get("ms") ?? 150);
      await new Promise((r) => setTimeout(r, ms));
      return new Response("pid=" + process.pid + " active=" + seen + "\\n");
    } finally {
      rmSync(mine, { force: true });
      active--;
    }
  },
};
`;
  const s = await startStack(t, {
    app,
    args: ["--app-workers", "2", "--web-workers", "2", "--worker-class", "sync"],
  });
  const base = `http://127.0.0.1:${s.port}`;
  const fresh = { headers: { connection: "close" } };
  // 8 clients at once, 3 requests each, each on a fresh connection (so both web workers take some).
  const answers: { status: number; body: string; error?: string }[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 3; i++) answers.push(await get(`${base}/slow?ms=150`, fresh));
    }),
  );
  assert.equal(answers.length, 24);
  for (const a of answers) assert.equal(a.status, 200, a.error ?? a.body);
  const pids = new Set(answers.map((a) => /pid=(\d+)/.exec(a.body)?.[1]));
  assert.equal(pids.size, 2, "both app workers served");
  for (const a of answers) assert.match(a.body, /active=1\n$/);
  const st = JSON.parse((await s.cli(["status", "--json"])).stdout) as {
    tiers: { web: { workers: { pid: number; requests: number }[] } };
  };
  assert.equal(st.tiers.web.workers.length, 2);
  assert.ok(
    st.tiers.web.workers.every((w) => w.requests > 0),
    `both web workers proxied: ${JSON.stringify(st.tiers.web.workers)}`,
  );

  // Pairs sent together, each on a fresh connection (to either web worker): the second of a
  // pair must go to the idle app worker, whichever web worker has it.
  const pair = async (): Promise<string[]> => {
    const two = await Promise.all([get(`${base}/pair`, fresh), get(`${base}/pair`, fresh)]);
    for (const a of two) assert.equal(a.status, 200, a.error ?? a.body);
    return two.map((a) => a.body);
  };
  for (let round = 0; round < 8; round++) {
    const bodies = await pair();
    for (const b of bodies) assert.match(b, /met=true active=1\n$/, `round ${round}: ${bodies}`);
  }

  // Both app workers held by requests, then both web workers killed (SIGKILL): their leases go
  // with them, so once the app workers are done the new web workers can use both at once.
  const held = [get(`${base}/hold`, fresh), get(`${base}/hold`, fresh)];
  await waitFor(async () => {
    const j = JSON.parse((await s.cli(["status", "--json"])).stdout) as {
      tiers: { app: { workers: { inflight?: number }[] } };
    };
    return j.tiers.app.workers.every((w) => (w.inflight ?? 0) > 0) || undefined;
  }, "both app workers holding a request");
  // A third request waits at the front; status and metrics show the leases and the queue.
  const queued = get(`${base}/slow?ms=1`, fresh);
  await waitFor(async () => {
    const m = (await get(`http://127.0.0.1:${s.admin}/metrics`)).body;
    return (
      (sample(m, "brigade_app_leases_held") === 2 &&
        sample(m, "brigade_app_leases_waiting") === 1) ||
      undefined
    );
  }, "metrics: 2 leases held, 1 request waiting");
  const text = await s.cli(["status"]);
  assert.match(text.stdout, /sync leases: 2 app workers busy, 1 request waiting at the front/);
  for (const w of st.tiers.web.workers) process.kill(w.pid, "SIGKILL");
  for (const h of await Promise.all([...held, queued]))
    assert.equal(h.status, 0, "the client's connection died");
  writeFileSync(join(s.dir, "go"), "");
  const after = await waitFor(
    async () => {
      const r = await get(`${base}/slow?ms=1`, fresh);
      return r.status === 200 ? r : undefined;
    },
    "an answer from the new web workers",
    20_000,
  );
  assert.match(after.body, /active=1/);
  const bodies = await pair();
  for (const b of bodies) assert.match(b, /met=true active=1\n$/, `after the kill: ${bodies}`);

  const stop = await s.cli(["stop"]);
  assert.equal(stop.code, 0, stop.stdout);
});
