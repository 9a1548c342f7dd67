/**
 * `brigade web` as a real master with worker processes: the quick start, bad configs refused
 * before anything starts (and by `brigade check`), HUP reload under a bounded load with zero
 * errors, a bad reload keeping the old config, USR1 reopening the access log.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync, renameSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { WEB_ACCEPTORS } from "../../src/webserver/engine/listener.ts";
import { listeningDescriptors, waitFor } from "../helpers/process.ts";
import { bin, request, selfSigned, startWeb, stopWeb, tempDir } from "./helpers.ts";

function brigade(
  args: string[],
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

test("a config only compiling can fault: check lists every problem, web refuses to start", async (t) => {
  const dir = tempDir(t, {
    "brigade.config.json": JSON.stringify({
      web: {
        servers: [
          {
            listen: ["127.0.0.1:0"],
            locations: [
              { match: "/a/", locations: [{ match: "/b/" }] },
              { match: "/c/", return: "200 $hots" },
            ],
          },
          { listen: [{ address: "127.0.0.2:0", tls: true }] },
        ],
      },
    }),
  });
  const check = await brigade(["check"], dir);
  assert.equal(check.code, 1, check.stderr);
  assert.deepEqual(check.stderr.trim().split("\n"), [
    'brigade.config.json: web.servers[0].locations[0].locations[0].match: location "/b/" is outside its parent location (nested prefixes must start with "/a/")',
    'brigade.config.json: web.servers[0].locations[1]: rewrite: unknown variable "$hots"; did you mean "$host"?',
    "brigade.config.json: web.servers[1]: listens with TLS on 127.0.0.2:0 but has no `tls` certificate and key",
    "brigade check: 3 problems in the config",
  ]);
  const web = await brigade(["web"], dir);
  assert.equal(web.code, 2);
  assert.match(web.stderr, /brigade web: 3 problems in the config/);
  assert.doesNotMatch(web.stderr, /listening/);
});

test("nodeArgs with thread workers is refused before anything starts", async (t) => {
  const dir = tempDir(t);
  const web = await brigade(
    [
      "web",
      "--listen",
      "127.0.0.1:0",
      "--worker-mode",
      "thread",
      "--node-arg",
      "--max-old-space-size=100",
    ],
    dir,
  );
  assert.equal(web.code, 2, web.stderr);
  assert.match(web.stderr, /web\.nodeArgs: thread workers share the master's Node/);
});

test("quick start: brigade web --root DIR --listen ADDR serves with one server", async (t) => {
  const dir = tempDir(t, { "public/index.html": "hi\n" });
  const web = await startWeb(
    t,
    {},
    {
      dir,
      args: ["--root", "./public", "--listen", "127.0.0.1:0", "-w", "1"],
    },
  );
  const r = await request(web.port, "/");
  // Without the static module (its own branch) nothing claims the content phase: 404, served.
  assert.equal(r.headers.server, "brigade");
  assert.ok([200, 404].includes(r.status), String(r.status));
  assert.equal(await stopWeb(web), 0);
});

test("HUP under load: zero errors, the new config takes over; a bad one keeps the old", async (t) => {
  const web = await startWeb(t, {
    web: {
      workers: 2,
      gracefulTimeout: 10,
      servers: [{ listen: ["127.0.0.1:0"], return: "200 v1" }],
    },
  });
  const port = web.port;
  const keepAlive = new http.Agent({ keepAlive: true });
  t.after(() => keepAlive.destroy());
  let errors = 0;
  let done = 0;
  let retried = 0;
  const failures: string[] = [];
  const bodies = new Map<string, number>();
  // A keep-alive connection the server closes as idle can race the client's next request on it,
  // which then fails before any byte of a response: what RFC 9112 §9.3.1 lets a client retry
  // (an idempotent request), as browsers and undici do and Node's docs advise for http.Agent.
  // Those are retried once and counted; any other failure is an error.
  const get = (agent: http.Agent | false, retry = true): Promise<void> =>
    new Promise<void>((resolve) => {
      let answered = false;
      const req = http.get(
        { host: "127.0.0.1", port, path: "/", agent, timeout: 10_000 },
        (res) => {
          answered = true;
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            body += c;
          });
          res.on("end", () => {
            if (res.statusCode !== 200) {
              errors++;
              failures.push(`status ${res.statusCode}`);
            }
            bodies.set(body, (bodies.get(body) ?? 0) + 1);
            done++;
            resolve();
          });
          res.on("error", (e) => {
            errors++;
            failures.push(`response: ${e.message}`);
            resolve();
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e: NodeJS.ErrnoException) => {
        const closedUnanswered =
          !answered && req.reusedSocket && (e.code === "ECONNRESET" || e.code === "EPIPE");
        if (closedUnanswered && retry) {
          retried++;
          void get(agent, false).then(resolve);
          return;
        }
        errors++;
        failures.push(`${e.code ?? ""} ${e.message}${req.reusedSocket ? " (reused)" : ""}`);
        resolve();
      });
    });
  // Bounded in count and time; it normally ends when the test says stop.
  let stop = false;
  const deadline = Date.now() + 60_000;
  const loop = async (agent: http.Agent | false, max: number) => {
    for (let i = 0; i < max && !stop && Date.now() < deadline; i++) await get(agent);
  };
  const load = Promise.all([
    ...Array.from({ length: 6 }, () => loop(keepAlive, 20_000)),
    ...Array.from({ length: 2 }, () => loop(false, 5_000)),
  ]);
  await waitFor(() => done > 100, "the load to start", 15_000);
  // A reload to a new body, then a bad config (the old stays), then another good one.
  const from = web.lines.length;
  web.writeConfig({
    web: {
      workers: 2,
      gracefulTimeout: 10,
      servers: [{ listen: ["127.0.0.1:0"], return: "200 v2" }],
    },
  });
  web.child.kill("SIGHUP");
  await waitFor(() => (bodies.get("v2") ?? 0) > 50, "v2 to be served", 20_000);
  web.writeConfig({
    web: {
      servers: [{ listen: ["127.0.0.1:0"], locations: [{ match: "= /", return: "200 $nope" }] }],
    },
  });
  web.child.kill("SIGHUP");
  await web.waitForLine(/reload failed; keeping the running configuration/, { from });
  web.writeConfig({
    web: {
      workers: 2,
      gracefulTimeout: 10,
      servers: [{ listen: ["127.0.0.1:0"], return: "200 v3" }],
    },
  });
  web.child.kill("SIGHUP");
  await waitFor(() => (bodies.get("v3") ?? 0) > 50, "v3 to be served", 20_000);
  stop = true;
  await load;
  t.diagnostic(`${done} requests, ${retried} retried after a keep-alive close race`);
  assert.equal(
    errors,
    0,
    `errors: ${errors} of ${done} (${failures.slice(0, 5).join("; ")}); retried ${retried}; bodies ${JSON.stringify([...bodies])}`,
  );
  assert.deepEqual([...bodies.keys()].sort(), ["v1", "v2", "v3"]);
  const failed = web.lines.slice(from).find((l) => /reload failed/.test(l))!;
  assert.match(failed, /unknown variable/);
  assert.equal(await stopWeb(web), 0);
});

test("USR1 reopens the access log in every worker", async (t) => {
  const dir = tempDir(t);
  const web = await startWeb(
    t,
    {
      web: {
        workers: 1,
        servers: [
          {
            listen: ["127.0.0.1:0"],
            accessLog: { path: "access.log", format: "$request_uri $status", buffer: 0 },
            return: "200 ok",
          },
        ],
      },
    },
    { dir },
  );
  const log = join(dir, "access.log");
  await request(web.port, "/one");
  await waitFor(
    () => existsSync(log) && readFileSync(log, "utf8") === "/one 200\n",
    "the first line",
    5000,
  );
  renameSync(log, `${log}.1`);
  const from = web.lines.length;
  web.child.kill("SIGUSR1");
  await web.waitForLine(/handling action action=reopen/, { from });
  // The worker reopens when the master's message arrives; poll until a line lands in the new file.
  await waitFor(
    async () => {
      await request(web.port, "/two");
      return existsSync(log) && readFileSync(log, "utf8").includes("/two 200\n");
    },
    "a line in the reopened file",
    10_000,
    200,
  );
  assert.equal(readFileSync(`${log}.1`, "utf8").split("\n")[0], "/one 200");
  assert.equal(await stopWeb(web), 0);
});

test("a web worker holds WEB_ACCEPTORS descriptors of a plain listening socket and one of a TLS one, and serves a burst", async (t) => {
  const dir = tempDir(t);
  selfSigned(dir, "a", ["a.test"]);
  const w = await startWeb(
    t,
    {
      web: {
        workers: 1,
        servers: [
          { listen: ["127.0.0.1:0"], locations: [{ match: "/", return: "200 ok" }] },
          {
            listen: [{ address: "127.0.0.2:0", tls: true }],
            tls: { cert: "a.crt", key: "a.key" },
            locations: [{ match: "/", return: "200 tls" }],
          },
        ],
      },
    },
    { dir },
  );
  const line = await waitFor(
    () => w.lines.find((l) => / worker spawned worker=1 pid=\d+/.test(l)),
    "the worker spawned line",
  );
  const pid = Number(/ pid=(\d+)/.exec(line)![1]);
  // One descriptor per accept handle: libuv takes one connection per handle and turn.
  const address = (host: string) =>
    w.lines.map((l) => new RegExp(` listening address=${host}:(\\d+)$`).exec(l)?.[1]).find(Boolean);
  const plain = Number(address("127\\.0\\.0\\.1"));
  const secure = Number(address("127\\.0\\.0\\.2"));
  assert.equal(listeningDescriptors(pid, plain), WEB_ACCEPTORS);
  // The TLS listener: one (each tls.Server has its own session ticket keys).
  assert.equal(listeningDescriptors(pid, secure, "127.0.0.2"), 1);
  // A burst of new connections at once: every one answered.
  const replies = await Promise.all(Array.from({ length: 200 }, () => request(plain, "/")));
  assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
  await stopWeb(w);
});
