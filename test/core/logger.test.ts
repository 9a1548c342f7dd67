/**
 * The error log: text and JSON lines, level filter, child fields, reopen after a rename.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createLogger } from "../../src/core/logger.ts";

function tmp(t: import("node:test").TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-log-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("text lines carry time, pid, level, message and fields; the level filter drops lower ones", (t) => {
  const file = join(tmp(t), "e.log");
  const log = createLogger({ file, format: "text", level: "info" }).child({ tier: "app" });
  log.debug("hidden");
  log.info("worker spawned", { worker: 1, reason: "exit code 1" });
  log.error("failed", { error: new Error("bad thing") });
  const text = readFileSync(file, "utf8");
  assert.doesNotMatch(text, /hidden/);
  assert.match(
    text,
    new RegExp(
      `^\\[\\d{4}-[^\\]]+\\] \\[${process.pid}\\] \\[INFO\\] worker spawned tier=app worker=1 reason="exit code 1"$`,
      "m",
    ),
  );
  assert.match(text, /\[ERROR\] failed tier=app error="bad thing"\nError: bad thing\n\s+at /);
  assert.equal(log.enabled("debug"), false);
  assert.equal(log.enabled("warn"), true);
});

test("json lines are one object each, errors serialised", (t) => {
  const file = join(tmp(t), "e.log");
  const log = createLogger({ file, format: "json", level: "debug" });
  log.debug("d", { n: 1 });
  log.warn("w", { error: Object.assign(new Error("x"), { code: "EFOO" }) });
  const lines = readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].level, "debug");
  assert.equal(lines[0].n, 1);
  assert.equal(lines[0].pid, process.pid);
  assert.equal(lines[1].error.message, "x");
  assert.equal(lines[1].error.code, "EFOO");
});

test("reopen after a rename writes to a new file at the old path", (t) => {
  const dir = tmp(t);
  const file = join(dir, "e.log");
  const log = createLogger({ file, format: "text" });
  log.info("before");
  renameSync(file, `${file}.1`);
  log.info("still old");
  log.reopen();
  log.info("after");
  assert.match(readFileSync(`${file}.1`, "utf8"), /before[\s\S]*still old/);
  assert.doesNotMatch(readFileSync(`${file}.1`, "utf8"), /after/);
  assert.match(readFileSync(file, "utf8"), /after/);
});
