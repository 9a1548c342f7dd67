/**
 * Forwarding headers are believed only from trusted peers (loopback and unix sockets by
 * default, or the forwardedAllowIps list with CIDRs).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, request as httpRequest, type IncomingMessage } from "node:http";
import { createServer as createHttpsServer, request as httpsRequest } from "node:https";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import type { FetchHandler } from "../../src/gateway/index.ts";
import { createTrust, fetchToNodeListener, readForwarded } from "../../src/gateway/index.ts";
import { serve } from "./serve.ts";

const whoami: FetchHandler = (request, ctx) =>
  Response.json({
    remoteAddress: ctx.remoteAddress,
    remotePort: ctx.remotePort ?? null,
    peerAddress: ctx.peerAddress,
    scheme: ctx.scheme,
    url: request.url,
  });

test("createTrust: addresses, CIDRs, IPv6, mapped IPv4, unix, *", () => {
  const trust = createTrust(["10.0.0.0/8", "192.168.1.7", "fd00::/8", "unix"]);
  assert.equal(trust("10.200.3.4"), true);
  assert.equal(trust("::ffff:10.1.1.1"), true);
  assert.equal(trust("11.0.0.1"), false);
  assert.equal(trust("192.168.1.7"), true);
  assert.equal(trust("192.168.1.8"), false);
  assert.equal(trust("fd12::1"), true);
  assert.equal(trust("fe80::1"), false);
  assert.equal(trust(undefined), true);
  assert.equal(createTrust(["127.0.0.1"])(undefined), false);
  assert.equal(createTrust()("127.0.0.5"), true);
  assert.equal(createTrust()("::1"), true);
  assert.equal(createTrust()("8.8.8.8"), false);
  assert.equal(createTrust(["*"])("8.8.8.8"), true);
  assert.throws(() => createTrust(["10.0.0.0/33"]), /bad prefix length/);
  assert.throws(() => createTrust(["example.com"]), /not an IP or CIDR/);
});

test("readForwarded: the rightmost untrusted hop is the client, Forwarded wins", () => {
  const trust = createTrust(["10.0.0.0/8"]);
  // The client forged "6.6.6.6"; the proxy 10.0.0.2 appended the real client 203.0.113.9.
  assert.deepEqual(readForwarded({ "x-forwarded-for": "6.6.6.6, 203.0.113.9, 10.0.0.2" }, trust), {
    address: "203.0.113.9",
  });
  assert.deepEqual(
    readForwarded(
      {
        forwarded: 'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https',
        "x-forwarded-for": "1.1.1.1",
        "x-forwarded-proto": "http",
      },
      trust,
    ),
    { address: "2001:db8::7", port: 4711, proto: "https" },
  );
  assert.deepEqual(readForwarded({ "x-forwarded-proto": "https" }, trust), { proto: "https" });
  assert.deepEqual(readForwarded({ forwarded: "for=_hidden;proto=ftp" }, trust), {});
});

async function ask(url: string, headers: Record<string, string>): Promise<Record<string, unknown>> {
  const res = await fetch(url, { headers });
  return (await res.json()) as Record<string, unknown>;
}

test("a loopback peer is trusted by default: client and scheme come from the headers", async (t) => {
  const { url, port } = await serve(t, fetchToNodeListener(whoami));
  const got = await ask(`${url}/a?b=1`, {
    "x-forwarded-for": "198.51.100.4",
    "x-forwarded-proto": "https",
  });
  assert.deepEqual(got, {
    remoteAddress: "198.51.100.4",
    remotePort: null,
    peerAddress: "127.0.0.1",
    scheme: "https",
    url: `https://127.0.0.1:${port}/a?b=1`,
  });
  const viaForwarded = await ask(url, { forwarded: 'for="198.51.100.5:999";proto=https' });
  assert.equal(viaForwarded.remoteAddress, "198.51.100.5");
  assert.equal(viaForwarded.remotePort, 999);
});

test("an untrusted peer's forwarding headers are ignored", async (t) => {
  const listener = fetchToNodeListener(whoami, { forwardedAllowIps: ["10.0.0.0/8"] });
  const { url, port } = await serve(t, listener);
  const got = await ask(url, {
    "x-forwarded-for": "198.51.100.4",
    "x-forwarded-proto": "https",
    forwarded: "for=198.51.100.4;proto=https",
  });
  assert.equal(got.remoteAddress, "127.0.0.1");
  assert.equal(got.peerAddress, "127.0.0.1");
  assert.equal(typeof got.remotePort, "number");
  assert.equal(got.scheme, "http");
  assert.equal(got.url, `http://127.0.0.1:${port}/`);
});

test("a unix socket peer is trusted by default", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "brigade-gw-"));
  const socketPath = join(dir, "app.sock");
  const server = createServer(fetchToNodeListener(whoami));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(
      { socketPath, path: "/", headers: { host: "app.test", "x-forwarded-for": "192.0.2.1" } },
      resolve,
    );
    req.on("error", reject);
    req.end();
  });
  let text = "";
  for await (const chunk of res) text += String(chunk);
  const got = JSON.parse(text) as Record<string, unknown>;
  assert.equal(got.remoteAddress, "192.0.2.1");
  assert.equal(got.peerAddress, "");
  assert.equal(got.url, "http://app.test/");
});

test("over TLS the context carries scheme https and the TLS details", async (t) => {
  const dir = resolve(import.meta.dirname, "../fixtures/gateway/tls");
  const cert = readFileSync(join(dir, "cert.pem"));
  const server = createHttpsServer({ key: readFileSync(join(dir, "key.pem")), cert }, (req, res) =>
    listener(req, res),
  );
  const listener = fetchToNodeListener((request, ctx) =>
    Response.json({ url: request.url, scheme: ctx.scheme, tls: ctx.tls ?? null }),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  const res = await new Promise<IncomingMessage>((ok, fail) => {
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/t",
        servername: "app.test",
        ca: cert,
        headers: { host: "app.test" },
      },
      ok,
    );
    req.on("error", fail);
    req.end();
  });
  let text = "";
  for await (const chunk of res) text += String(chunk);
  const got = JSON.parse(text) as { url: string; scheme: string; tls: Record<string, unknown> };
  assert.equal(got.url, "https://app.test/t");
  assert.equal(got.scheme, "https");
  assert.equal(got.tls.servername, "app.test");
  assert.match(String(got.tls.protocol), /^TLSv1\.[23]$/);
  assert.equal(typeof got.tls.cipher, "string");
  assert.equal(got.tls.authorized, false);
});

test("without a Host header (HTTP/1.0) the URL names the local address", async (t) => {
  const server = createServer(fetchToNodeListener(whoami));
  const listening = await new Promise<boolean>((r) => {
    server.once("error", () => r(false));
    server.listen(0, "::1", () => r(true));
  });
  if (!listening) {
    t.skip("no IPv6 loopback on this machine");
    return;
  }
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  const socket = connect(port, "::1");
  t.after(() => socket.destroy());
  socket.end("GET /old HTTP/1.0\r\n\r\n");
  let raw = "";
  for await (const chunk of socket) raw += String(chunk);
  const got = JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4)) as Record<string, unknown>;
  assert.equal(got.url, `http://[::1]:${port}/old`);
  assert.equal(got.peerAddress, "::1");
});
