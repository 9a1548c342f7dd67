/**
 * The fetch → Node bridge over real sockets: streaming both ways, aborts on disconnect and
 * deadline, error isolation, waitUntil, HEAD, Set-Cookie, framing.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import { before, describe, test } from "node:test";
import type { AppContext, BridgeOptions, FetchHandler } from "../../src/gateway/index.ts";
import {
  fetchToNodeListener,
  LightResponse,
  NativeResponse,
  nodeListener,
  PendingWork,
  toRequest,
  wrapNodeListener,
} from "../../src/gateway/index.ts";
import { captureLogger, serve } from "./serve.ts";

/** Resolve when `signal` aborts, with its reason. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener("abort", () => resolve(signal.reason), { once: true });
  });
}

/** A deferred value the test controls. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function get(url: string, init: { method?: string; headers?: Record<string, string> } = {}) {
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(url, { method: init.method ?? "GET", headers: init.headers }, resolve);
    req.on("error", reject);
    req.end();
  });
}

async function bodyOf(res: IncomingMessage): Promise<string> {
  let s = "";
  for await (const chunk of res) s += String(chunk);
  return s;
}

// Every behaviour holds with undici's own Response and with the light one the bridge installs.
// The native suite runs first: tests in a file run in order, and the light one is global.
for (const fastResponse of [false, true]) {
  describe(fastResponse ? "with the light Response" : "with undici's Response", () => {
    const bridge = (handler: FetchHandler, options: BridgeOptions = {}) =>
      fetchToNodeListener(handler, { fastResponse, ...options });
    before(() => {
      if (!fastResponse) globalThis.Response = NativeResponse;
    });

    test("responses are of the expected class", async (t) => {
      let made: unknown;
      const { url } = await serve(
        t,
        bridge(() => {
          made = new Response("x");
          return made as Response;
        }),
      );
      await (await fetch(url)).text();
      assert.equal(LightResponse.isLight(made), fastResponse);
      assert.ok(made instanceof NativeResponse);
    });

    test("request and response bodies stream: each chunk is echoed before the next is sent", async (t) => {
      const handler: FetchHandler = (request) => new Response(request.body);
      const { url } = await serve(t, bridge(handler));
      const req = httpRequest(`${url}/echo`, { method: "POST" });
      req.flushHeaders();
      const [res] = (await once(req, "response")) as [IncomingMessage];
      assert.equal(res.headers["transfer-encoding"], "chunked");
      const iter = res[Symbol.asyncIterator]();
      for (const part of ["one", "two", "three"]) {
        req.write(part);
        // Only possible if the server read this chunk and wrote it back before the rest exists.
        let got = "";
        while (got.length < part.length) got += String((await iter.next()).value);
        assert.equal(got, part);
      }
      req.end();
      assert.equal((await iter.next()).done, true);
    });

    test("a string body is written in one go with Content-Length; a stream is chunked", async (t) => {
      const handler: FetchHandler = (request) => {
        if (new URL(request.url).pathname === "/stream") {
          let n = 0;
          return new Response(
            new ReadableStream({
              async pull(c) {
                await new Promise((r) => setTimeout(r, 1));
                c.enqueue(new TextEncoder().encode(`s${++n}`));
                if (n === 2) c.close();
              },
            }),
          );
        }
        return new Response("héllo");
      };
      const { url } = await serve(t, bridge(handler));
      const one = await get(`${url}/`);
      assert.equal(one.headers["content-length"], "6");
      assert.equal(one.headers["transfer-encoding"], undefined);
      assert.equal(await bodyOf(one), "héllo");
      const bytes = await fetch(url);
      assert.equal(await bytes.text(), "héllo");
      const streamed = await get(`${url}/stream`);
      assert.equal(streamed.headers["transfer-encoding"], "chunked");
      assert.equal(await bodyOf(streamed), "s1s2");
    });

    test("a client that disconnects mid-stream aborts request.signal and cancels the body", async (t) => {
      const signalAborted = deferred<unknown>();
      const bodyCancelled = deferred<unknown>();
      const handler: FetchHandler = (request) => {
        aborted(request.signal).then(signalAborted.resolve, () => {});
        return new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(new TextEncoder().encode("first chunk"));
            },
            cancel: (reason) => bodyCancelled.resolve(reason),
          }),
        );
      };
      const { url } = await serve(t, bridge(handler));
      const req = httpRequest(url);
      req.on("error", () => {});
      req.end();
      const [res] = (await once(req, "response")) as [IncomingMessage];
      await once(res, "data");
      req.destroy();
      const reason = (await signalAborted.promise) as DOMException;
      assert.equal(reason.name, "AbortError");
      assert.equal(((await bodyCancelled.promise) as DOMException).name, "AbortError");
    });

    test("the deadline answers 504, aborts the signal, and the server lives on", async (t) => {
      const reasons: unknown[] = [];
      const { logger, lines } = captureLogger();
      const handler: FetchHandler = async (request) => {
        const path = new URL(request.url).pathname;
        if (path === "/ok") return new Response("fine");
        reasons.push(await aborted(request.signal));
        return new Response("too late"); // dropped: the 504 went out already
      };
      const { url } = await serve(t, bridge(handler, { requestTimeout: 0.2, logger }));
      const res = await fetch(`${url}/hang`);
      assert.equal(res.status, 504);
      await res.text();
      assert.equal((reasons[0] as DOMException).name, "TimeoutError");
      assert.ok(lines.some((l) => l.level === "warn" && l.msg === "request deadline passed"));
      const ok = await fetch(`${url}/ok`);
      assert.equal(await ok.text(), "fine");
    });

    test("a deadline after the headers went out destroys the connection", async (t) => {
      const handler: FetchHandler = () =>
        new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(new TextEncoder().encode("partial"));
            },
          }),
        );
      const { url } = await serve(
        t,
        bridge(handler, { requestTimeout: 0.2, logger: captureLogger().logger }),
      );
      const res = await get(url);
      assert.equal(res.statusCode, 200);
      await assert.rejects(bodyOf(res), /aborted|ECONNRESET/);
    });

    test("a throw, a rejection or a non-Response is a 500 for that request only, logged", async (t) => {
      const { logger, lines } = captureLogger();
      const handler: FetchHandler = (request) => {
        const path = new URL(request.url).pathname;
        if (path === "/throw") throw new Error("sync boom");
        if (path === "/reject") return Promise.reject(new Error("async boom"));
        if (path === "/nothing") return { not: "a response" } as unknown as Response;
        return new Response("still fine");
      };
      const { url } = await serve(t, bridge(handler, { logger }));
      for (const path of ["/throw", "/reject", "/nothing"]) {
        const res = await fetch(url + path);
        assert.equal(res.status, 500, path);
        assert.equal(await res.text(), "Internal Server Error\n");
      }
      assert.equal(await (await fetch(`${url}/`)).text(), "still fine");
      const errors = lines.filter((l) => l.level === "error");
      assert.equal(errors.length, 3);
      assert.match((errors[0]!.fields.err as Error).stack ?? "", /sync boom\n\s+at handler/);
      assert.match((errors[1]!.fields.err as Error).message, /async boom/);
      assert.match(errors[2]?.msg ?? "", /returned no Response/);
      assert.equal(errors[2]?.fields.found, "an object (Object)");
    });

    test("waitUntil work is tracked until it settles, after the response", async (t) => {
      const { logger, lines } = captureLogger();
      const pending = new PendingWork(logger);
      const gate = deferred<void>();
      let finished = false;
      const handler: FetchHandler = (_request, ctx) => {
        ctx.waitUntil(
          gate.promise.then(() => {
            finished = true;
          }),
        );
        ctx.waitUntil(Promise.reject(new Error("logged, not thrown")));
        return new Response("sent first");
      };
      const listener = bridge(handler, { pending });
      assert.equal(listener.pending, pending);
      const { url } = await serve(t, listener);
      assert.equal(await (await fetch(url)).text(), "sent first");
      assert.equal(pending.size, 1);
      assert.ok(lines.some((l) => l.msg === "waitUntil work failed"));
      assert.equal(await pending.settled(20), false);
      assert.equal(finished, false);
      gate.resolve();
      assert.equal(await pending.settled(), true);
      assert.equal(finished, true);
      assert.equal(pending.size, 0);
    });

    test("HEAD gets the status and headers but no body", async (t) => {
      let bodyCancelled = false;
      const handler: FetchHandler = () =>
        new Response(
          new ReadableStream({
            pull(c) {
              c.enqueue(new TextEncoder().encode("never sent"));
            },
            cancel() {
              bodyCancelled = true;
            },
          }),
          { status: 203, headers: { "x-kind": "head" } },
        );
      const { port } = await serve(t, bridge(handler));
      const socket = connect(port, "127.0.0.1");
      t.after(() => socket.destroy());
      socket.end("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      let raw = "";
      for await (const chunk of socket) raw += String(chunk);
      const [head, body] = raw.split("\r\n\r\n");
      assert.match(head ?? "", /^HTTP\/1\.1 203 /);
      assert.match(head ?? "", /x-kind: head/);
      assert.equal(body, "");
      assert.equal(bodyCancelled, true);
    });

    test("a header value HTTP cannot carry is a 500, not a crash", async (t) => {
      const { logger, lines } = captureLogger();
      const handler: FetchHandler = () => new Response("x", { headers: { "x-bad": "a\u0000b" } });
      const { url } = await serve(t, bridge(handler, { logger }));
      const res = await fetch(url);
      assert.equal(res.status, 500);
      await res.text();
      assert.equal(lines.filter((l) => l.level === "error").length, 1);
    });

    test("several Set-Cookie headers all reach the client", async (t) => {
      const handler: FetchHandler = () => {
        const headers = new Headers();
        headers.append("set-cookie", "a=1; Path=/");
        headers.append("set-cookie", "b=2; HttpOnly");
        headers.append("set-cookie", "c=3, with comma; Secure");
        return new Response("ok", { headers });
      };
      const { url } = await serve(t, bridge(handler));
      const res = await get(url);
      assert.deepEqual(res.headers["set-cookie"], [
        "a=1; Path=/",
        "b=2; HttpOnly",
        "c=3, with comma; Secure",
      ]);
      await bodyOf(res);
    });

    test("the lazy request behaves as a Request", async (t) => {
      const seen: Record<string, unknown> = {};
      const handler: FetchHandler = async (request: Request, ctx: AppContext) => {
        seen.isRequest = request instanceof Request;
        seen.tag = Object.prototype.toString.call(request);
        seen.method = request.method;
        seen.url = request.url;
        seen.header = request.headers.get("x-test");
        seen.json = await request.json();
        seen.bodyUsed = request.bodyUsed;
        seen.cache = request.cache;
        seen.real = toRequest(request) instanceof Request;
        seen.serverPort = ctx.serverPort;
        seen.serverName = ctx.serverName;
        seen.tls = ctx.tls;
        return Response.json(seen);
      };
      const { url, port } = await serve(t, bridge(handler));
      const res = await fetch(`${url}/p?q=1`, {
        method: "POST",
        body: JSON.stringify({ a: [1, 2] }),
        headers: { "x-test": "yes" },
      });
      assert.deepEqual(await res.json(), {
        isRequest: true,
        tag: "[object Request]",
        method: "POST",
        url: `http://127.0.0.1:${port}/p?q=1`,
        header: "yes",
        json: { a: [1, 2] },
        bodyUsed: true,
        cache: "default",
        real: true,
        serverPort: port,
        serverName: "127.0.0.1",
      });
    });
  });
}

test("Node listeners get the deadline and error isolation too; a late write is harmless", async (t) => {
  const { logger, lines } = captureLogger();
  const lateWrite = deferred<unknown>();
  const listener = nodeListener((req, res) => {
    if (req.url === "/throw") throw new Error("listener boom");
    if (req.url === "/ok") {
      res.end("fine");
      return;
    }
    res.once("finish", () => {
      // The 504 went out; the app answering now must neither throw nor reach the client.
      try {
        res.setHeader("x-late", "1");
        res.end("late");
        lateWrite.resolve("no throw");
      } catch (err) {
        lateWrite.resolve(err);
      }
    });
  });
  const { url } = await serve(t, wrapNodeListener(listener, { requestTimeout: 0.2, logger }));
  const slow = await fetch(`${url}/slow`);
  assert.equal(slow.status, 504);
  assert.equal(await slow.text(), "Gateway Timeout\n");
  assert.equal(await lateWrite.promise, "no throw");
  const thrown = await fetch(`${url}/throw`);
  assert.equal(thrown.status, 500);
  await thrown.text();
  const logged = lines.find((l) => l.level === "error");
  assert.match((logged?.fields.err as Error | undefined)?.message ?? "", /listener boom/);
  assert.equal(await (await fetch(`${url}/ok`)).text(), "fine");
});
