/**
 * The app server's pure parts: access log formats, head limits, the metrics exposition and its
 * monotonic counters across worker exits, the reloader's file filter, and the new value types.
 */
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { test } from "node:test";
import {
  type AccessRecord,
  clfTime,
  compileFormat,
  defaultFormat,
} from "../../src/appserver/accessLog.ts";
import { checkHead, clientErrorStatus, maxHeaderSize } from "../../src/appserver/limits.ts";
import { MetricsAggregator, RequestMetrics } from "../../src/appserver/metrics.ts";
import { isSourceChange } from "../../src/appserver/reloader.ts";
import {
  account,
  envAssignment,
  type Issue,
  invalid,
  mode,
  parseMode,
  trustedPeer,
} from "../../src/config/types.ts";
import type { MasterSnapshot, WorkerInfo } from "../../src/process/master.ts";
import type { WorkerStats } from "../../src/process/worker.ts";

function record(
  over: Partial<AccessRecord> = {},
  headers: Record<string, string> = {},
): AccessRecord {
  const req = {
    method: "GET",
    url: "/search?q=brigade",
    httpVersion: "1.1",
    headers: {
      referer: "http://example.com/",
      "user-agent": "curl/8",
      authorization: `Basic ${Buffer.from("alice:secret").toString("base64")}`,
      ...headers,
    },
  } as unknown as IncomingMessage;
  const res = {
    getHeader: (n: string) => (n === "x-served-by" ? "w1" : undefined),
  } as unknown as ServerResponse;
  return {
    req,
    res,
    status: 200,
    bytes: 1234,
    duration: 0.0123456,
    remote: "203.0.113.5",
    end: new Date(2026, 0, 2, 3, 4, 5),
    ...over,
  };
}

test("access log: gunicorn's default format and every atom", () => {
  const line = compileFormat(defaultFormat)(record());
  assert.equal(
    line,
    `203.0.113.5 - alice ${clfTime(new Date(2026, 0, 2, 3, 4, 5))} "GET /search?q=brigade HTTP/1.1" 200 1234 "http://example.com/" "curl/8"`,
  );
  assert.match(clfTime(new Date(2026, 0, 2, 3, 4, 5)), /^\[02\/Jan\/2026:03:04:05 [+-]\d{4}\]$/);
  const all = compileFormat("%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(T)s|%(M)s|%(D)s|%(L)s|%(p)s|%%");
  assert.equal(
    all(record()),
    `GET|/search|q=brigade|HTTP/1.1|200|1234|0|12|12345|0.012346|<${process.pid}>|%`,
  );
  process.env.BRIGADE_TEST_ATOM = "env-value";
  const braces = compileFormat(
    "%({x-request-id}i)s %({X-Served-By}o)s %({BRIGADE_TEST_ATOM}e)s %({missing}i)s",
  );
  assert.equal(braces(record({}, { "x-request-id": "abc" })), "abc w1 env-value -");
  assert.equal(compileFormat("%(b)s %(B)s")(record({ bytes: 0 })), "- 0");
  assert.throws(() => compileFormat("%(Z)s"), /unknown atom "%\(Z\)s"/);
});

test("access log: the JSON form", () => {
  const obj = JSON.parse(compileFormat("json")(record()));
  assert.deepEqual(
    { ...obj, time: undefined, pid: undefined },
    {
      time: undefined,
      pid: undefined,
      remote: "203.0.113.5",
      user: "alice",
      request: "GET /search?q=brigade HTTP/1.1",
      method: "GET",
      path: "/search",
      query: "q=brigade",
      protocol: "HTTP/1.1",
      status: 200,
      bytes: 1234,
      referer: "http://example.com/",
      userAgent: "curl/8",
      durationMs: 12.346,
    },
  );
});

test("limits: the request line, the field count and size; the whole-head bound", () => {
  const l = { requestLine: 30, requestFields: 2, requestFieldSize: 20, requestBody: 0 };
  const req = (url: string, raw: string[]) =>
    ({ method: "GET", url, rawHeaders: raw }) as unknown as IncomingMessage;
  assert.equal(checkHead(req("/ok", ["Host", "x"]), l), 0);
  assert.equal(checkHead(req(`/${"a".repeat(20)}`, ["Host", "x"]), l), 414);
  assert.equal(checkHead(req("/", ["Host", "x", "A", "1", "B", "2"]), l), 431);
  assert.equal(checkHead(req("/", ["Host", "x".repeat(20)]), l), 431);
  assert.equal(checkHead(req(`/${"a".repeat(9000)}`, []), { ...l, requestLine: 0 }), 0);
  assert.equal(
    maxHeaderSize({
      requestLine: 4094,
      requestFields: 100,
      requestFieldSize: 8190,
      requestBody: 0,
    }),
    4098 + 100 * 8192,
  );
  assert.equal(maxHeaderSize(l), 16 * 1024);
  const code = (c: string) => clientErrorStatus(Object.assign(new Error(c), { code: c }));
  assert.equal(code("HPE_HEADER_OVERFLOW"), 431);
  assert.equal(code("HPE_INVALID_METHOD"), 400);
  assert.equal(code("HPE_CHUNK_EXTENSIONS_OVERFLOW"), 413);
  assert.equal(code("ERR_HTTP_REQUEST_TIMEOUT"), 408);
  assert.equal(code("ECONNRESET"), 0);
});

function worker(id: number, pid: number, stats: Record<string, number>, rss = 50e6): WorkerInfo {
  return {
    pool: "app",
    id,
    generation: 1,
    pid,
    threadId: undefined,
    state: "ready",
    startedAt: 0,
    ageMs: 0,
    readyAt: 0,
    silentMs: 0,
    requests: stats.requests ?? 0,
    rss,
    heapUsed: 10e6,
    stats,
    retiring: undefined,
    ownListeners: [],
  };
}

function snap(workers: WorkerInfo[]): MasterSnapshot {
  return {
    name: "app",
    pid: 1,
    startedAt: 0,
    generation: 1,
    workers: workers.length,
    listeners: [],
    oldbin: false,
    workerList: workers,
    pools: [],
  };
}

test("metrics: sums over workers, counters survive a worker's exit, Prometheus text", () => {
  const agg = new MetricsAggregator();
  const a = worker(1, 101, {
    requests: 3,
    status_2xx: 3,
    le_0: 2,
    le_3: 1,
    duration_sum: 0.03,
    inflight: 1,
    lag_p99: 0.002,
  });
  const b = worker(2, 102, {
    requests: 2,
    status_2xx: 1,
    status_5xx: 1,
    le_11: 2,
    duration_sum: 30,
    inflight: 0,
  });
  const text = agg.render(snap([a, b]));
  const value = (name: string) => {
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
  };
  assert.equal(value('brigade_app_requests_total{status="2xx"}'), 4);
  assert.equal(value('brigade_app_requests_total{status="5xx"}'), 1);
  assert.equal(value('brigade_app_request_duration_seconds_bucket{le="0.005"}'), 2);
  assert.equal(value('brigade_app_request_duration_seconds_bucket{le="0.05"}'), 3);
  assert.equal(value('brigade_app_request_duration_seconds_bucket{le="10"}'), 3);
  assert.equal(value('brigade_app_request_duration_seconds_bucket{le="+Inf"}'), 5);
  assert.equal(value("brigade_app_request_duration_seconds_count"), 5);
  assert.equal(value("brigade_app_request_duration_seconds_sum"), 30.03);
  assert.equal(value("brigade_app_requests_in_flight"), 1);
  assert.equal(value('brigade_app_worker_resident_memory_bytes{worker="1",pid="101"}'), 50e6);
  assert.equal(
    value('brigade_app_worker_event_loop_lag_seconds{worker="1",pid="101",stat="p99"}'),
    0.002,
  );
  assert.match(text, /# TYPE brigade_app_request_duration_seconds histogram\n/);

  // Worker 2 exits and is replaced: its counts stay, its gauges go.
  agg.workerExited(b, { code: 0, signal: null, reason: "max requests", booted: true });
  const c = worker(2, 103, {
    requests: 1,
    status_2xx: 1,
    le_0: 1,
    duration_sum: 0.001,
    inflight: 0,
  });
  const after = agg.render(snap([a, c]));
  const v2 = (name: string) =>
    Number(
      after
        .split("\n")
        .find((l) => l.startsWith(`${name} `))!
        .split(" ")
        .at(-1),
    );
  assert.equal(v2('brigade_app_requests_total{status="2xx"}'), 5);
  assert.equal(v2('brigade_app_requests_total{status="5xx"}'), 1);
  assert.equal(v2("brigade_app_request_duration_seconds_count"), 6);
  assert.equal(v2('brigade_app_worker_exits_total{reason="max requests"}'), 1);
  assert.doesNotMatch(after, /pid="102"/);
});

test("metrics: event-loop lag is sampled while there is work, not while idle", async () => {
  const stats: WorkerStats = { requests: 0 };
  const m = new RequestMetrics(stats, 60);
  const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const block = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  try {
    assert.equal(m.sampling, false, "a new worker with no work is not sampled");
    m.requestStarted();
    assert.equal(m.sampling, true);
    await tick(30);
    block(120);
    // Each sample reports its own period: watch a few of them.
    let seen = 0;
    for (let i = 0; i < 10; i++) {
      await tick(20);
      seen = Math.max(seen, stats.lag_max!);
    }
    assert.ok(seen > 0.05, `a 120 ms block while busy is seen (max ${seen})`);
    // Still in flight: sampling goes on over samples with nothing new started.
    await tick(150);
    assert.equal(m.sampling, true, "a request in flight keeps sampling on");
    m.requestEnded(200, 0.3);
    await tick(200);
    assert.equal(m.sampling, false, "off after a sample period with no work");
    assert.equal(stats.lag_max, 0);
    assert.equal(stats.lag_p99, 0);
    m.connectionOpened();
    assert.equal(m.sampling, true, "a new connection turns it back on");
  } finally {
    m.stop();
  }
  assert.equal(m.sampling, false);
});

test("reloader: which changed paths reload", () => {
  assert.equal(isSourceChange("app.ts"), true);
  assert.equal(isSourceChange("routes/users.mjs"), true);
  assert.equal(isSourceChange("config.json"), true);
  assert.equal(isSourceChange("node_modules/x/index.js"), false);
  assert.equal(isSourceChange(".git/HEAD"), false);
  assert.equal(isSourceChange("notes.md"), false);
});

test("value types: mode, account, env assignment, trusted peer", () => {
  const ok = <T>(
    type: { check(v: unknown, p: [], i: Issue[]): T | typeof invalid },
    v: unknown,
  ) => {
    const issues: Issue[] = [];
    const out = type.check(v, [], issues);
    return out === invalid ? issues[0]!.message : out;
  };
  assert.equal(parseMode("022"), 0o22);
  assert.equal(parseMode("0o027"), 0o27);
  assert.equal(parseMode(18), 18);
  assert.equal(parseMode("0999"), undefined);
  assert.match(String(ok(mode(), "rwx")), /file mode bits in octal/);
  assert.equal(ok(account(), "www-data"), "www-data");
  assert.equal(ok(account(), 33), 33);
  assert.match(String(ok(account(), "bad name")), /user\/group name or a numeric id/);
  assert.equal(ok(envAssignment(), "A_B=x=y"), "A_B=x=y");
  assert.match(String(ok(envAssignment(), "=x")), /NAME=value/);
  for (const good of ["unix", "*", "10.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]) {
    assert.equal(ok(trustedPeer(), good), good);
  }
  for (const bad of ["10.0.0.0/33", "localhost", "::1/129"]) {
    assert.match(String(ok(trustedPeer(), bad)), /an IP address, a CIDR/);
  }
});
