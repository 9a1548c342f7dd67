/**
 * Bad input on real sockets: malformed requests and broken limits get 400/408/413/414/431 and
 * never take a worker down; a throw in the app is a 500 for that request only; a worker that
 * dies mid-request is replaced and the request another worker is serving is not affected.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { waitFor } from "../helpers/process.ts";
import { fixtureApp, pidOf, raw, request, startApp, statusOf, tempDir } from "./harness.ts";

test("malformed requests and limits get the right 4xx; the worker lives on", async (t) => {
  const app = await startApp(t, [
    fixtureApp,
    "-w",
    "1",
    "-b",
    "127.0.0.1:0",
    "--limit-request-line",
    "1024",
    "--limit-request-fields",
    "20",
    "--limit-request-field-size",
    "512",
    "--limit-request-body",
    "1k",
  ]);
  const pid = pidOf((await request(app.port, "/")).body);
  const cases: [string, string | Buffer, number][] = [
    ["garbage", "GARBAGE\r\n\r\n", 400],
    ["bad version", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400],
    ["space in a header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400],
    ["HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 400],
    ["a long request line", `GET /${"a".repeat(1100)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
    [
      "too many header fields",
      `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 25 }, (_, i) => `X-H${i}: v\r\n`).join("")}\r\n`,
      431,
    ],
    ["a long header field", `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(600)}\r\n\r\n`, 431],
    [
      "a head past the whole bound",
      `GET / HTTP/1.1\r\nHost: x\r\nX-Huge: ${"h".repeat(40_000)}\r\n\r\n`,
      431,
    ],
    [
      "a declared body over the limit",
      `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n${"x".repeat(2048)}`,
      413,
    ],
    [
      "a chunked body going over the limit",
      `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${"400\r\n".concat("y".repeat(1024), "\r\n").repeat(3)}0\r\n\r\n`,
      413,
    ],
    [
      "a bad chunk size",
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      400,
    ],
    [
      "both Content-Length and chunked",
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      400,
    ],
  ];
  for (const [what, bytes, status] of cases) {
    const reply = await raw(app.port, bytes);
    assert.equal(statusOf(reply), status, `${what}: ${reply.slice(0, 200)}`);
    assert.match(reply, /\r\nconnection: close\r\n/i, `${what}: the connection is closed`);
  }
  // Within the limits, the body reaches the app.
  const ok = await request(app.port, "/echo", { method: "POST", body: "z".repeat(1000) });
  assert.equal(ok.body, "read 1000\n");

  // A throw in the app: 500 for that request, logged with its stack, the worker goes on.
  const mark = app.lines.length;
  const broke = await request(app.port, "/throw");
  assert.equal(broke.status, 500);
  await app.waitForLine(/app handler failed/, { from: mark });
  await app.waitForLine(/Error: the app broke/, { from: mark });
  assert.equal(
    pidOf((await request(app.port, "/")).body),
    pid,
    "the same worker served throughout",
  );
  assert.deepEqual(app.workers(), [pid]);
  assert.equal(await app.stop(), 0, app.output());
});

test("a worker dying mid-request is replaced; a request on another worker is not affected", async (t) => {
  const dir = tempDir(t);
  // Sync workers, so the dying request cannot land on the worker holding the other one.
  const app = await startApp(t, [fixtureApp, "-k", "sync", "-w", "2", "-b", "127.0.0.1:0"]);
  const release = join(dir, "release");
  const started = join(dir, "started");
  const held = request(app.port, `/hold?file=${release}&started=${started}`, {
    timeoutMs: 30_000,
  });
  await waitFor(() => existsSync(started), "the held request to start");
  const holder = Number(readFileSync(started, "utf8"));

  const mark = app.lines.length;
  await assert.rejects(request(app.port, "/exit"), "the dying request fails");
  const exited = await app.waitForLine(/worker exited .*pid=(\d+) .*reason="exit code 1"/, {
    from: mark,
  });
  assert.notEqual(Number(exited.match[1]), holder);
  await app.waitForLine(/worker ready/, { from: exited.index });

  writeFileSync(release, "");
  const reply = await held;
  assert.equal(reply.status, 200);
  assert.equal(pidOf(reply.body), holder);
  assert.equal(app.workers().length, 2);
  assert.equal((await request(app.port, "/")).status, 200);
  assert.equal(await app.stop(), 0, app.output());
});
