import assert from "node:assert/strict";
import { test } from "node:test";
import { median, type Run, summarise } from "../../bench/lib/report.ts";
import { parseWrk, type WrkResult } from "../../bench/lib/wrk.ts";
import hello from "../../bench/suites/hello.ts";

// wrk 4.1.0's report, as captured against nginx (second half: a location returning 500).
const report = `Running 1s test @ http://127.0.0.1:33847/bad
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   137.29us  105.00us   2.30ms   85.84%
    Req/Sec    26.32k     3.44k   31.32k    54.55%
  Latency Distribution
     50%  113.00us
     75%  179.00us
     90%  249.00us
     99%    1.47ms
  28765 requests in 1.10s, 9.30MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 28765
Requests/sec:  26145.86
Transfer/sec:      8.45MB
`;

test("parseWrk reads throughput, percentiles in ms, and errors", () => {
  const r = parseWrk(report);
  assert.equal(r.requestsPerSec, 26145.86);
  assert.equal(r.requests, 28765);
  assert.ok(Math.abs(r.p50Ms - 0.113) < 1e-9);
  assert.equal(r.p99Ms, 1.47);
  assert.equal(r.non2xx, 28765);
  assert.equal(r.errors, 28765 + 3);
});

test("parseWrk refuses a report without latency percentiles", () => {
  assert.throws(() => parseWrk(report.replace(/^\s+99%.*$/m, "")), /99% latency/);
});

function run(name: string, rps: number, p99: number, round: number): Run {
  const result: WrkResult = {
    requestsPerSec: rps,
    requests: rps,
    p50Ms: p99 / 2,
    p75Ms: p99,
    p90Ms: p99,
    p99Ms: p99,
    errors: 0,
    non2xx: 0,
  };
  return { case: name, connections: 64, round, result };
}

test("summarise takes medians per case and ratios to the baseline", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  const runs = [
    run("base", 100, 2, 0),
    run("other", 50, 8, 0),
    run("base", 300, 1, 1),
    run("other", 10, 4, 1),
    run("base", 200, 3, 2),
    { case: "other", connections: 64, round: 2, error: "wrk failed" },
  ];
  const [base, other] = summarise(runs, "base");
  assert.equal(base?.rps, 200);
  assert.equal(base?.rpsRatio, 1);
  assert.equal(other?.rps, 30);
  assert.equal(other?.failedRuns, 1);
  assert.equal(other?.rpsRatio, 30 / 200);
  assert.equal(other?.p99Ratio, 6 / 2);
  assert.equal(other?.minRps, 10);
});

test("the hello suite names a baseline among unique cases", () => {
  const names = hello.cases.map((c) => c.name);
  assert.equal(new Set(names).size, names.length);
  assert.ok(names.includes(hello.baseline));
});
