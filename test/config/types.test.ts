/** The value parsers: durations, sizes, listen addresses, and did-you-mean. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  didYouMean,
  duration,
  type Issue,
  integer,
  invalid,
  parseDuration,
  parseListen,
  parseSize,
  workers,
} from "../../src/config/types.ts";

test("durations: seconds, or units ms/s/m/h/d, combinable", () => {
  const cases: [unknown, number | undefined][] = [
    [30, 30],
    [0, 0],
    [1.5, 1.5],
    ["30", 30],
    ["500ms", 0.5],
    ["30s", 30],
    ["5m", 300],
    ["1h", 3600],
    ["1m30s", 90],
    ["1d", 86400],
    ["100ms", 0.1],
    ["soon", undefined],
    ["", undefined],
    ["5 m", undefined],
    ["-1", undefined],
    [-1, undefined],
    [Number.NaN, undefined],
    ["30x", undefined],
    ["s", undefined],
    [true, undefined],
  ];
  for (const [input, expected] of cases)
    assert.equal(parseDuration(input), expected, String(input));
});

test("sizes: bytes, or nginx-style k/m/g (binary)", () => {
  const cases: [unknown, number | undefined][] = [
    [0, 0],
    [1024, 1024],
    ["512", 512],
    ["64k", 65536],
    ["64K", 65536],
    ["1m", 1048576],
    ["1g", 1073741824],
    ["8kb", 8192],
    ["1.5k", 1536],
    ["64q", undefined],
    ["k", undefined],
    [-1, undefined],
    [1.5, undefined],
    ["", undefined],
  ];
  for (const [input, expected] of cases) assert.equal(parseSize(input), expected, String(input));
});

test("listen addresses", () => {
  assert.deepEqual(parseListen("127.0.0.1:8000"), { kind: "tcp", host: "127.0.0.1", port: 8000 });
  assert.deepEqual(parseListen("localhost:0"), { kind: "tcp", host: "localhost", port: 0 });
  assert.deepEqual(parseListen(":8080"), { kind: "tcp", host: undefined, port: 8080 });
  assert.deepEqual(parseListen("*:8080"), { kind: "tcp", host: undefined, port: 8080 });
  assert.deepEqual(parseListen("8080"), { kind: "tcp", host: undefined, port: 8080 });
  assert.deepEqual(parseListen("[::1]:9000"), { kind: "tcp", host: "::1", port: 9000 });
  assert.deepEqual(parseListen("[fe80::1%eth0]:80"), {
    kind: "tcp",
    host: "fe80::1%eth0",
    port: 80,
  });
  assert.deepEqual(parseListen("unix:/run/app.sock"), { kind: "unix", path: "/run/app.sock" });
  for (const bad of [
    "",
    "unix:",
    "host:",
    "host:65536",
    "host:http",
    "::1:80",
    "[::1]",
    "[::1]80",
    "[nothex]:80",
    "bad host:80",
    "-host:80",
    "99999",
  ]) {
    assert.equal(parseListen(bad), undefined, bad);
  }
});

test("workers: integer ≥ 1 or auto (one per core)", () => {
  const t = workers();
  const issues: Issue[] = [];
  assert.equal(t.check(4, ["app", "workers"], issues), 4);
  assert.ok((t.check("auto", ["app", "workers"], issues) as number) >= 1);
  assert.equal(t.check(0, ["app", "workers"], issues), invalid);
  assert.equal(t.check("many", ["app", "workers"], issues), invalid);
  assert.deepEqual(
    issues.map((i) => i.message),
    [
      'expected an integer ≥ 1 or "auto", found 0',
      'expected an integer ≥ 1 or "auto", found "many"',
    ],
  );
  assert.equal(t.fromString("3"), 3);
});

test("error messages say what was expected and what was found", () => {
  const issues: Issue[] = [];
  duration().check("soon", ["app", "timeout"], issues);
  integer({ min: 1, max: 10 }).check(11, ["x"], issues);
  assert.deepEqual(issues, [
    {
      path: ["app", "timeout"],
      message: 'expected a duration (seconds, or "500ms", "30s", "5m", "1h"), found "soon"',
    },
    { path: ["x"], message: "expected an integer from 1 to 10, found 11" },
  ]);
});

test("did-you-mean picks the nearest key, only when close", () => {
  const keys = ["app", "bind", "workers", "timeout", "gracefulTimeout", "pidfile"];
  assert.equal(didYouMean("wrokers", keys), "workers");
  assert.equal(didYouMean("Workers", keys), "workers");
  assert.equal(didYouMean("graceful_timeout", keys), "gracefulTimeout");
  assert.equal(didYouMean("zzzzzz", keys), undefined);
});
