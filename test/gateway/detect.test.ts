/**
 * Shape detection: the real frameworks from examples/ run unchanged, and the explicit markers
 * settle the ambiguous two-parameter function.
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { test } from "node:test";
import { loadApp, toNodeListener } from "../../src/appserver/load.ts";
import { AppShapeError, defineApp, nodeListener, resolveApp } from "../../src/gateway/index.ts";
import { captureLogger, serve } from "./serve.ts";

const root = resolve(import.meta.dirname, "../..");
const examples: [string, "fetch" | "node"][] = [
  ["hello-fetch", "fetch"],
  ["express", "node"],
  ["koa", "node"],
  ["fastify", "node"],
  ["hono", "fetch"],
];

for (const [name, kind] of examples) {
  test(`examples/${name}.ts is detected as ${kind} and answers /, /json, /echo`, async (t) => {
    const app = await loadApp(`examples/${name}.ts`, { cwd: root });
    assert.equal(app.kind, kind);
    const { url } = await serve(t, toNodeListener(app, {}));
    const hello = await fetch(`${url}/`);
    assert.equal(hello.status, 200);
    assert.match(await hello.text(), /^Hello from .*Brigade!\n$/);
    const json = await fetch(`${url}/json`);
    assert.match(json.headers.get("content-type") ?? "", /application\/json/);
    assert.equal(((await json.json()) as { hello: string }).hello, "world");
    const body = "x".repeat(100_000);
    const echo = await fetch(`${url}/echo`, {
      method: "POST",
      body,
      headers: { "content-type": "text/plain" },
    });
    assert.equal(echo.status, 200);
    assert.equal(await echo.text(), body);
  });
}

test("a Koa app's callback() and a node:http Server are Node listeners", async () => {
  const Koa = (await import("koa")).default;
  const koa = new Koa();
  assert.equal((await resolveApp(koa.callback())).kind, "node");
  const server = createServer((_req, res) => res.end("s"));
  assert.equal((await resolveApp(server)).kind, "node");
  await assert.rejects(resolveApp(createServer()), /node:http Server with no request listener/);
});

test("upgrades: a node:http Server and a Fastify instance name their server; others none", async () => {
  const server = createServer((_req, res) => res.end("s"));
  const app = await resolveApp(server);
  assert.equal(app.kind === "node" && app.upgrades, server);
  const Fastify = (await import("fastify")).default;
  const fastify = Fastify();
  const f = await resolveApp(fastify);
  assert.equal(f.kind === "node" && f.upgrades, fastify.server);
  await fastify.close();
  const bare = await resolveApp((_req: unknown, _res: unknown) => {});
  assert.equal(bare.kind === "node" ? bare.upgrades : "fetch", undefined);
});

test("bare functions: one parameter is fetch, two are (req, res), markers override", async () => {
  assert.equal((await resolveApp((_r: Request) => new Response("a"))).kind, "fetch");
  assert.equal((await resolveApp(() => new Response("a"))).kind, "fetch");
  assert.equal((await resolveApp((_req: unknown, _res: unknown) => {})).kind, "node");
  const declared = defineApp((_request: Request, _ctx: unknown) => new Response("a"));
  assert.equal((await resolveApp(declared)).kind, "fetch");
  assert.equal((await resolveApp(defineApp({ fetch: () => new Response("b") }))).kind, "fetch");
  const oneArgListener = nodeListener((req) => req.resume());
  assert.equal((await resolveApp(oneArgListener)).kind, "node");
});

test("unknown shapes are rejected with what was found", async () => {
  await assert.rejects(resolveApp("app"), (err: unknown) => {
    assert.ok(err instanceof AppShapeError);
    assert.match(err.message, /found a string \(app\); accepted: a fetch handler/);
    return true;
  });
  await assert.rejects(resolveApp(class App {}), /found a class App \(export an instance\)/);
  await assert.rejects(resolveApp(Promise.resolve(1)), /a Promise \(use `module:factory\(\)`/);
  await assert.rejects(resolveApp({ handler() {} }), /found an object with keys handler/);
});

test("a two-parameter fetch handler without defineApp gets a 500 and a hint in the log", async (t) => {
  const { logger, lines } = captureLogger();
  const app = await resolveApp(async (_request: Request, _ctx: unknown) => new Response("hi"));
  assert.equal(app.kind, "node");
  const { url } = await serve(t, toNodeListener(app, { logger }));
  const res = await fetch(url);
  assert.equal(res.status, 500);
  await res.text();
  assert.ok(lines.some((l) => l.level === "error" && /export defineApp\(handler\)/.test(l.msg)));
});
