/**
 * HTTPS: a certificate per server chosen by SNI (two self-signed ones made with openssl),
 * HTTP/2 and HTTP/1.1 on one TLS listener by ALPN (node:http2's client), 421 for a Host that
 * belongs to another certificate, and the redirect from plain HTTP.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { type TestContext, test } from "node:test";
import type { PeerCertificate, TLSSocket } from "node:tls";
import { resolveConfig } from "../../src/config/load.ts";
import { createLogger } from "../../src/core/logger.ts";
import { WebEngine } from "../../src/webserver/engine/listener.ts";
import { modules } from "../../src/webserver/modules.ts";
import { Pipeline } from "../../src/webserver/pipeline.ts";
import { requireTool } from "../helpers/peers.ts";
import { request, selfSigned, tempDir } from "./helpers.ts";
import { probe } from "./probe.ts";

async function start(t: TestContext) {
  const dir = tempDir(t);
  selfSigned(dir, "a", ["a.test"]);
  selfSigned(dir, "b", ["b.test", "*.b.test"]);
  const config = resolveConfig({
    file: {
      source: "test",
      value: {
        web: {
          servers: [
            {
              listen: [{ address: "127.0.0.1:0", tls: true }, "127.0.0.2:0"],
              serverName: ["a.test"],
              tls: { cert: "a.crt", key: "a.key", redirect: true },
              locations: [
                { match: "= /", return: "200 A $scheme $server_protocol $ssl_server_name" },
              ],
            },
            {
              listen: [{ address: "127.0.0.1:0", tls: true }],
              serverName: ["b.test", "*.b.test"],
              tls: { cert: "b.crt", key: "b.key" },
              locations: [{ match: "= /", return: "200 B $host $server_protocol" }],
            },
          ],
        },
      },
    },
    env: {},
  });
  const logger = createLogger({ level: "fatal", format: "text" });
  const pipeline = await Pipeline.compile({
    web: config.web,
    baseDir: dir,
    serving: true,
    logger,
    source: "test",
    modules: [...modules, probe(dir)],
  });
  const engine = new WebEngine(pipeline, { ...pipeline.engineOptions, logger });
  const [tlsListener, plainListener] = pipeline.listeners;
  const tlsAddr = (await engine.listen(tlsListener!.plan, {
    host: "127.0.0.1",
    port: 0,
  })) as AddressInfo;
  pipeline.bound(tlsListener!.plan.key, tlsAddr.port);
  const plainAddr = (await engine.listen(plainListener!.plan, {
    host: "127.0.0.2",
    port: 0,
  })) as AddressInfo;
  t.after(() => engine.stop(false));
  return {
    tlsPort: tlsAddr.port,
    plainPort: plainAddr.port,
    ca: [readFileSync(`${dir}/a.crt`), readFileSync(`${dir}/b.crt`)],
  };
}

function get(
  port: number,
  opts: { servername?: string; host: string; path?: string; ca: Buffer[] },
): Promise<{ status: number; body: string; cert: PeerCertificate; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      {
        host: "127.0.0.1",
        port,
        path: opts.path ?? "/",
        headers: { host: opts.host },
        ...(opts.servername !== undefined ? { servername: opts.servername } : {}),
        ca: opts.ca,
        // The IP address is not in the certificates; the name checked is the SNI one.
        checkServerIdentity: () => undefined,
        agent: false,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => {
          const socket = res.socket as TLSSocket;
          resolve({
            status: res.statusCode ?? 0,
            body,
            cert: socket.getPeerCertificate(),
            alpn: socket.alpnProtocol,
          });
        });
      },
    );
    req.on("error", reject);
  });
}

test("SNI picks each server's certificate; no SNI gets the default server's", async (t) => {
  if (!requireTool(t, "openssl")) return;
  const s = await start(t);
  const a = await get(s.tlsPort, { servername: "a.test", host: "a.test", ca: s.ca });
  assert.equal(a.cert.subject.CN, "a.test");
  assert.equal(a.body, "A https HTTP/1.1 a.test");
  const b = await get(s.tlsPort, { servername: "x.b.test", host: "x.b.test", ca: s.ca });
  assert.equal(b.cert.subject.CN, "b.test");
  assert.equal(b.body, "B x.b.test HTTP/1.1");
  const none = await get(s.tlsPort, { host: "a.test", ca: s.ca });
  assert.equal(none.cert.subject.CN, "a.test");
  // a Host on another server than the certificate the connection was made for
  const misdirected = await get(s.tlsPort, { servername: "a.test", host: "b.test", ca: s.ca });
  assert.equal(misdirected.status, 421);
});

test("HTTP/2 by ALPN on the same listener: streams, bodies, files, HEAD", async (t) => {
  if (!requireTool(t, "openssl")) return;
  const s = await start(t);
  const session = http2.connect(`https://127.0.0.1:${s.tlsPort}`, {
    servername: "b.test",
    ca: s.ca,
    checkServerIdentity: () => undefined,
  });
  t.after(() => session.destroy());
  const call = (headers: http2.OutgoingHttpHeaders, body?: string) =>
    new Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const stream = session.request(headers, { endStream: body === undefined });
      const chunks: Buffer[] = [];
      let head: http2.IncomingHttpHeaders = {};
      stream.on("response", (h) => {
        head = h;
      });
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => resolve({ headers: head, body: Buffer.concat(chunks) }));
      stream.on("error", reject);
      if (body !== undefined) stream.end(body);
    });
  const root = await call({ ":path": "/", ":authority": "b.test" });
  assert.equal(root.headers[":status"], 200);
  assert.equal(root.body.toString(), "B b.test HTTP/2.0");
  assert.equal(root.headers.server, "brigade");
  const [seen, posted, file, stream, head] = await Promise.all([
    call({ ":path": "/req/x?y=1", ":authority": "b.test", "x-test": "1" }),
    call({ ":path": "/body", ":method": "POST", ":authority": "b.test" }, "hello h2"),
    call({ ":path": "/file/200000", ":authority": "b.test" }),
    call({ ":path": "/stream/4", ":authority": "b.test" }),
    call({ ":path": "/file/1000", ":method": "HEAD", ":authority": "b.test" }),
  ]);
  const req = JSON.parse(seen.body.toString());
  assert.deepEqual(
    [req.version, req.host, req.path, req.query, req.scheme],
    ["2", "b.test", "/req/x", "y=1", "https"],
  );
  assert.ok(req.fields.some(([k, v]: [string, string]) => k === "x-test" && v === "1"));
  assert.ok(
    !req.fields.some(([k]: [string]) => k.startsWith(":")),
    "no pseudo-headers among fields",
  );
  assert.equal(posted.body.toString(), "8:hello h2");
  assert.equal(file.body.length, 200000);
  assert.equal(file.headers["content-length"], "200000");
  assert.equal(stream.body.toString(), "chunk0;chunk1;chunk2;chunk3;");
  assert.equal(head.headers["content-length"], "1000");
  assert.equal(head.body.length, 0);
  const alpn = await get(s.tlsPort, { servername: "b.test", host: "b.test", ca: s.ca });
  assert.equal(alpn.body, "B b.test HTTP/1.1", "an HTTP/1.1 client on the same listener");
});

test("plain HTTP to a server with tls.redirect goes to https", async (t) => {
  if (!requireTool(t, "openssl")) return;
  const s = await start(t);
  const r = await request(s.plainPort, "/x?y=1", { host: "a.test", address: "127.0.0.2" });
  assert.equal(r.status, 301);
  assert.equal(r.headers.location, `https://a.test:${s.tlsPort}/x?y=1`);
  const post = await request(s.plainPort, "/form", {
    host: "a.test",
    method: "POST",
    body: "x",
    address: "127.0.0.2",
  });
  assert.equal(post.status, 308, "a redirect that keeps the method");
});
