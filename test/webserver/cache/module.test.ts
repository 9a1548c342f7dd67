/**
 * The cache module in process, around a recording content handler: what the fill request
 * looks like (HEAD as GET, the client's conditionals and Range removed), and the
 * `brigade.cache` diagnostics channel.
 */
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { test } from "node:test";
import { createLogger } from "../../../src/core/logger.ts";
import { cacheModule } from "../../../src/webserver/cache/index.ts";
import { Fields, type WebRequest, type WebResponse } from "../../../src/webserver/exchange.ts";
import type { ContentHandler, LocationScope } from "../../../src/webserver/module.ts";

async function cached(inner: ContentHandler, settings: Record<string, unknown> = {}) {
  const closers: (() => unknown)[] = [];
  const scope = {
    settings: { cache: true, cacheMemorySize: 1 << 20, ...settings },
    own: {},
    location: { path: "test", match: "/" },
    serverNames: [],
    logger: createLogger({ level: "fatal", format: "text" }),
    resolvePath: (p: string) => p,
    services: new Map(),
    onClose: (fn: () => unknown) => closers.push(fn),
    onReopen: () => {},
    serving: true,
    shared: new Map(),
  } as unknown as LocationScope<Record<string, unknown>>;
  const h = await cacheModule.setup(scope);
  assert.ok(h?.wrapContent);
  return {
    handler: h.wrapContent(inner),
    close: async () => {
      for (const fn of closers) await fn();
    },
  };
}

function request(method: string, target: string, fields: Record<string, string> = {}): WebRequest {
  const [path, query = ""] = target.split("?") as [string, string?];
  return {
    method,
    target,
    httpVersion: "1.1",
    fields: Fields.from({ host: "example.test", ...fields }),
    host: "example.test",
    scheme: "http",
    connection: {
      id: 1,
      remoteAddress: "127.0.0.1",
      remotePort: 1,
      localAddress: "127.0.0.1",
      localPort: 80,
      listener: "test",
      tls: undefined,
      requests: 0,
    },
    path,
    query,
    body: {
      length: 0,
      empty: true,
      consumed: false,
      stream: () => {
        throw new Error("no body");
      },
      buffer: async () => Buffer.alloc(0),
      discard: async () => {},
    },
    signal: new AbortController().signal,
    clientGone: new AbortController().signal,
    aborted: false,
    startTime: Date.now(),
    id: "0".repeat(32),
    vars: new Map(),
    canTakeover: false,
  };
}

test("fills go without the client's conditionals and Range, HEAD as GET", async () => {
  const seen: WebRequest[] = [];
  const { handler, close } = await cached(async (req) => {
    seen.push(req);
    return {
      status: 200,
      fields: Fields.from({ "cache-control": "max-age=60", etag: '"e"' }),
      body: { kind: "bytes", data: "hello" },
    };
  });
  const res = (await handler(
    request("HEAD", "/a", { "if-none-match": '"x"', range: "bytes=0-1", accept: "*/*" }),
  )) as WebResponse;
  assert.equal(res.status, 206, "the range is answered from the whole response");
  assert.equal(res.fields.get("content-range"), "bytes 0-1/5");
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.method, "GET");
  assert.equal(seen[0]!.fields.get("if-none-match"), undefined);
  assert.equal(seen[0]!.fields.get("range"), undefined);
  assert.equal(seen[0]!.fields.get("accept"), "*/*");
  const hit = (await handler(request("GET", "/a"))) as WebResponse;
  assert.equal(hit.body.kind === "bytes" && String(hit.body.data), "hello");
  assert.equal(seen.length, 1);
  await close();
});

test("every cached response is published on the brigade.cache channel", async () => {
  const events: { status?: string; path: string }[] = [];
  const listener = (m: unknown) => events.push(m as { status?: string; path: string });
  subscribe("brigade.cache", listener);
  try {
    const { handler, close } = await cached(async () => ({
      status: 200,
      fields: Fields.from({ "cache-control": "max-age=60" }),
      body: { kind: "bytes", data: "x" },
    }));
    await handler(request("GET", "/d"));
    await handler(request("GET", "/d"));
    await handler(request("POST", "/d"));
    assert.deepEqual(
      events.map((e) => [e.status, e.path]),
      [
        ["MISS", "/d"],
        ["HIT", "/d"],
        [undefined, "/d"],
      ],
    );
    await close();
  } finally {
    unsubscribe("brigade.cache", listener);
  }
});

test("a fresh hit from the memory tier is answered at once (no promise), with its stored bytes shared; anything else still waits", async () => {
  let fills = 0;
  const { handler, close } = await cached(async (req) => {
    fills++;
    const lang = req.fields.get("accept-language") ?? "";
    return {
      status: 200,
      fields: Fields.from({
        "cache-control": req.path === "/nc" ? "no-cache" : "max-age=60",
        "content-type": "text/plain",
        age: "5",
        ...(req.path === "/v" ? { vary: "accept-language" } : {}),
      }),
      body: { kind: "bytes", data: Buffer.from(`${req.path} ${lang}`) },
    };
  });
  const sync = (r: ReturnType<typeof handler>): WebResponse => {
    assert.ok(!(r instanceof Promise), "answered without a promise");
    return r as WebResponse;
  };
  const miss = handler(request("GET", "/a"));
  assert.ok(miss instanceof Promise, "a miss goes upstream");
  await miss;
  const hit = sync(handler(request("GET", "/a")));
  assert.equal(hit.status, 200);
  assert.ok(hit.body.kind === "bytes" && hit.body.shared, "the stored bytes never change");
  assert.equal(String(hit.body.kind === "bytes" && hit.body.data), "/a ");
  // The stored fields, the stored Age replaced by ours, then accept-ranges and Cache-Status.
  assert.deepEqual(
    hit.fields.list.filter((_, i) => i % 2 === 0),
    ["cache-control", "content-type", "age", "accept-ranges", "cache-status"],
  );
  assert.ok(Number(hit.fields.get("age")) >= 5);
  assert.match(hit.fields.get("cache-status") ?? "", /^brigade; hit; ttl=\d+$/);
  // HEAD, a Range and a client's conditional are answered at once too.
  assert.equal(sync(handler(request("HEAD", "/a"))).status, 200);
  assert.equal(sync(handler(request("GET", "/a", { range: "bytes=0-0" }))).status, 206);
  // A Vary resource: the request's variant, when memory holds it; another variant is a fill.
  await handler(request("GET", "/v", { "accept-language": "en" }));
  const en = sync(handler(request("GET", "/v", { "accept-language": "en" })));
  assert.equal(String(en.body.kind === "bytes" && en.body.data), "/v en");
  const fr = handler(request("GET", "/v", { "accept-language": "fr" }));
  assert.ok(fr instanceof Promise, "an unknown variant goes upstream");
  const frRes = (await fr) as WebResponse;
  assert.equal(String(frRes.body.kind === "bytes" && frRes.body.data), "/v fr");
  // A request that asks for validation, and a no-cache response, are not answered at once.
  const before = fills;
  const reload = handler(request("GET", "/a", { "cache-control": "no-cache" }));
  assert.ok(reload instanceof Promise);
  await reload;
  await handler(request("GET", "/nc"));
  const nc = handler(request("GET", "/nc"));
  assert.ok(nc instanceof Promise, "a no-cache response is validated before each use");
  await nc;
  assert.equal(fills, before + 3);
  await close();
});
