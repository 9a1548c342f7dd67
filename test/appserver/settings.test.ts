/**
 * gunicorn-parity settings on the real command line: user/group, chdir, env, umask, pidfile,
 * server hooks from a config file, preload and app-load failures (exit 4, the error printed
 * once), and combinations refused before anything starts.
 */
import assert from "node:assert/strict";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { APP_ACCEPTORS } from "../../src/appserver/accept.ts";
import { listeningDescriptors, spawnNode } from "../helpers/process.ts";
import { bin, fixtureApp, raw, request, startApp, statusOf, tempDir } from "./harness.ts";

test("user, group, chdir, env, umask and pidfile apply to the master and its workers", async (t) => {
  const dir = tempDir(t, { "app.ts": `export { default } from ${JSON.stringify(fixtureApp)};\n` });
  const root = process.getuid?.() === 0;
  // The workers run as nobody: they must be able to read the app.
  chmodSync(dir, 0o755);
  const sock = join(dir, "app.sock");
  const app = await startApp(t, [
    "app.ts",
    "--chdir",
    dir,
    "-e",
    "GREETING=hello there",
    "-e",
    "EMPTY=",
    "-m",
    "077",
    "-p",
    join(dir, "pid"),
    "-b",
    `unix:${sock}`,
    "-b",
    "127.0.0.1:0",
    ...(root ? ["-u", "nobody"] : []),
  ]);
  assert.equal(readFileSync(join(dir, "pid"), "utf8").trim(), String(app.pid));
  assert.equal(statSync(sock).mode & 0o777, 0o700, "the unix socket follows the umask");
  const who = (await request(app.port, "/whoami")).body;
  assert.match(who, new RegExp(`cwd=${dir}\\n$`));
  if (root) assert.match(who, /^uid=65534 gid=65534 /, "the worker runs as nobody");
  assert.equal((await request(app.port, "/env?name=GREETING")).body, "hello there\n");
  assert.equal((await request(0, "/env?name=EMPTY", { socketPath: sock })).body, "\n");
  assert.equal(await app.stop(), 0, app.output());
  assert.equal(existsSync(join(dir, "pid")), false, "the pidfile is removed");
});

test("server hooks from the config file run in the master and the workers", async (t) => {
  const dir = tempDir(t);
  const hookLog = join(dir, "hooks.log");
  const configText = `import { appendFileSync } from "node:fs";
const log = (s: string) => appendFileSync(${JSON.stringify(hookLog)}, s + "\\n");
export default {
  app: {
    app: ${JSON.stringify(fixtureApp)},
    bind: "127.0.0.1:0",
    workers: 1,
    timeout: 4,
    onStarting: (server: { pid: number }) => log("onStarting " + server.pid),
    whenReady: () => log("whenReady"),
    onReload: () => log("onReload"),
    postFork: (server: { pid: number }, worker: { id: number }) => log("postFork " + worker.id + " master=" + server.pid),
    postWorkerInit: async (worker: { id: number }) => { await new Promise((r) => setTimeout(r, 10)); log("postWorkerInit " + worker.id); },
    preRequest: (_w: unknown, req: { method: string; url: string }) => {
      log("preRequest " + req.method + " " + req.url);
      if (req.url === "/?boom") throw new Error("a broken hook");
    },
    postRequest: (_w: unknown, req: { url: string }, _res: unknown, info: { status: number }) => log("postRequest " + req.url + " " + info.status),
    workerAbort: (worker: { pid: number }) => { log("workerAbort " + worker.pid); return { note: "stuck" }; },
    workerExit: (_s: unknown, worker: { pid: number }) => log("workerExit " + worker.pid),
    childExit: (_s: unknown, worker: { pid: number; reason: string }) => log("childExit " + worker.pid + " " + worker.reason),
    onExit: () => log("onExit"),
  },
};
`;
  writeFileSync(join(dir, "brigade.config.ts"), configText);
  const app = await startApp(t, [], { cwd: dir });
  const [first] = app.workers();
  assert.equal((await request(app.port, "/")).status, 200);
  assert.equal((await request(app.port, "/?boom")).status, 200, "a throwing hook is only logged");
  await app.waitForLine(/the preRequest hook failed/);

  const mark = app.lines.length;
  await assert.rejects(request(app.port, "/block", { timeoutMs: 20_000 }));
  const killed = await app.waitForLine(/worker timed out/, { from: mark, timeoutMs: 20_000 });
  assert.match(killed.line, /workerAbort=\{"note":"stuck"\}/, app.output());
  await app.waitForLine(/worker ready/, { from: mark });
  const [second] = app.workers();

  const mark2 = app.lines.length;
  process.kill(app.pid, "SIGHUP");
  await app.waitForLine(/reload complete/, { from: mark2 });
  await app.waitForLine(new RegExp(`worker exited .*pid=${second} `), { from: mark2 });
  assert.equal(await app.stop(), 0, app.output());

  const lines = readFileSync(hookLog, "utf8").trim().split("\n");
  const at = (line: string) => {
    const i = lines.indexOf(line);
    assert.ok(i >= 0, `hook line "${line}" missing:\n${lines.join("\n")}\n${app.output()}`);
    return i;
  };
  // What is causally ordered must be in order (a replacement worker boots concurrently).
  const chains = [
    [`onStarting ${app.pid}`, `postFork 1 master=${app.pid}`, "postWorkerInit 1", "whenReady"],
    [
      "whenReady",
      "preRequest GET /",
      "postRequest / 200",
      "preRequest GET /?boom",
      "postRequest /?boom 200",
      "preRequest GET /block",
      `workerAbort ${first}`,
      `childExit ${first} timeout`,
    ],
    [
      `childExit ${first} timeout`,
      "onReload",
      `workerExit ${second}`,
      `childExit ${second} stopped`,
      "onExit",
    ],
  ];
  for (const chain of chains) {
    for (let i = 1; i < chain.length; i++) {
      assert.ok(at(chain[i - 1]!) < at(chain[i]!), `${chain[i - 1]} before ${chain[i]}`);
    }
  }
  // At least three workers booted (a loaded machine may time out one more, without harm here).
  assert.ok(lines.filter((l) => l.startsWith("postFork 1 ")).length >= 3, "three workers booted");
  assert.ok(lines.filter((l) => l === "postWorkerInit 1").length >= 3);
  const reload = at("onReload");
  const afterReload = lines.slice(reload);
  assert.ok(afterReload.includes(`workerExit ${second}`), "the replaced worker ran workerExit");
  assert.ok(afterReload.includes(`childExit ${second} stopped`), "and the master saw it stop");
  assert.equal(lines.at(-1), "onExit");
});

/** Run brigade to its end; returns the exit code and output. */
async function runToEnd(t: Parameters<typeof tempDir>[0], args: string[], cwd: string) {
  const p = spawnNode(t, [bin, "app", "--log-format", "text", ...args], { cwd });
  const { code } = await p.exited;
  return { code, output: p.output() };
}

test("an app that cannot load: exit 4 with the error once; with preload, before any worker", async (t) => {
  const dir = tempDir(t, {
    "broken.ts": "export default {\n  fetch( {\n",
    "throws.ts": 'throw new Error("no database");\n',
  });
  const pre = await runToEnd(t, ["broken.ts", "--preload", "-w", "2", "-b", "127.0.0.1:0"], dir);
  assert.equal(pre.code, 4, pre.output);
  assert.match(pre.output, /the app cannot be loaded \(preload\)/);
  assert.match(pre.output, /syntax error in .*broken\.ts/);
  assert.doesNotMatch(pre.output, /worker spawned|listening/, "nothing started");

  const late = await runToEnd(t, ["throws.ts", "-w", "3", "-b", "127.0.0.1:0"], dir);
  assert.equal(late.code, 4, late.output);
  const reports = late.output.match(/\[FATAL\] app cannot be loaded/g) ?? [];
  assert.equal(reports.length, 1, late.output);
  assert.match(late.output, /threw while being imported: Error: no database/);
  assert.match(late.output, /caused by: Error: no database\n\s+at .*throws\.ts:1/);

  // brigade check loads the app too (gunicorn's --check-config does).
  const check = spawnNode(t, [bin, "check", "broken.ts"], { cwd: dir });
  assert.equal((await check.exited).code, 1, check.output());
  assert.match(check.output(), /syntax error in .*broken\.ts/);
  assert.match(check.output(), /brigade check: the app \(app\.app\) cannot be loaded/);
  const good = spawnNode(t, [bin, "check", fixtureApp], { cwd: dir });
  assert.equal((await good.exited).code, 0, good.output());
  assert.match(good.output(), /brigade check: ok: .*; app .*app\.ts loads/);
});

test("combinations that cannot work are refused before anything starts", async (t) => {
  const dir = tempDir(t);
  const r = await runToEnd(
    t,
    [fixtureApp, "-k", "sync", "--worker-mode", "thread", "-b", "127.0.0.1:0"],
    dir,
  );
  assert.equal(r.code, 2, r.output);
  assert.match(r.output, /sync workers need workerMode process/);
  const flags = await runToEnd(
    t,
    [fixtureApp, "--node-arg", "--max-old-space-size=200", "--worker-mode", "thread"],
    dir,
  );
  assert.equal(flags.code, 2, flags.output);
  assert.match(flags.output, /app\.nodeArgs: thread workers share the master's Node/);
  const bad = await runToEnd(t, [fixtureApp, "--node-arg", "max-old-space-size=200"], dir);
  assert.equal(bad.code, 2, bad.output);
  assert.match(bad.output, /--node-arg.*a Node\.js flag such as/s);
});

test("nodeArgs: the workers run with the Node flags, the master without", async (t) => {
  const app = await startApp(t, [
    fixtureApp,
    "-b",
    "127.0.0.1:0",
    "--node-arg",
    "--max-old-space-size=200",
    "--node-arg",
    "--max-semi-space-size=4",
  ]);
  const got = JSON.parse((await request(app.port, "/node")).body) as {
    execArgv: string[];
    heapLimit: number;
  };
  assert.deepEqual(
    got.execArgv.filter((a) => a.startsWith("--max-")),
    ["--max-old-space-size=200", "--max-semi-space-size=4"],
  );
  // 200 MiB of old space plus the young generation: far under the default (GiBs here).
  assert.ok(got.heapLimit < 300 * 2 ** 20, `heap limit ${got.heapLimit}`);
  const master = readFileSync(`/proc/${app.pid}/cmdline`, "utf8").split("\0");
  assert.ok(!master.includes("--max-old-space-size=200"), master.join(" "));
  assert.equal(await app.stop(), 0, app.output());
});

test("an async worker accepts on APP_ACCEPTORS descriptors of the socket, a sync worker on one", async (t) => {
  const async = await startApp(t, [fixtureApp, "-b", "127.0.0.1:0", "-w", "1"]);
  const [worker] = async.workers();
  assert.ok(worker, async.output());
  assert.equal(listeningDescriptors(worker, async.port), APP_ACCEPTORS);
  // New connections in a burst, each one request: every one answered.
  const replies = await Promise.all(
    Array.from({ length: 100 }, () =>
      raw(async.port, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    ),
  );
  assert.deepEqual(new Set(replies.map(statusOf)), new Set([200]));
  assert.equal(await async.stop(), 0, async.output());

  const sync = await startApp(t, [fixtureApp, "-b", "127.0.0.1:0", "-w", "1", "-k", "sync"]);
  const [one] = sync.workers();
  assert.ok(one, sync.output());
  assert.equal(listeningDescriptors(one, sync.port), 1);
  assert.equal(await sync.stop(), 0, sync.output());
});
