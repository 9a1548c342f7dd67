/**
 * Static files and compression over HTTP/2 (TLS, ALPN), where the engine writes file bodies with
 * `respondWithFD`: whole files, ranges, 304, a large file, precompressed and compressed bodies.
 * In-process engine (no CLI): the HTTP/1.1 integration tests cover the process.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { join } from "node:path";
import { test } from "node:test";
import { brotliDecompressSync, gzipSync } from "node:zlib";
import { requireTool } from "../../helpers/peers.ts";
import { selfSigned, startEngine } from "../helpers.ts";
import { tree } from "./harness.ts";

interface H2Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

function get(
  client: http2.ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<H2Response> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ":path": path, ":method": method, ...headers });
    const chunks: Buffer[] = [];
    let h: http2.IncomingHttpHeaders = {};
    req.on("response", (r) => {
      h = r;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () =>
      resolve({ status: Number(h[":status"]), headers: h, body: Buffer.concat(chunks) }),
    );
    req.on("error", reject);
    req.end();
  });
}

test("static files over HTTP/2", async (t) => {
  if (!requireTool(t, "openssl")) return;
  const big = Buffer.alloc(2 * 1024 * 1024, "z");
  const page = "<p>compress me</p>\n".repeat(500);
  const dir = tree(t, { "a.txt": "0123456789", "big.bin": big, "page.html": page, "app.js": "x" });
  writeFileSync(join(dir, "app.js.gz"), gzipSync("x"));
  const { cert, key } = selfSigned(dir, "h2", ["h2.test"]);
  const s = await startEngine(t, {
    servers: [
      {
        listen: [{ address: "127.0.0.1:0", tls: true }],
        serverName: ["h2.test"],
        tls: { cert, key },
        root: dir,
        brotli: true,
        precompressed: ["gzip"],
      },
    ],
  });
  const client = http2.connect(`https://127.0.0.1:${s.port}`, {
    ca: readFileSync(cert),
    servername: "h2.test",
    checkServerIdentity: () => undefined,
  });
  t.after(() => client.close());

  const a = await get(client, "/a.txt");
  assert.equal(a.status, 200);
  assert.equal(a.body.toString(), "0123456789");
  assert.equal(a.headers["content-type"], "text/plain; charset=utf-8");
  const etag = a.headers.etag as string;
  assert.equal((await get(client, "/a.txt", { "if-none-match": etag })).status, 304);
  const r = await get(client, "/a.txt", { range: "bytes=2-4" });
  assert.equal(r.status, 206);
  assert.equal(r.headers["content-range"], "bytes 2-4/10");
  assert.equal(r.body.toString(), "234");
  const b = await get(client, "/big.bin");
  assert.equal(b.body.length, big.length);
  assert.ok(b.body.equals(big));
  const br = await get(client, "/page.html", { "accept-encoding": "br" });
  assert.equal(br.headers["content-encoding"], "br");
  assert.equal(brotliDecompressSync(br.body).toString(), page);
  const pre = await get(client, "/app.js", { "accept-encoding": "gzip" });
  assert.equal(pre.headers["content-encoding"], "gzip");
  assert.equal(pre.headers.vary, "Accept-Encoding");
  const head = await get(client, "/a.txt", {}, "HEAD");
  assert.equal(head.headers["content-length"], "10");
  assert.equal(head.body.length, 0);
});
