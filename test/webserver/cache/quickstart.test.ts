/**
 * The quick start: `web.cacheDir` (`--cache-dir DIR`) alone turns the cache on for the server
 * made up from the web section, with its disk tier in DIR; the flags are read by the real CLI.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { spawnNode } from "../../helpers/process.ts";
import { request, startOrigin, startWeb, tempDir, xcs } from "./harness.ts";

test("--cache and --cache-dir are settings of the web section", async (t) => {
  const brigade = new URL("../../../bin/brigade.ts", import.meta.url).pathname;
  const p = spawnNode(t, [brigade, "print-config", "--cache", "--cache-dir", "/tmp/brigade-c"]);
  const { code } = await p.exited;
  assert.equal(code, 0, p.output());
  const config = JSON.parse(p.output());
  assert.equal(config.web.cache, true);
  assert.equal(config.web.cacheDir, "/tmp/brigade-c");
});

test("web.cacheDir alone: the made-up server caches, on disk", async (t) => {
  const dir = tempDir(t);
  const cacheDir = join(dir, "c");
  const origin = await startOrigin(t);
  const web = await startWeb(t, { workers: 1, cacheDir }, { origin }, dir);
  const a = await request(web.port, "/qs?cc=max-age%3D60");
  const b = await request(web.port, "/qs?cc=max-age%3D60");
  assert.match(String(a.headers["cache-status"]), /fwd=uri-miss; fwd-status=200; stored/);
  assert.match(String(b.headers["cache-status"]), /^brigade; hit/);
  assert.equal(xcs(b), undefined, "X-Cache-Status is off by default");
  assert.equal(await origin.count("/qs"), 1);
  const buckets = readdirSync(cacheDir).filter((n) => /^[0-9a-f]{2}$/.test(n));
  assert.equal(buckets.length, 1, "one record on disk");
  await web.stop();
});
