/**
 * Cache settings as the schema and the pipeline compile them: bad values are refused with the
 * setting's path before anything starts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { resolveConfig } from "../../../src/config/load.ts";
import { ConfigError } from "../../../src/config/problems.ts";
import { createLogger } from "../../../src/core/logger.ts";
import { Pipeline } from "../../../src/webserver/pipeline.ts";

const logger = createLogger({ level: "fatal", format: "text" });

async function problems(web: Record<string, unknown>): Promise<string> {
  try {
    const config = resolveConfig({ file: { value: { web }, source: "test.json" }, env: {} });
    const p = await Pipeline.compile({
      web: config.web,
      baseDir: "/",
      serving: false,
      logger,
      source: "test.json",
    });
    await p.close();
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return "";
}

test("cacheValid: the shorthand forms are read; bad statuses and durations refused", () => {
  const web = (cacheValid: unknown) =>
    resolveConfig({ file: { value: { web: { servers: [{ cacheValid }] } }, source: "t" }, env: {} })
      .web.servers[0]!.cacheValid;
  assert.deepEqual(web({ "200 302": "10m", any: 30 }), { 200: 600, 302: 600, any: 30 });
  assert.deepEqual(web("5m"), { 200: 300, 301: 300, 302: 300 });
  assert.deepEqual(web(["404 1m", "500 502 10s"]), { 404: 60, 500: 10, 502: 10 });
  assert.throws(() => web({ "20x": "1m" }), /cacheValid.*20x/s);
  assert.throws(() => web(["200 soon"]), /cacheValid/);
});

test("a location sharing a zone with other storage, a bad key, a short admin token", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "brigade-cache-config-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "a-file");
  writeFileSync(file, "");
  const mismatch = await problems({
    servers: [
      {
        cache: true,
        cacheZone: "z",
        locations: [
          { match: "/a/", cacheDir: join(dir, "x") },
          { match: "/b/", cacheDir: join(dir, "y") },
        ],
      },
    ],
  });
  assert.match(mismatch, /cache: cacheDir: cache zone "z" is used with/);
  // unnamed: each storage is its own zone
  const unnamed = await problems({
    servers: [
      {
        cache: true,
        locations: [
          { match: "/a/", cacheDir: join(dir, "x") },
          { match: "/b/", cacheDir: join(dir, "y") },
        ],
      },
    ],
  });
  assert.equal(unnamed, "");
  assert.match(
    await problems({ servers: [{ cache: true, cacheKey: "$scheme$ host" }] }),
    /cacheKey: not a variable/,
  );
  assert.match(
    await problems({ servers: [{ cacheAdmin: { token: "short" } }] }),
    /cacheAdmin\.token: the admin token must be at least 16 characters/,
  );
  assert.match(
    await problems({ servers: [{ cache: true, cacheDir: join(file, "cache") }] }),
    /cacheDir: .*\/a-file is not a directory/,
  );
  assert.match(
    await problems({ servers: [{ cache: true, cacheMemorySize: 0 }] }),
    /cacheMemorySize: 0 leaves the cache no storage/,
  );
});
