/**
 * brigade up's config problems, found before anything starts; `brigade check` of a stack config
 * (locations proxying to the stack's `app` group); control commands with no stack running.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { spawnNode } from "../helpers/process.ts";
import { appSource, bin, tempDir } from "./harness.ts";

async function brigade(dir: string, args: string[], t: Parameters<typeof tempDir>[0]) {
  const p = spawnNode(t, [bin, ...args], { cwd: dir });
  const { code } = await p.exited;
  return { code, out: p.output() };
}

test("brigade up refuses what it cannot run, naming the setting; check knows the app group", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "app.ts"), appSource("1"));
  writeFileSync(
    join(dir, "bad.json"),
    JSON.stringify({
      app: { app: "app.ts", workerMode: "thread" },
      web: {
        upstreams: { app: { peers: ["127.0.0.1:1"] } },
        proxy: ["127.0.0.1:2"],
        workerMode: "thread",
        nodeArgs: ["--max-old-space-size=100"],
      },
    }),
  );
  const bad = await brigade(dir, ["up", "-c", "bad.json", "--runtime-dir", join(dir, "run")], t);
  assert.equal(bad.code, 2, bad.out);
  assert.match(bad.out, /app\.workerMode: brigade up gives each app worker a unix socket/);
  assert.match(bad.out, /web\.upstreams\.app: this group is brigade up's own/);
  assert.match(bad.out, /web\.proxy: brigade up proxies to its own app workers/);
  assert.match(bad.out, /web\.nodeArgs: thread workers share the master's Node/);
  assert.match(bad.out, /brigade up: 4 problems in the config/);

  writeFileSync(
    join(dir, "good.json"),
    JSON.stringify({
      app: { app: "app.ts" },
      web: { servers: [{ locations: [{ match: "/", proxy: "app" }] }] },
    }),
  );
  const check = await brigade(dir, ["check", "-c", "good.json"], t);
  assert.equal(check.code, 0, check.out);
  assert.match(check.out, /brigade check: ok/);

  const status = await brigade(dir, ["status", "--runtime-dir", join(dir, "run")], t);
  assert.equal(status.code, 1);
  assert.match(status.out, /brigade status: no stack is running for this directory and config/);
});
