/**
 * The forward proxy with curl as the client, the engine in this process on real sockets:
 * absolute-form forwarding (Via, hop-by-hop fields, Host, bodies, keep-alive both sides),
 * CONNECT tunnels to a real HTTPS server, the client allow-list, ports, destination networks
 * (also behind a name, through a test resolver), domains, authentication, malformed targets,
 * tunnel limits, upstream errors, the access log of a tunnel, a parent proxy and a loop.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import bcrypt from "bcryptjs";
import { requireTool } from "../../helpers/peers.ts";
import { exchange, tempDir } from "../helpers.ts";
import {
  closed,
  curl,
  header,
  rawConnect,
  roundTrip,
  startEcho,
  startOrigin,
  startProxy,
  startTlsOrigin,
} from "./harness.ts";

const loopback = ["127.0.0.0/8"];

test("absolute-form: forwarded with Via and Host, hop-by-hop fields dropped, keep-alive both sides", async (t) => {
  if (!requireTool(t, "curl")) return;
  const origin = await startOrigin(t);
  const proxy = await startProxy(t, {
    forwardProxy: true,
    forwardAllowDestinations: loopback,
  });
  const base = `http://127.0.0.1:${origin.port}`;
  const r = await curl([
    "-x",
    proxy.url,
    `${base}/a?b=1`,
    `${base}/second`,
    "-H",
    "Proxy-Authorization: Basic dTpw",
    "-H",
    "Connection: X-Secret",
    "-H",
    "X-Secret: hop",
    "-H",
    "X-Kept: end-to-end",
  ]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.status, 200);
  assert.match(r.out, /hello GET \/a\?b=1/);
  assert.match(r.out, /hello GET \/second/);
  assert.match(header(r.out, "via") ?? "", /^1\.1 \S+:\d+ \(brigade\)$/);
  // The proxy reused its connection to the origin for the second request.
  assert.equal(origin.seen.length, 2);
  assert.equal(origin.connections, 1, "the second request reused the pooled origin connection");
  const seen = origin.seen[0]!.headers;
  assert.equal(seen.host, `127.0.0.1:${origin.port}`);
  assert.match(String(seen.via), /^1\.1 \S+:\d+ \(brigade\)$/);
  assert.equal(seen["proxy-authorization"], undefined);
  assert.equal(seen["proxy-connection"], undefined);
  assert.equal(seen["x-secret"], undefined, "a field named by Connection is hop-by-hop");
  assert.equal(seen["x-kept"], "end-to-end");
  assert.equal(seen["x-forwarded-for"], undefined);
  // The origin's response, not ours: no Server added.
  assert.equal(header(r.out, "server"), undefined);

  // A body streams through; the default port is left out of Host; HEAD keeps the length.
  const post = await curl(["-x", proxy.url, `${base}/post`, "--data-binary", "payload"]);
  assert.equal(post.status, 200);
  assert.match(post.out, /hello POST \/post payload/);
  const headRes = await curl(["-x", proxy.url, "-I", `${base}/h`]);
  assert.equal(headRes.status, 200);
  assert.equal(header(headRes.out, "content-length"), String("hello HEAD /h".length));
});

for (const engine of ["node", "brigade"] as const) {
  test(`CONNECT (engine ${engine}): curl --proxytunnel to an HTTPS server; the tunnel is logged at its end with bytes each way`, async (t) => {
    if (!requireTool(t, "curl")) return;
    const dir = tempDir(t);
    const tlsPort = await startTlsOrigin(t);
    const proxy = await startProxy(
      t,
      {
        forwardProxy: true,
        forwardAllowDestinations: loopback,
        forwardConnectPorts: [tlsPort],
        accessLog: {
          path: join(dir, "access.log"),
          format:
            "$request $status $forward_target $forward_addr up=$forward_bytes_up down=$forward_bytes_down $forward_end sent=$body_bytes_sent",
          buffer: 0,
        },
      },
      {},
      { engine },
    );
    const r = await curl([
      "-x",
      proxy.url,
      "--proxytunnel",
      `https://127.0.0.1:${tlsPort}/x`,
      "-k",
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.connect, 200);
    assert.equal(r.status, 200);
    assert.match(r.out, /secure \/x/);
    // The log line is written when the tunnel closes (curl has gone): wait for it.
    let line = "";
    for (let i = 0; i < 50 && line === ""; i++) {
      line = readFileSync(join(dir, "access.log"), "utf8").trim();
      if (line === "") await new Promise((r) => setTimeout(r, 100));
    }
    const m =
      /^CONNECT 127\.0\.0\.1:(\d+) HTTP\/1\.1 200 127\.0\.0\.1:\1 127\.0\.0\.1:\1 up=(\d+) down=(\d+) (?:closed|reset) sent=(\d+)$/.exec(
        line,
      );
    assert.ok(m, line);
    // A TLS handshake and one exchange each way: hundreds of bytes, not zero.
    assert.ok(Number(m[2]) > 200 && Number(m[3]) > 200, line);
    // $body_bytes_sent is what reached the client's socket: the origin's last TLS alert, read
    // after curl had closed, went nowhere.
    assert.ok(Number(m[4]) > 200 && Number(m[4]) <= Number(m[3]), line);
    // An absolute-form request on the same engine.
    const origin = await startOrigin(t);
    const get = await curl(["-x", proxy.url, `http://127.0.0.1:${origin.port}/e`]);
    assert.equal(get.status, 200);
    assert.match(get.out, /hello GET \/e/);
  });
}

test("who may use it: loopback by default, an allow-list replaces it (curl --interface 127.0.0.2)", async (t) => {
  if (!requireTool(t, "curl")) return;
  const origin = await startOrigin(t);
  const url = `http://127.0.0.1:${origin.port}/`;
  const only1 = await startProxy(t, {
    forwardProxy: true,
    forwardAllowDestinations: loopback,
    forwardClients: ["127.0.0.1"],
  });
  const inside = await curl(["-x", only1.url, url, "--interface", "127.0.0.1"]);
  assert.equal(inside.status, 200);
  const outside = await curl(["-x", only1.url, url, "--interface", "127.0.0.2"]);
  assert.equal(outside.status, 403);
  assert.match(
    outside.out,
    /client 127\.0\.0\.2 is not allowed to use this proxy \(forwardClients\)/,
  );
  const tunnel = await curl([
    "-x",
    only1.url,
    "--proxytunnel",
    "https://127.0.0.1:443/",
    "--interface",
    "127.0.0.2",
  ]);
  assert.equal(tunnel.connect, 403);
  // The default: any loopback address.
  const byDefault = await startProxy(t, { forwardProxy: true, forwardAllowDestinations: loopback });
  assert.equal((await curl(["-x", byDefault.url, url, "--interface", "127.0.0.2"])).status, 200);
  assert.equal(origin.seen.length, 2);
});

test("ports: CONNECT only to forwardConnectPorts (default 443), http only to safe ports", async (t) => {
  if (!requireTool(t, "curl")) return;
  const tlsPort = await startTlsOrigin(t);
  const proxy = await startProxy(t, { forwardProxy: true, forwardAllowDestinations: loopback });
  const r = await curl(["-x", proxy.url, "--proxytunnel", `https://127.0.0.1:${tlsPort}/`, "-k"]);
  assert.equal(r.connect, 403);
  assert.match(r.out, /CONNECT to port \d+ is refused \(forwardConnectPorts: 443\)/);
  const smtp = await curl(["-x", proxy.url, "http://127.0.0.1:25/"]);
  assert.equal(smtp.status, 403);
  assert.match(smtp.out, /port 25 is not in forwardPorts/);
});

test("destinations: loopback and private refused by default, by address and behind a name; allow reopens, deny wins", async (t) => {
  if (!requireTool(t, "curl")) return;
  const origin = await startOrigin(t);
  // A resolver of our own: names that resolve where an attacker would like them to.
  const names: Record<string, string[]> = {
    "public.test": ["203.0.113.10"],
    "inside.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "both.test": ["127.0.0.2", "127.0.0.1"],
  };
  const lookups: string[] = [];
  const forwardLookup = async (host: string) => {
    lookups.push(host);
    const a = names[host];
    if (!a) throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
    return a.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  const closedProxy = await startProxy(t, { forwardProxy: true }, { forwardLookup });
  const get = (p: { url: string }, host: string) =>
    curl(["-x", p.url, `http://${host}:${origin.port}/`]);
  for (const [host, why] of [
    ["127.0.0.1", /127\.0\.0\.0\/8 \(loopback\)/],
    ["inside.test", /inside\.test resolves to 127\.0\.0\.1: .*loopback/],
    ["metadata.test", /169\.254\.0\.0\/16 \(link-local, cloud metadata\)/],
    ["mapped.test", /::ffff:127\.0\.0\.1 .*loopback/],
    ["[::1]", /::1\/128 \(loopback\)/],
    ["10.1.2.3", /10\.0\.0\.0\/8 \(private, RFC 1918\)/],
  ] as const) {
    const r = await get(closedProxy, host);
    assert.equal(r.status, 403, host);
    assert.match(r.out, why, host);
    assert.match(header(r.out, "proxy-status") ?? "", /error=destination_ip_prohibited/);
  }
  assert.equal((await get(closedProxy, "nowhere.test")).status, 502);

  const open = await startProxy(
    t,
    {
      forwardProxy: true,
      forwardAllowDestinations: ["127.0.0.1/32"],
      forwardDenyDestinations: ["127.0.0.1/32"],
    },
    { forwardLookup },
  );
  const denied = await get(open, "inside.test");
  assert.equal(denied.status, 403);
  assert.match(denied.out, /forwardDenyDestinations \(127\.0\.0\.1\/32\)/);

  const allowOne = await startProxy(
    t,
    { forwardProxy: true, forwardAllowDestinations: ["127.0.0.1/32"], forwardDnsCache: 0 },
    { forwardLookup },
  );
  // Of a name's addresses, the allowed one is connected to, the denied one never.
  const both = await get(allowOne, "both.test");
  assert.equal(both.status, 200);
  assert.equal(origin.seen.at(-1)!.headers.host, `both.test:${origin.port}`);
  // DNS rebinding: the name now resolves to a denied address; the next request is refused
  // although a connection to the old address sits in the pool.
  names["both.test"] = ["127.0.0.2"];
  const rebound = await get(allowOne, "both.test");
  assert.equal(rebound.status, 403);
  assert.equal(lookups.filter((h) => h === "both.test").length, 2, "resolved for each request");
});

test("domains: deny-list, allow-list with wildcards", async (t) => {
  if (!requireTool(t, "curl")) return;
  const origin = await startOrigin(t);
  const forwardLookup = async () => [{ address: "127.0.0.1", family: 4 }];
  const proxy = await startProxy(
    t,
    {
      forwardProxy: true,
      forwardAllowDestinations: loopback,
      forwardAllowDomains: [".example.test", "*.cdn.test"],
      forwardDenyDomains: ["bad.example.test"],
    },
    { forwardLookup },
  );
  const get = (host: string) => curl(["-x", proxy.url, `http://${host}:${origin.port}/`]);
  assert.equal((await get("example.test")).status, 200);
  assert.equal((await get("www.example.test")).status, 200);
  assert.equal((await get("a.cdn.test")).status, 200);
  const apex = await get("cdn.test");
  assert.equal(apex.status, 403);
  assert.match(apex.out, /cdn\.test is not in forwardAllowDomains/);
  const bad = await get("bad.example.test");
  assert.equal(bad.status, 403);
  assert.match(bad.out, /denied by forwardDenyDomains \("bad\.example\.test"\)/);
  // An IP literal matches no domain pattern.
  assert.equal((await get("127.0.0.1")).status, 403);
});

test("authentication: 407 with Proxy-Authenticate without or with wrong credentials; users from a file and the config", async (t) => {
  if (!requireTool(t, "curl")) return;
  const dir = tempDir(t, {
    "users.htpasswd": `alice:${bcrypt.hashSync("wonderland", 4)}\n`,
  });
  const origin = await startOrigin(t);
  const tlsPort = await startTlsOrigin(t);
  const proxy = await startProxy(t, {
    forwardProxy: true,
    forwardAllowDestinations: loopback,
    forwardConnectPorts: [tlsPort],
    forwardAuth: "office",
    forwardAuthUserFile: join(dir, "users.htpasswd"),
    forwardAuthUsers: { bob: "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=" }, // "password"
    accessLog: { path: join(dir, "access.log"), format: "$status $remote_user", buffer: 0 },
  });
  const url = `http://127.0.0.1:${origin.port}/`;
  const none = await curl(["-x", proxy.url, url]);
  assert.equal(none.status, 407);
  assert.equal(header(none.out, "proxy-authenticate"), 'Basic realm="office", charset="UTF-8"');
  const wrong = await curl(["-x", proxy.url, url, "-U", "alice:rabbit"]);
  assert.equal(wrong.status, 407);
  const unknown = await curl(["-x", proxy.url, url, "-U", "mallory:x"]);
  assert.equal(unknown.status, 407);
  assert.equal((await curl(["-x", proxy.url, url, "-U", "alice:wonderland"])).status, 200);
  assert.equal((await curl(["-x", proxy.url, url, "-U", "bob:password"])).status, 200);
  assert.equal(origin.seen.length, 2);
  assert.ok(origin.seen.every((s) => s.headers["proxy-authorization"] === undefined));
  // CONNECT too.
  const tunnelNone = await curl([
    "-x",
    proxy.url,
    "--proxytunnel",
    `https://127.0.0.1:${tlsPort}/`,
    "-k",
  ]);
  assert.equal(tunnelNone.connect, 407);
  const tunnel = await curl([
    "-x",
    proxy.url,
    "--proxytunnel",
    `https://127.0.0.1:${tlsPort}/`,
    "-k",
    "-U",
    "alice:wonderland",
  ]);
  assert.equal(tunnel.status, 200);
  const log = readFileSync(join(dir, "access.log"), "utf8");
  assert.match(log, /^200 alice$/m);
  assert.match(log, /^200 bob$/m);
});

test("malformed targets and methods get 400 (or 405, 501) with the reason", async (t) => {
  const proxy = await startProxy(t, { forwardProxy: true, forwardAllowDestinations: loopback });
  // Brigade's HTTP/1 engine (the default) refuses some of these in its parser already (a non-http
  // absolute URI, userinfo, a port over 65535, CONNECT without a port: RFC 9112's grammar), with
  // the plain 400 page as nginx does; node:http's llhttp lets them through to the module, which
  // names the reason. Either way the status is the same.
  const engine400 = /<title>400 Bad Request<\/title>/;
  const either = (why: RegExp) => new RegExp(`${why.source}|${engine400.source}`);
  const cases: [string, number, RegExp][] = [
    ["GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, /send absolute-form requests/],
    ["GET https://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n", 400, /CONNECT tunnel/],
    [
      "GET ftp://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n",
      400,
      either(/only http URLs/),
    ],
    [
      "GET http://u:p@example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n",
      400,
      either(/credentials in the URL/),
    ],
    [
      "GET http://example.test:99999/ HTTP/1.1\r\nHost: example.test\r\n\r\n",
      400,
      either(/bad port/),
    ],
    ["GET http://exa_mple!.test/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, /bad host name/],
    [
      "CONNECT example.test HTTP/1.1\r\nHost: example.test\r\n\r\n",
      400,
      either(/CONNECT needs host:port/),
    ],
    ["CONNECT example.test:0 HTTP/1.1\r\nHost: example.test\r\n\r\n", 400, /bad port/],
    ["CONNECT [::1 HTTP/1.1\r\nHost: x\r\n\r\n", 400, /./],
    ["TRACE http://127.0.0.1:8080/ HTTP/1.1\r\nHost: x\r\n\r\n", 405, /TRACE is not forwarded/],
  ];
  const wrong: string[] = [];
  for (const [raw, status, why] of cases) {
    const ex = await exchange(proxy.port, raw);
    const res = ex.responses[0];
    if (!res || res.status !== status || !why.test(res.text))
      wrong.push(
        `${JSON.stringify(raw)}: ${res?.status} ${JSON.stringify(res?.text.slice(0, 80))}`,
      );
  }
  assert.deepEqual(wrong, []);
});

test("tunnel limits: per client (429), bytes per tunnel, idle timeout; the count is given back", async (t) => {
  const echo = await startEcho(t);
  const proxy = await startProxy(t, {
    forwardProxy: true,
    forwardAllowDestinations: loopback,
    forwardConnectPorts: [echo],
    forwardTunnelsPerClient: 2,
    forwardTunnelMaxBytes: 1000,
    forwardTunnelIdleTimeout: "600ms",
  });
  const connect = `CONNECT 127.0.0.1:${echo} HTTP/1.1\r\nHost: 127.0.0.1:${echo}\r\n\r\n`;
  const a = await rawConnect(t, proxy.port, connect);
  const b = await rawConnect(t, proxy.port, connect);
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  assert.equal(await roundTrip(a.socket, "ping"), "ping");
  const c = await rawConnect(t, proxy.port, connect);
  assert.equal(c.status, 429);
  assert.match(c.head, /error=connection_limit_reached/);
  // Another client address has its own count.
  const d = await rawConnect(t, proxy.port, connect, "127.0.0.3");
  assert.equal(d.status, 200);
  // Over the byte limit: the tunnel is closed.
  a.socket.write(Buffer.alloc(1200, 1));
  await closed(a.socket);
  // Idle: closed by itself.
  await closed(b.socket);
  // Both given back: two more tunnels for the first client.
  const e = await rawConnect(t, proxy.port, connect);
  const f = await rawConnect(t, proxy.port, connect);
  assert.equal(e.status, 200);
  assert.equal(f.status, 200);
});

test("upstream failures: refused 502, a silent origin 504, each with Proxy-Status", async (t) => {
  if (!requireTool(t, "curl")) return;
  const silent = await startOrigin(t, () => {
    // never answers
  });
  const free = await startOrigin(t);
  const proxy = await startProxy(t, {
    forwardProxy: true,
    forwardAllowDestinations: loopback,
    forwardReadTimeout: "300ms",
    forwardConnectPorts: ["1-65535"],
  });
  // A port nobody listens on: the one the free origin had, once it is closed is racy; use 1.
  const refused = await curl(["-x", proxy.url, "http://127.0.0.1:1/"]);
  assert.equal(refused.status, 403, "port 1 is not a safe port");
  const refusedTunnel = await rawConnect(
    t,
    proxy.port,
    "CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assert.equal(refusedTunnel.status, 502);
  assert.match(refusedTunnel.head, /error=connection_refused/);
  const timeout = await curl(["-x", proxy.url, `http://127.0.0.1:${silent.port}/`]);
  assert.equal(timeout.status, 504);
  assert.match(header(timeout.out, "proxy-status") ?? "", /error=connection_read_timeout/);
  assert.equal((await curl(["-x", proxy.url, `http://127.0.0.1:${free.port}/`])).status, 200);
});

test("a parent proxy: http and CONNECT go through it, with its credentials; a loop is 508", async (t) => {
  if (!requireTool(t, "curl")) return;
  const origin = await startOrigin(t);
  const tlsPort = await startTlsOrigin(t);
  const parent = await startProxy(t, {
    forwardProxy: true,
    forwardAllowDestinations: loopback,
    forwardConnectPorts: [tlsPort],
    forwardAuthUsers: { child: "{PLAIN}s3cret" },
  });
  const child = await startProxy(t, {
    forwardProxy: true,
    forwardAllowDestinations: loopback,
    forwardConnectPorts: [tlsPort],
    forwardParent: `http://child:s3cret@127.0.0.1:${parent.port}`,
  });
  const r = await curl(["-x", child.url, `http://127.0.0.1:${origin.port}/via-parent`]);
  assert.equal(r.status, 200, r.out);
  assert.match(r.out, /hello GET \/via-parent/);
  // Two proxies on the way: two Via entries, the parent's last.
  const via = String(origin.seen[0]!.headers.via).split(", ");
  assert.equal(via.length, 2);
  assert.equal(origin.seen[0]!.headers["proxy-authorization"], undefined);
  const tunnel = await curl([
    "-x",
    child.url,
    "--proxytunnel",
    `https://127.0.0.1:${tlsPort}/t`,
    "-k",
  ]);
  assert.equal(tunnel.status, 200, tunnel.err);
  assert.match(tunnel.out, /secure \/t/);

  const wrongCreds = await startProxy(t, {
    forwardProxy: true,
    forwardAllowDestinations: loopback,
    forwardParent: `http://child:wrong@127.0.0.1:${parent.port}`,
  });
  const refused = await curl(["-x", wrongCreds.url, `http://127.0.0.1:${origin.port}/`]);
  assert.equal(refused.status, 502);
  assert.match(refused.out, /asks for credentials/);

  // A request that comes back carrying our own Via entry.
  const self = await startProxy(t, { forwardProxy: true, forwardAllowDestinations: loopback });
  const mine = `${(await import("node:os")).hostname()}:${self.port}`;
  const loop = await curl([
    "-x",
    self.url,
    `http://127.0.0.1:${origin.port}/`,
    "-H",
    `Via: 1.1 ${mine} (brigade)`,
  ]);
  assert.equal(loop.status, 508);
});

test("with the cache module: forwarded responses are cached, hits only for clients that pass the checks", async (t) => {
  if (!requireTool(t, "curl")) return;
  const origin = await startOrigin(t, (req, res) => {
    res.setHeader("cache-control", "max-age=60");
    res.end(`cached ${req.url}`);
  });
  const proxy = await startProxy(t, {
    forwardProxy: true,
    forwardAllowDestinations: loopback,
    forwardClients: ["127.0.0.1"],
    cache: true,
  });
  const url = `http://127.0.0.1:${origin.port}/c`;
  const first = await curl(["-x", proxy.url, url]);
  assert.equal(first.status, 200);
  const second = await curl(["-x", proxy.url, url]);
  assert.equal(second.status, 200);
  assert.match(header(second.out, "cache-status") ?? "", /hit/);
  assert.match(second.out, /cached \/c/);
  assert.equal(origin.seen.length, 1);
  // A client the proxy refuses gets its 403, not the stored response.
  const outside = await curl(["-x", proxy.url, url, "--interface", "127.0.0.2"]);
  assert.equal(outside.status, 403);
  assert.doesNotMatch(outside.out, /cached/);
});
