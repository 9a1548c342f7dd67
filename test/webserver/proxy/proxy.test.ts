/**
 * The proxy module on real sockets (the engine in this process, upstreams on loopback): URI
 * mapping, header fields both ways, rewriting, buffering both ways, bad upstream responses,
 * errors and timeouts, X-Accel-Redirect, intercepted errors, WebSocket tunnels, event streams.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { requireTool } from "../../helpers/peers.ts";
import { waitFor } from "../../helpers/process.ts";
import { exchange, request, selfSigned, startEngine, tempDir } from "../helpers.ts";
import {
  type Echoed,
  get,
  oneLocation,
  rawUpstream,
  serve,
  upstream,
  wsEchoUpstream,
} from "./helpers.ts";

test("URI mapping: with and without a URI part, exact and regex locations, rewrites", async (t) => {
  const up = await upstream(t);
  const base = `http://${up.address}`;
  const s = await serve(t, {
    servers: [
      {
        locations: [
          { match: "/plain/", proxy: base },
          { match: "/api/", proxy: `${base}/v1/` },
          { match: "= /exact", proxy: `${base}/other` },
          { match: "~ \\.php$", proxy: base },
          { match: "/rw/", rewrite: ["^/rw/(.*)$ /new/$1 break"], proxy: `${base}/ignored/` },
          { match: "/unix-style/", proxy: `http://${up.address}/u/` },
        ],
      },
    ],
  } as never);
  const url = async (path: string) =>
    (JSON.parse((await request(s.port, path)).text) as Echoed).url;
  // Without a URI part: as the client sent it (encoding and dots kept).
  assert.equal(await url("/plain/a%20b/../c?x=1&y"), "/plain/a%20b/../c?x=1&y");
  // With one: the location's prefix replaced in the normalised path, the rest re-encoded.
  assert.equal(await url("/api/users/7?sort=asc"), "/v1/users/7?sort=asc");
  assert.equal(await url("/api/a%20b"), "/v1/a%20b");
  assert.equal(await url("/api/"), "/v1/");
  assert.equal(await url("/exact?q"), "/other?q");
  assert.equal(await url("/x/index.php?a=1"), "/x/index.php?a=1");
  // After a rewrite (break): the changed URI whole, the URI part ignored (nginx).
  assert.equal(await url("/rw/thing?k=v"), "/new/thing?k=v");
  assert.equal(await url("/unix-style/z"), "/u/z");
});

test("a regex location with a URI part, or an unknown group, is refused at setup", async (t) => {
  await assert.rejects(
    serve(t, {
      servers: [{ locations: [{ match: "~ ^/a", proxy: "http://127.0.0.1:9/b/" }] }],
    } as never),
    /regex location takes no URI part/,
  );
  await assert.rejects(
    serve(t, {
      upstreams: { app: { peers: ["127.0.0.1:9"] } },
      servers: [{ locations: [{ match: "/", proxy: "ap" }] }],
    } as never),
    /no upstream group "ap" in web.upstreams \(did you mean "app"\?\)/,
  );
});

test("request headers: Host passed, forwarding headers, hop-by-hop and Connection-named fields dropped, rules", async (t) => {
  const up = await upstream(t);
  const s = await serve(t, {
    servers: [
      {
        locations: [
          { match: "/", proxy: `http://${up.address}` },
          {
            match: "/rules/",
            proxy: `http://${up.address}`,
            proxyForwardedHeaders: ["x-forwarded-for", "forwarded"],
            proxySetHeaders: {
              host: "$proxy_host",
              "x-request-id": "$request_id",
              "user-agent": "",
            },
          },
        ],
      },
    ],
  } as never);
  const r = await request(s.port, "/h", {
    host: "example.test:8443",
    headers: {
      Connection: "keep-alive, X-Secret",
      "X-Secret": "hop",
      "Keep-Alive": "timeout=5",
      TE: "trailers",
      "Proxy-Connection": "keep-alive",
      "X-Forwarded-For": "203.0.113.9",
      "X-Forwarded-Proto": "forged",
      "X-Real-IP": "forged",
      "User-Agent": "test",
    },
  });
  const e = JSON.parse(r.text) as Echoed;
  assert.equal(e.headers.host, "example.test:8443");
  assert.equal(e.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
  assert.equal(e.headers["x-forwarded-proto"], "http");
  assert.equal(e.headers["x-forwarded-host"], "example.test:8443");
  assert.equal(e.headers["x-forwarded-port"], String(s.port));
  assert.equal(e.headers["x-real-ip"], "127.0.0.1");
  assert.equal(e.headers["user-agent"], "test");
  for (const h of ["x-secret", "te", "proxy-connection", "forwarded"]) {
    assert.equal(e.headers[h], undefined, h);
  }
  const r2 = await request(s.port, "/rules/x", {
    host: "example.test",
    headers: { "User-Agent": "test", Forwarded: "for=198.51.100.1" },
  });
  const e2 = JSON.parse(r2.text) as Echoed;
  assert.equal(e2.headers.host, up.address, "$proxy_host");
  assert.match(String(e2.headers["x-request-id"]), /^[0-9a-f]{32}$/);
  assert.equal(e2.headers["user-agent"], undefined, "an empty value removes");
  assert.equal(
    e2.headers.forwarded,
    "for=198.51.100.1, for=127.0.0.1;proto=http;host=example.test",
  );
  assert.equal(e2.headers["x-real-ip"], undefined, "not in the list");
});

test("response headers: hop-by-hop and hidden ones dropped, Location and cookies rewritten", async (t) => {
  const up = await upstream(t, (req, res) => {
    res.setHeader("connection", "close, x-hop");
    res.setHeader("x-hop", "1");
    res.setHeader("server", "gunicorn");
    res.setHeader("x-accel-limit-rate", "1");
    res.setHeader("x-powered-by", "app");
    res.setHeader("x-keep", "yes");
    res.setHeader("location", `http://127.0.0.1:${req.socket.localPort ?? 0}/v1/next?a=1`);
    res.setHeader("set-cookie", [
      "sid=1; Domain=app.internal; Path=/v1/; HttpOnly",
      "other=2; path=/v1/x",
    ]);
    res.writeHead(302);
    res.end();
  });
  const s = await serve(t, {
    servers: [
      {
        locations: [
          {
            match: "/api/",
            proxy: `http://${up.address}/v1/`,
            proxyHideHeaders: ["x-powered-by"],
            proxyPassHeaders: ["server"],
            proxyCookieDomain: [{ from: "app.internal", to: "$host" }],
            proxyCookiePath: [{ from: "/v1/", to: "/api/" }],
          },
          { match: "/off/", proxy: `http://${up.address}/v1/`, proxyRedirect: false },
        ],
      },
    ],
  } as never);
  const r = await request(s.port, "/api/go", { host: "www.example.test" });
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, "/api/next?a=1", "proxyRedirect default");
  assert.equal(r.headers["x-hop"], undefined);
  assert.equal(r.headers["x-accel-limit-rate"], undefined);
  assert.equal(r.headers["x-powered-by"], undefined);
  assert.equal(r.headers["x-keep"], "yes");
  assert.equal(r.headers.server, "gunicorn", "passed");
  assert.equal(
    r.headers["set-cookie"],
    "sid=1; Domain=www.example.test; Path=/api/; HttpOnly, other=2; path=/api/x",
  );
  const off = await request(s.port, "/off/go");
  assert.equal(off.headers.location, `http://${up.address}/v1/next?a=1`);
  assert.equal(off.headers.server, "brigade", "upstream Server hidden by default");
});

test("request buffering: memory, then a temp file; the upstream gets a length; 413 over the limit", async (t) => {
  let seenLength: string | undefined;
  let seenChunked: string | undefined;
  const up = await upstream(t, (req, res, body) => {
    seenLength = req.headers["content-length"];
    seenChunked = req.headers["transfer-encoding"];
    res.end(`${body.length} ${body.subarray(0, 4).toString()}${body.subarray(-4).toString()}`);
  });
  const s = await serve(t, {
    clientMaxBodySize: "2m",
    ...oneLocation(`http://${up.address}`, { clientBodyBufferSize: "8k" }),
  } as never);
  const big = Buffer.concat([Buffer.from("HEAD"), Buffer.alloc(300_000, 120), Buffer.from("TAIL")]);
  const r = await get(`${s.url}/up`, { method: "POST", body: big });
  assert.equal(r.text, `${big.length} HEADTAIL`);
  assert.equal(seenLength, String(big.length));
  // A chunked upload is buffered and sent with a Content-Length (nginx does the same).
  const chunked = await exchange(
    s.port,
    "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nABCD\r\n3\r\nxyz\r\n0\r\n\r\n",
  );
  assert.equal(chunked.responses[0]?.text, "7 ABCDDxyz");
  assert.equal(seenLength, "7");
  assert.equal(seenChunked, undefined);
  const before = up.count;
  const tooBig = await get(`${s.url}/up`, { method: "POST", body: Buffer.alloc(3_000_000) }).catch(
    (e: Error) => ({ status: -1, text: e.message }),
  );
  // 413 (or the connection closed while the client was still sending): never the upstream.
  assert.ok(tooBig.status === 413 || tooBig.status === -1, String(tooBig.status));
  assert.equal(up.count, before);
});

test("bad upstream responses become 502, never a corrupted response", async (t) => {
  const answers: Record<string, string> = {
    "/badline": "HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok",
    "/garbage": "<html>not http</html>\r\n\r\n",
    "/both":
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "/truncated": "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    "/badchunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    "/good": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
  };
  const up = await rawUpstream(t, (socket, head) => {
    const path = head.split(" ")[1] ?? "/";
    socket.end(answers[path] ?? "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  });
  const s = await serve(t, oneLocation(`http://${up.address}`));
  for (const path of ["/badline", "/garbage", "/both", "/truncated", "/badchunk"]) {
    const r = await request(s.port, path);
    assert.equal(r.status, 502, path);
    assert.doesNotMatch(r.text, /hello|only this|ok/, path);
  }
  assert.equal((await request(s.port, "/good")).text, "ok");
});

test("a body cut short after the head was passed on aborts the client's connection (no look-alike whole response)", async (t) => {
  const up = await rawUpstream(t, (socket) =>
    socket.end("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"),
  );
  const s = await serve(t, oneLocation(`http://${up.address}`, { proxyBuffering: false }));
  const client = net.connect(s.port, "127.0.0.1");
  client.write("GET /cut HTTP/1.1\r\nHost: x\r\n\r\n");
  let got = "";
  client.on("data", (c) => {
    got += c.toString("latin1");
  });
  await new Promise<void>((resolve) => client.once("close", () => resolve()));
  assert.match(got, /^HTTP\/1\.1 200 /);
  const [head, body = ""] = got.split("\r\n\r\n");
  assert.match(head!, /content-length: 100/i);
  assert.ok(body.length < 100, "the connection closed before the declared length");
});

test("errors: refused 502, read timeout 504, both through error pages; a POST to a dead peer is not retried unless configured", async (t) => {
  const closed = await new Promise<number>((resolve) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const silent = await rawUpstream(t, () => {});
  // Sends its head and the start of the body, then nothing.
  const stalls = await rawUpstream(t, (socket) =>
    socket.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
  );
  // Reads the request, then dies without answering.
  const dying = await rawUpstream(t, (socket) => socket.destroy());
  const good = await upstream(t);
  const s = await serve(t, {
    upstreams: {
      pair: { peers: [dying.address, good.address], policy: "roundRobin", maxFails: 0 },
      pairRetry: {
        peers: [dying.address, good.address],
        maxFails: 0,
        retry: { nonIdempotent: true },
      },
    },
    servers: [
      {
        errorPages: ["502 504 @err"],
        locations: [
          { match: "/refused", proxy: `http://127.0.0.1:${closed}` },
          { match: "/slow", proxy: `http://${silent.address}`, proxyReadTimeout: "600ms" },
          {
            match: "/stall",
            proxy: `http://${stalls.address}`,
            proxyReadTimeout: "600ms",
            errorPages: [],
          },
          { match: "/pair", proxy: "pair" },
          { match: "/retry", proxy: "pairRetry" },
          { match: "@err", return: { status: 200, body: "sorry: $upstream_status" } },
        ],
      },
    ],
  } as never);
  const refused = await request(s.port, "/refused");
  assert.equal(refused.text, "sorry: 502");
  const slow = await request(s.port, "/slow");
  assert.equal(slow.text, "sorry: 504");
  const stalled = await request(s.port, "/stall");
  assert.equal(
    stalled.status,
    504,
    "a body that stops is a read timeout, before anything was sent",
  );
  assert.doesNotMatch(stalled.text, /abc/);
  // Round-robin over (dying, good): GETs are retried on the good one, never failing.
  for (let i = 0; i < 4; i++) assert.equal((await get(`${s.url}/pair`)).status, 200);
  // POSTs that reached the dying peer are not sent again: 502 for those.
  const posts = [];
  for (let i = 0; i < 4; i++)
    posts.push((await get(`${s.url}/pair`, { method: "POST", body: "x" })).status);
  assert.deepEqual([...new Set(posts)].sort(), [200, 502], String(posts));
  // With retry.nonIdempotent they are, also when the body was buffered in a temp file (replayed).
  const big = Buffer.alloc(200_000, 7);
  for (let i = 0; i < 4; i++) {
    const r = await get(`${s.url}/retry`, { method: "POST", body: i % 2 ? "x" : big });
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.text) as Echoed).bodyBytes, i % 2 ? 1 : big.length);
  }
});

test("a header made unsendable by a variable (CR/LF through proxySetHeaders) is a 500, logged, not a peer failure, not retried", async (t) => {
  const a = await upstream(t);
  const b = await upstream(t);
  const dir = tempDir(t);
  const errorLog = join(dir, "error.log");
  const accessLog = join(dir, "access.log");
  const s = await startEngine(
    t,
    {
      listen: ["127.0.0.1:0"],
      upstreams: { app: { peers: [a.address, b.address], maxFails: 1, failTimeout: "30s" } },
      servers: [
        {
          accessLog: {
            path: accessLog,
            format: "$request_uri|$status|$upstream_status",
            buffer: 0,
          },
          locations: [{ match: "/", proxy: "app", proxySetHeaders: { "x-original-uri": "$uri" } }],
        },
      ],
    } as never,
    { logFile: errorLog },
  );
  // $uri is the decoded path: %0D%0A becomes CR LF.
  for (let i = 0; i < 3; i++) {
    const r = await request(s.port, "/a%0D%0AX-Injected:%201");
    assert.equal(r.status, 500, r.text);
  }
  assert.equal(a.count + b.count, 0, "nothing went to an upstream");
  // Neither peer was taken out (maxFails 1): both still serve, in turn.
  const served = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const r = await request(s.port, "/fine");
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.text) as Echoed).headers["x-original-uri"], "/fine");
  }
  if (a.count > 0) served.add("a");
  if (b.count > 0) served.add("b");
  assert.equal(served.size, 2, `both peers still up (a ${a.count}, b ${b.count})`);
  const errors = await waitFor(() => {
    const text = existsSync(errorLog) ? readFileSync(errorLog, "utf8") : "";
    const l = text
      .trim()
      .split("\n")
      .filter((x) => x.includes("x-original-uri"));
    return l.length >= 3 ? l : undefined;
  }, "3 error lines");
  for (const line of errors) {
    const rec = JSON.parse(line) as { level: string | number; msg: string };
    assert.ok(rec.level === "error" || rec.level === 50, line);
    assert.match(rec.msg, /invalid value for header "x-original-uri"/);
    assert.match(rec.msg, /while preparing the request to upstream/);
  }
  const text = readFileSync(errorLog, "utf8");
  assert.doesNotMatch(text, /trying the next peer/, "no retry");
  assert.doesNotMatch(text, /temporarily disabled/, "no peer failure");
  const lines = await waitFor(() => {
    const l = existsSync(accessLog) ? readFileSync(accessLog, "utf8").trim().split("\n") : [];
    return l.length >= 7 ? l : undefined;
  }, "7 access lines");
  assert.equal(lines[0], "/a%0D%0AX-Injected:%201|500|500");
});

test("a client that goes away mid-request: the upstream exchange is dropped at once, 499 in the log", async (t) => {
  let upstreamClosed = 0;
  const hang = await rawUpstream(t, (socket) => {
    socket.once("close", () => upstreamClosed++);
  });
  const dir = tempDir(t);
  const log = join(dir, "access.log");
  const s = await serve(t, {
    upstreams: { app: { peers: [hang.address], maxFails: 1, failTimeout: "30s" } },
    servers: [
      {
        accessLog: { path: log, format: "$request_uri|$status", buffer: 0 },
        locations: [{ match: "/", proxy: "app", proxyReadTimeout: "30s" }],
      },
    ],
  } as never);
  for (let i = 0; i < 2; i++) {
    const c = net.connect(s.port, "127.0.0.1");
    c.on("error", () => {});
    await new Promise((r) => c.once("connect", r));
    c.write(`GET /gone${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await waitFor(() => (hang.count > i ? true : undefined), "the request upstream");
    c.destroy();
    await waitFor(() => (upstreamClosed > i ? true : undefined), "the upstream connection dropped");
  }
  const lines = await waitFor(() => {
    const l = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").filter(Boolean) : [];
    return l.length >= 2 ? l : undefined;
  }, "2 log lines");
  assert.deepEqual(lines, ["/gone0|499", "/gone1|499"]);
});

test("the upstream variables in the access log: every attempt's peer and status", async (t) => {
  const dying = await rawUpstream(t, (socket) => socket.destroy());
  const good = await upstream(t);
  const dir = tempDir(t);
  const log = join(dir, "access.log");
  const s = await serve(t, {
    upstreams: {
      app: { peers: [dying.address, good.address], maxFails: 0 },
      dead: { peers: [dying.address], maxFails: 0 },
    },
    servers: [
      {
        accessLog: {
          path: log,
          format:
            "$request_uri|$status|$upstream_addr|$upstream_status|$upstream_response_time|$upstream_header_time|$upstream_response_length",
          buffer: 0,
        },
        locations: [
          { match: "/", proxy: "app" },
          { match: "/dead", proxy: "dead" },
        ],
      },
    ],
  } as never);
  for (let i = 0; i < 4; i++) assert.equal((await get(`${s.url}/v${i}`)).status, 200);
  // Every attempt failed: a 502, its peer, status and time still logged.
  assert.equal((await get(`${s.url}/dead`)).status, 502);
  const all = await waitFor(() => {
    const text = existsSync(log) ? readFileSync(log, "utf8") : "";
    const l = text.trim().split("\n").filter(Boolean);
    return l.length >= 5 ? l : undefined;
  }, "5 log lines");
  const dead = all.find((l) => l.startsWith("/dead|"))!.split("|");
  assert.equal(dead[1], "502");
  assert.equal(dead[2], dying.address);
  assert.equal(dead[3], "502");
  assert.match(dead[4]!, /^\d+\.\d{3}$/);
  const lines = all.filter((l) => !l.startsWith("/dead|"));
  const fields = lines.map((l) => l.split("|"));
  const retried = fields.filter((f) => f[2] === `${dying.address}, ${good.address}`);
  assert.ok(retried.length > 0, lines.join("\n"));
  for (const f of retried) assert.equal(f[3], "502, 200");
  for (const f of fields) {
    assert.equal(f[1], "200");
    assert.match(f[4]!, /^\d+\.\d{3}$/);
    assert.match(f[5]!, /^\d+\.\d{3}$/);
    assert.match(f[6]!, /^\d+$/);
  }
});

test("response buffering: the upstream writes its whole response while the client has not read it", async (t) => {
  // More than loopback socket buffers hold on both hops, so that an unbuffered proxy must wait.
  const size = 32 * 1024 * 1024;
  let finished = false;
  const up = await upstream(t, (_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
    res.end(Buffer.alloc(size, 97));
    res.on("finish", () => {
      finished = true;
    });
  });
  const s = await serve(t, oneLocation(`http://${up.address}`, { proxyBufferSize: "64k" }));
  const client = net.connect(s.port, "127.0.0.1");
  t.after(() => client.destroy());
  let received = 0;
  client.on("data", (c) => {
    received += c.length;
  });
  client.pause();
  client.write("GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  await waitFor(() => finished || undefined, "the upstream to finish writing", 20_000);
  assert.ok(received < size, "the client had not read it all when the upstream was done");
  client.resume();
  await new Promise((r) => client.on("end", r));
  assert.ok(received > size, `whole response received (${received})`);
  // Unbuffered, the upstream waits for the client instead.
  finished = false;
  const s2 = await serve(t, oneLocation(`http://${up.address}`, { proxyBuffering: false }));
  const slow = net.connect(s2.port, "127.0.0.1");
  t.after(() => slow.destroy());
  slow.pause();
  slow.write("GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(finished, false, "without buffering the slow client holds the upstream");
  slow.destroy();
});

test("X-Accel-Redirect goes to an internal location; intercepted errors get our pages", async (t) => {
  const up = await upstream(t, (req, res) => {
    if (req.url === "/download") {
      res.writeHead(200, { "x-accel-redirect": "/protected/file.txt" });
      res.end("ignored");
    } else {
      res.writeHead(503, { "content-type": "text/plain" });
      res.end("upstream's own page");
    }
  });
  const s = await serve(t, {
    servers: [
      {
        errorPages: ["503 @down"],
        locations: [
          { match: "/download", proxy: `http://${up.address}` },
          { match: "/protected/", internal: true, return: { status: 200, body: "the file $uri" } },
          { match: "/fail", proxy: `http://${up.address}`, proxyInterceptErrors: true },
          { match: "/raw", proxy: `http://${up.address}` },
          { match: "@down", return: { status: 503, body: "our page" } },
        ],
      },
    ],
  } as never);
  assert.equal((await request(s.port, "/download")).text, "the file /protected/file.txt");
  assert.equal((await request(s.port, "/protected/file.txt")).status, 404);
  const intercepted = await request(s.port, "/fail");
  assert.equal(intercepted.status, 503);
  assert.equal(intercepted.text, "our page");
  assert.equal((await request(s.port, "/raw")).text, "upstream's own page");
});

test("WebSocket echo through the proxy; a refused upgrade is relayed", async (t) => {
  const up = await wsEchoUpstream(t);
  // A tunnel is a long-lived stream: the read timeout of ordinary requests does not cut it.
  const s = await serve(t, oneLocation(`http://${up.address}`, { proxyReadTimeout: "300ms" }));
  const ws = new WebSocket(`ws://127.0.0.1:${s.port}/chat`);
  const messages: string[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => ws.send("hello");
    ws.onmessage = (m) => {
      messages.push(String(m.data));
      if (messages.length === 1) setTimeout(() => ws.send("x".repeat(300)), 900);
      else resolve();
    };
    ws.onerror = () => reject(new Error("websocket error"));
  });
  ws.close();
  assert.deepEqual(messages, ["echo: hello", `echo: ${"x".repeat(300)}`]);
  assert.equal(up.upgrades, 1);
  const plain = await request(s.port, "/refuse", {
    headers: {
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Key": "x",
      "Sec-WebSocket-Version": "13",
    },
  });
  assert.equal(plain.status, 426, "the upstream refused: its answer is relayed");
});

test("event streams pass through at once, and outlive the read timeout", async (t) => {
  let release: () => void = () => {};
  let sentTwo = false;
  const up = await upstream(t, (_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write("data: one\n\n");
    const timer = setTimeout(() => {
      sentTwo = true;
      res.write("data: two\n\n");
      res.end();
    }, 1500);
    release = () => {
      clearTimeout(timer);
      res.end();
    };
  });
  t.after(() => release());
  const s = await serve(t, oneLocation(`http://${up.address}`, { proxyReadTimeout: "500ms" }));
  const events: string[] = [];
  const res = await fetch(`${s.url}/events`);
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
    for (const m of text.matchAll(/data: (\w+)\n\n/g))
      if (!events.includes(m[1]!)) events.push(m[1]!);
    // The first event arrives while the upstream is still open (not buffered to the end).
    if (events.length === 1) assert.equal(sentTwo, false);
  }
  assert.deepEqual(events, ["one", "two"], "not cut by the 500 ms read timeout");
});

test("an HTTP/2 client through the proxy: an HTTP/1.1 request upstream, cookies joined, https forwarded", async (t) => {
  if (!requireTool(t, "openssl")) return;
  const up = await upstream(t);
  const dir = tempDir(t);
  const { cert } = selfSigned(dir, "p", ["p.test"]);
  const engine = await startEngine(
    t,
    {
      servers: [
        {
          listen: [{ address: "127.0.0.1:0", tls: true }],
          serverName: ["p.test"],
          tls: { cert: "p.crt", key: "p.key" },
          locations: [{ match: "/", proxy: `http://${up.address}` }],
        },
      ],
    } as never,
    { baseDir: dir },
  );
  const session = http2.connect(`https://127.0.0.1:${engine.port}`, {
    servername: "p.test",
    ca: readFileSync(cert),
    checkServerIdentity: () => undefined,
  });
  t.after(() => session.destroy());
  const text = await new Promise<string>((resolve, reject) => {
    const stream = session.request({
      ":path": "/h2?x=1",
      ":authority": "p.test",
      cookie: ["a=1", "b=2"],
    });
    let data = "";
    stream.setEncoding("utf8");
    stream.on("data", (c: string) => {
      data += c;
    });
    stream.on("end", () => resolve(data));
    stream.on("error", reject);
  });
  const e = JSON.parse(text) as Echoed;
  assert.equal(e.url, "/h2?x=1");
  assert.equal(e.headers.cookie, "a=1; b=2");
  assert.equal(e.headers["x-forwarded-proto"], "https");
  assert.equal(e.headers.host, "p.test");
});
