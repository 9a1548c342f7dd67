/**
 * Listen addresses and master-bound sockets, in-process.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { bindListener, formatListen, parseListen } from "../../src/process/listen.ts";

test("parseListen reads every address form and rejects bad ones", () => {
  assert.deepEqual(parseListen("127.0.0.1:8000"), { kind: "tcp", host: "127.0.0.1", port: 8000 });
  assert.deepEqual(parseListen(":8000"), { kind: "tcp", host: "0.0.0.0", port: 8000 });
  assert.deepEqual(parseListen("8000"), { kind: "tcp", host: "0.0.0.0", port: 8000 });
  assert.deepEqual(parseListen("[::1]:8000"), { kind: "tcp", host: "::1", port: 8000 });
  assert.deepEqual(parseListen("localhost:0"), { kind: "tcp", host: "localhost", port: 0 });
  assert.deepEqual(parseListen("unix:/run/app.sock"), { kind: "unix", path: "/run/app.sock" });
  for (const bad of ["", "unix:", "host", "host:http", "1.2.3.4:70000", "::1:80", "[zz]:80"]) {
    assert.throws(() => parseListen(bad), /listen address/, bad);
  }
  for (const text of ["127.0.0.1:8000", "[::1]:80", "unix:/a/b"]) {
    assert.equal(formatListen(parseListen(text)), text);
  }
});

function tmp(t: import("node:test").TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-listen-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("a unix socket gets its mode; a stale file is replaced; a live socket or a plain file is not", async (t) => {
  const dir = tmp(t);
  const path = join(dir, "a.sock");
  const l = await bindListener({ kind: "unix", path, mode: 0o660 });
  assert.equal(statSync(path).mode & 0o777, 0o660);
  assert.ok(l.fd > 2);
  l.close(false);
  // Closed without unlink: the file is stale now, and a new bind takes it over.
  assert.ok(statSync(path).isSocket());
  const l2 = await bindListener({ kind: "unix", path });
  l2.close(true);
  assert.throws(() => statSync(path), /ENOENT/);

  const live = net.createServer().listen(path);
  await new Promise((r) => live.once("listening", r));
  t.after(() => live.close());
  await assert.rejects(bindListener({ kind: "unix", path }), /EADDRINUSE/);

  const plain = join(dir, "plain");
  writeFileSync(plain, "keep me");
  await assert.rejects(bindListener({ kind: "unix", path: plain }), /EEXIST/);
  assert.ok(statSync(plain).isFile());
});

test("TCP v4 and v6: the real port is reported; a taken port is refused", async (t) => {
  const v4 = await bindListener({ kind: "tcp", host: "127.0.0.1", port: 0 });
  t.after(() => v4.close(true));
  assert.ok(v4.port! > 0);
  assert.equal(v4.address, `127.0.0.1:${v4.port}`);
  // Listening with nobody accepting: the kernel completes a connection into the backlog.
  const probe = net.connect({ port: v4.port!, host: "127.0.0.1" });
  await new Promise((resolve, reject) => {
    probe.once("connect", resolve);
    probe.once("error", reject);
  });
  probe.destroy();
  // The port is held: another socket cannot take it.
  const taken = net.createServer();
  t.after(() => taken.close());
  await assert.rejects(
    new Promise((resolve, reject) => {
      taken.once("error", reject);
      taken.listen(v4.port, "127.0.0.1", () => resolve(undefined));
    }),
    /EADDRINUSE/,
  );
  let v6: Awaited<ReturnType<typeof bindListener>> | undefined;
  try {
    v6 = await bindListener({ kind: "tcp", host: "::1", port: 0 });
  } catch (error) {
    t.skip(`no IPv6 loopback here: ${String(error)}`);
    return;
  }
  t.after(() => v6.close(true));
  assert.equal(v6.address, `[::1]:${v6.port}`);
});
