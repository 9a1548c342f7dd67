/**
 * The app tier's master side under `brigade up`, with the meaning it has under `brigade app`: the
 * master hooks of the config file (onStarting, whenReady, onReload, childExit, onExit), `chdir`
 * and `umask` for the app workers, `preload` (an app that cannot load stops everything before
 * anything listens) and `--reload` (a source change deploys the new code).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { spawnNode, waitFor } from "../helpers/process.ts";
import { bin, get, startStack, tempDir } from "./harness.ts";

const versioned = (v: string) => `
export default {
  fetch() {
    const mask = process.umask();
    return new Response("${v} cwd=" + process.cwd() + " umask=" + mask.toString(8) + "\\n");
  },
};
`;

test("brigade up: master hooks, chdir, umask and --reload as under brigade app", async (t) => {
  const hookLog = "hooks.log";
  const config = `import { appendFileSync } from "node:fs";
const log = (s: string) => appendFileSync(${JSON.stringify(hookLog)}, s + "\\n");
export default {
  app: {
    chdir: "srv",
    umask: "027",
    reload: true,
    preload: true,
    onStarting: (server: { pid: number }) => log("onStarting " + server.pid),
    whenReady: () => log("whenReady"),
    onReload: () => log("onReload"),
    childExit: (_s: unknown, w: { pid: number; reason: string }) => log("childExit " + w.pid + " " + w.reason),
    onExit: () => log("onExit"),
  },
  stack: { canary: 0 },
};
`;
  const s = await startStack(t, {
    args: ["-c", "brigade.config.ts", "--app-workers", "1", "--web-workers", "1"],
    files: { "brigade.config.ts": config, "srv/app.ts": versioned("v1") },
  });
  const srv = join(s.dir, "srv");
  const base = `http://127.0.0.1:${s.port}`;
  // The app spec is taken from app.chdir (app.ts there, not the one beside the config), and the
  // worker runs there with the umask.
  assert.equal((await get(`${base}/`)).body, `v1 cwd=${srv} umask=27\n`);
  assert.match(s.output(), /app preloaded in the master/);
  const firstApp = Number(s.output().match(/worker ready pool=app worker=1 pid=(\d+)/)![1]);

  const mark = s.lines.length;
  writeFileSync(join(srv, "app.ts"), versioned("v2"));
  await s.waitForLine(/source changed; reloading/, { from: mark });
  await s.waitForLine(/deploy complete/, { from: mark });
  await waitFor(async () => (await get(`${base}/`)).body.startsWith("v2 "), "v2 served");
  await waitFor(
    () => readFileSync(join(s.dir, hookLog), "utf8").includes(`childExit ${firstApp} replaced`),
    "childExit for the replaced app worker",
  );
  process.kill(s.masterPid, "SIGTERM");
  assert.equal((await s.exited).code, 0, s.output());

  const lines = readFileSync(join(s.dir, hookLog), "utf8").trim().split("\n");
  const at = (line: string) => {
    const i = lines.indexOf(line);
    assert.ok(i >= 0, `hook line "${line}" missing:\n${lines.join("\n")}`);
    return i;
  };
  const chain = [
    `onStarting ${s.masterPid}`,
    "whenReady",
    "onReload",
    `childExit ${firstApp} replaced`,
    "onExit",
  ];
  for (let i = 1; i < chain.length; i++) assert.ok(at(chain[i - 1]!) < at(chain[i]!), chain[i]);
  assert.equal(lines.at(-1), "onExit");
});

test("brigade up --preload: an app that cannot load stops everything before anything listens", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "broken.ts"), "export default {\n  fetch( {\n");
  const run = spawnNode(
    t,
    [bin, "up", "broken.ts", "--preload", "--listen", "127.0.0.1:0", "--admin", "off"].concat([
      "--runtime-dir",
      join(dir, "run"),
    ]),
    { cwd: dir },
  );
  const { code } = await run.exited;
  assert.equal(code, 4, run.output());
  assert.match(run.output(), /the app cannot be loaded \(preload\)/);
  assert.match(run.output(), /syntax error in .*broken\.ts/);
  assert.doesNotMatch(run.output(), /worker spawned|listening/, "nothing started");

  const nodir = spawnNode(
    t,
    [bin, "up", "broken.ts", "--chdir", "nowhere", "--runtime-dir", join(dir, "run")],
    { cwd: dir },
  );
  assert.equal((await nodir.exited).code, 2, nodir.output());
  assert.match(nodir.output(), /app\.chdir: nowhere is not a directory/);
});

test("brigade up: each tier's workers run with its nodeArgs", async (t) => {
  // A flag each worker shows it got: an --import that leaves a file named after the tier and pid.
  const mark = (tier: string) =>
    `--import=data:text/javascript,import{writeFileSync}from"node:fs";writeFileSync("${tier}-"+process.pid,"")`;
  const s = await startStack(t, {
    args: [
      "--app-workers",
      "1",
      "--web-workers",
      "1",
      "--app-node-arg",
      mark("app"),
      "--web-node-arg",
      mark("web"),
    ],
  });
  const pid = (tier: string) =>
    Number(s.output().match(new RegExp(`worker ready pool=${tier} worker=1 pid=(\\d+)`))![1]);
  const files = readdirSync(s.dir).filter((f) => /^(app|web)-\d+$/.test(f));
  assert.deepEqual(
    files.sort(),
    [`app-${pid("app")}`, `web-${pid("web")}`],
    "one per worker, not the master",
  );
});
