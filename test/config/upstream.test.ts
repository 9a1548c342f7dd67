/**
 * The upstream group shape (src/config/settings/upstream.ts) through `check`: defaults, the
 * shorthands (an address for a peer, a name for a policy), and bad values with their key paths.
 * Also the `record` and `peerAddress` value types it is built from.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { upstreamGroup, upstreams } from "../../src/config/settings/upstream.ts";
import {
  formatPath,
  type Issue,
  integer,
  invalid,
  parsePeerAddress,
  record,
} from "../../src/config/types.ts";

function problems(value: unknown, type = upstreams): string[] {
  const issues: Issue[] = [];
  assert.equal(type.check(value, ["web", "upstreams"], issues), invalid);
  return issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
}

test("a minimal group gets nginx-like defaults", () => {
  const issues: Issue[] = [];
  const out = upstreams.check({ app: { peers: "127.0.0.1:8000" } }, ["web", "upstreams"], issues);
  assert.deepEqual(issues, []);
  // Optional fields left out are present as undefined; compare what JSON keeps.
  assert.deepEqual(JSON.parse(JSON.stringify(out)), {
    app: {
      peers: [
        {
          address: "127.0.0.1:8000",
          weight: 1,
          maxConns: 0,
          backup: false,
          down: false,
          slowStart: 0,
        },
      ],
      policy: {
        type: "roundRobin",
        consistent: false,
        cookie: "srv_id",
        cookiePath: "/",
        cookieSecure: false,
      },
      maxFails: 1,
      failTimeout: 10,
      retry: { on: ["error", "timeout"], tries: 0, timeout: 0, nonIdempotent: false },
      keepalive: { idle: 32, timeout: 60, requests: 1000 },
      timeouts: { connect: 5, send: 60, read: 60 },
      queue: { size: 0, timeout: 60 },
      resolveInterval: 30,
    },
  });
});

test("a full group normalises durations, peer objects and policy options", () => {
  const issues: Issue[] = [];
  const out = upstreamGroup.check(
    {
      peers: [
        "app.internal:8000",
        {
          address: "unix:/run/app.sock",
          weight: 3,
          maxConns: 1,
          slowStart: "30s",
          maxFails: 3,
          failTimeout: "1m",
        },
        { address: "[::1]:9000", backup: true },
      ],
      policy: { type: "leastConnections" },
      healthCheck: {
        path: "/healthz",
        interval: "2s",
        expectStatus: [200, 204],
        expectBody: "ok",
        passes: 2,
      },
      retry: {
        on: ["error", "timeout", "http502", "http503"],
        tries: 3,
        timeout: "10s",
        nonIdempotent: true,
      },
      keepalive: { idle: 64, timeout: "2s" },
      timeouts: { connect: "500ms", read: "5m" },
      queue: { size: 100, timeout: "30s" },
      resolveInterval: "5s",
    },
    ["up"],
    issues,
  );
  assert.deepEqual(issues, []);
  assert.ok(out !== invalid);
  assert.equal(out.peers[1]!.slowStart, 30);
  assert.equal(out.peers[1]!.failTimeout, 60);
  assert.equal(out.peers[2]!.backup, true);
  assert.equal(out.healthCheck?.interval, 2);
  assert.equal(out.healthCheck?.timeout, 2);
  assert.equal(out.healthCheck?.fails, 1);
  assert.equal(out.retry.timeout, 10);
  assert.equal(out.timeouts.connect, 0.5);
  assert.equal(out.timeouts.send, 60);
  assert.equal(out.queue.size, 100);
  // Normalised output is valid input again (what createUpstreamGroup relies on).
  const again: Issue[] = [];
  assert.deepEqual(upstreamGroup.check(out, ["up"], again), out);
  assert.deepEqual(again, []);
});

test("bad values are reported with their key paths, all at once", () => {
  assert.deepEqual(
    problems({
      app: {
        peers: [
          { address: "nope:", wieght: 3 },
          { address: "10.0.0.1:80", weight: 0 },
        ],
        policy: { type: "hash", consistent: true, cookie: "x" },
        retry: { on: ["http502", "boom"], tries: -1 },
        timeouts: { connect: "soon" },
      },
      "9bad": { peers: ["a:1"] },
    }),
    [
      'web.upstreams.app.peers[0].wieght: unknown setting; did you mean "weight"?',
      'web.upstreams.app.peers[0].address: expected an upstream address ("host:port", "host", "[::1]:port" or "unix:/path"), found "nope:"',
      "web.upstreams.app.peers[1].weight: expected an integer from 1 to 1000, found 0",
      'web.upstreams.app.policy.cookie: only for policy "sticky", not "hash"',
      'web.upstreams.app.policy.key: required by policy "hash"',
      'web.upstreams.app.retry.on[1]: expected one of "error", "timeout", "invalidResponse", "http500", "http502", "http503", "http504", "http403", "http404", "http429", found "boom"',
      "web.upstreams.app.retry.tries: expected an integer ≥ 0, found -1",
      'web.upstreams.app.timeouts.connect: expected a duration (seconds, or "500ms", "30s", "5m", "1h"), found "soon"',
      'web.upstreams.9bad: invalid name; expected a letter followed by letters, digits, "_", "-" or "."',
    ],
  );
});

test("cross-field rules: peers required, no backups with hash policies, policy names", () => {
  assert.deepEqual(problems({ a: {} }), [
    "web.upstreams.a.peers: required; expected a list of peers",
  ]);
  assert.deepEqual(problems({ a: { peers: [] } }), [
    "web.upstreams.a.peers: at least one peer is required",
  ]);
  assert.deepEqual(
    problems({ a: { peers: ["x:1", { address: "y:1", backup: true }], policy: "ipHash" } }),
    [
      'web.upstreams.a.peers[1].backup: backup peers are not allowed with policy "ipHash" (a key must keep its peer)',
    ],
  );
  assert.deepEqual(problems({ a: { peers: ["x:1"], policy: "fastest" } }), [
    'web.upstreams.a.policy.type: expected one of "roundRobin", "leastConnections", "ipHash", "hash", "randomTwo", "sticky", found "fastest"',
  ]);
  assert.deepEqual(problems({ a: { peers: ["x:1"], healthCheck: { fails: 0, method: "POST" } } }), [
    'web.upstreams.a.healthCheck.method: expected one of "GET", "HEAD", found "POST"',
    "web.upstreams.a.healthCheck.fails: expected an integer ≥ 1, found 0",
  ]);
  assert.deepEqual(problems("app"), [
    'web.upstreams: expected an object of named entries (upstream groups), found "app"',
  ]);
});

test("peer addresses: nginx server syntax, host required", () => {
  assert.deepEqual(parsePeerAddress("127.0.0.1:8000"), {
    kind: "tcp",
    host: "127.0.0.1",
    port: 8000,
  });
  assert.deepEqual(parsePeerAddress("app.internal"), {
    kind: "tcp",
    host: "app.internal",
    port: 80,
  });
  assert.deepEqual(parsePeerAddress("[::1]:9000"), { kind: "tcp", host: "::1", port: 9000 });
  assert.deepEqual(parsePeerAddress("[::1]"), { kind: "tcp", host: "::1", port: 80 });
  assert.deepEqual(parsePeerAddress("unix:/run/a.sock"), { kind: "unix", path: "/run/a.sock" });
  for (const bad of [
    "",
    ":8000",
    "8000",
    "::1",
    "::1:80",
    "host:0",
    "host:65536",
    "unix:",
    "[::1]x",
    "a b:1",
    "[zz]:1",
  ]) {
    assert.equal(parsePeerAddress(bad), undefined, bad);
  }
});

test("record: named entries, each checked with its path", () => {
  const r = record(integer({ min: 1 }));
  const issues: Issue[] = [];
  assert.deepEqual(r.check({ a: 1, "b-2.x": 2 }, ["r"], issues), { a: 1, "b-2.x": 2 });
  assert.equal(r.check({ a: 0 }, ["r"], issues), invalid);
  assert.deepEqual(issues, [{ path: ["r", "a"], message: "expected an integer ≥ 1, found 0" }]);
  assert.equal(r.recordKey, "<name>");
});
