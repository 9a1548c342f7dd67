/**
 * Every example app (bare fetch handler, Express, Koa, Fastify, Hono) under the real
 * `brigade app`, on a unix socket and on TCP, then through real nginx (Debian) in front of it, the
 * way it runs in production: nginx proxies to the unix sockets with keep-alive upstream
 * connections and passes the client's address, which the app sees (the unix peer is trusted).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { requireTool, startNginx } from "../helpers/peers.ts";
import { request, root, startApp, tempDir } from "./harness.ts";

const examples = [
  { name: "fetch", file: "examples/hello-fetch.ts", hello: "Hello from Brigade!\n", json: {} },
  {
    name: "express",
    file: "examples/express.ts",
    hello: "Hello from Express on Brigade!\n",
    json: { framework: "express" },
  },
  {
    name: "koa",
    file: "examples/koa.ts",
    hello: "Hello from Koa on Brigade!\n",
    json: { framework: "koa" },
  },
  {
    name: "fastify",
    file: "examples/fastify.ts",
    hello: "Hello from Fastify on Brigade!\n",
    json: { framework: "fastify" },
  },
  {
    name: "hono",
    file: "examples/hono.ts",
    hello: "Hello from Hono on Brigade!\n",
    json: { framework: "hono" },
  },
];

test("the example apps run under brigade app, directly and behind real nginx", async (t) => {
  const nginx = requireTool(t, "nginx");
  const dir = tempDir(t);
  const apps = await Promise.all(
    examples.map((e) =>
      startApp(
        t,
        [
          join(root, e.file),
          "-w",
          "1",
          "-b",
          `unix:${join(dir, `${e.name}.sock`)}`,
          "-b",
          "127.0.0.1:0",
        ],
        { cwd: root },
      ),
    ),
  );
  const body = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
  for (const [i, e] of examples.entries()) {
    const app = apps[i]!;
    for (const target of [
      { port: app.port },
      { port: 0, socketPath: join(dir, `${e.name}.sock`) },
    ]) {
      const hello = await request(target.port, "/", { socketPath: target.socketPath });
      assert.equal(hello.status, 200, `${e.name} /`);
      assert.equal(hello.body, e.hello);
      const json = await request(target.port, "/json", { socketPath: target.socketPath });
      assert.equal(json.status, 200);
      assert.match(String(json.headers["content-type"]), /^application\/json/);
      const parsed = JSON.parse(json.body) as Record<string, unknown>;
      assert.equal(parsed.hello, "world");
      for (const [k, v] of Object.entries(e.json)) assert.equal(parsed[k], v, `${e.name} ${k}`);
      const echo = await request(target.port, "/echo", {
        method: "POST",
        body,
        headers: { "content-type": "application/octet-stream" },
        socketPath: target.socketPath,
      });
      assert.equal(echo.status, 200, `${e.name} /echo: ${echo.body.slice(0, 200)}`);
      assert.ok(echo.bytes.equals(body), `${e.name} echoes the body byte for byte`);
    }
  }
  if (!nginx) return;

  const upstreams = examples
    .map((e) => `  upstream ${e.name} { server unix:${join(dir, `${e.name}.sock`)}; keepalive 8; }`)
    .join("\n");
  const locations = examples
    .map(
      (e) => `    location /${e.name}/ {
      proxy_pass http://${e.name}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For 198.51.100.7;
      proxy_set_header X-Forwarded-Proto https;
    }`,
    )
    .join("\n");
  const proxy = await startNginx(t, { http: upstreams, serverBlock: locations });
  for (const e of examples) {
    for (let i = 0; i < 3; i++) {
      const hello = await request(proxy.port, `/${e.name}/`);
      assert.equal(hello.status, 200, `nginx -> ${e.name}: ${hello.body}`);
      assert.equal(hello.body, e.hello);
    }
    const echo = await request(proxy.port, `/${e.name}/echo`, {
      method: "POST",
      body: "through nginx",
      headers: { "content-type": "text/plain" },
    });
    assert.equal(echo.body, "through nginx");
    const json = JSON.parse((await request(proxy.port, `/${e.name}/json`)).body);
    assert.equal(json.hello, "world");
    // The fetch and Hono examples report ctx.remoteAddress: the forwarded client, since the
    // unix-socket peer (nginx) is trusted by default.
    if ("client" in json) assert.equal(json.client, "198.51.100.7", e.name);
  }
  for (const app of apps) assert.equal(await app.stop(), 0, app.output());
});
