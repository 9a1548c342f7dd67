/**
 * A minimal reverse proxy on undici: `node proxyUndici.ts <port> <upstreamPort> <mode>
 * [connections]`. Mode `request` uses `Pool.request()` (a promise and a body stream per
 * request), `dispatch` uses `Pool.dispatch()` with a handler writing straight to the client
 * response (undici's lowest-level API, as its own proxy interceptor does). The undici side of
 * the pool comparison (bench/suites/pool.ts).
 */
import { createServer } from "node:http";
import { Pool } from "undici";

const port = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
const mode = process.argv[4] ?? "request";
const connections = Number(process.argv[5] ?? 256);
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections, pipelining: 1 });

function headerObject(raw: string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (k === "connection" || k === "keep-alive" || k === "host") continue;
    const v = raw[i + 1]!;
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

createServer((req, res) => {
  const headers = headerObject(req.rawHeaders);
  const body = req.method === "GET" || req.method === "HEAD" ? null : req;
  if (mode === "request") {
    pool.request({ method: req.method as "GET", path: req.url!, headers, body }).then(
      (up) => {
        res.writeHead(up.statusCode, up.headers as Record<string, string>);
        up.body.pipe(res);
      },
      () => {
        if (!res.headersSent) res.writeHead(502).end();
      },
    );
    return;
  }
  pool.dispatch(
    {
      origin: `http://127.0.0.1:${upstreamPort}`,
      method: req.method as "GET",
      path: req.url!,
      headers,
      body,
    },
    {
      onRequestStart() {},
      onResponseStart(controller, statusCode, resHeaders) {
        res.writeHead(statusCode, resHeaders as Record<string, string>);
        res.on("drain", () => controller.resume());
      },
      onResponseData(controller, chunk) {
        if (!res.write(chunk)) controller.pause();
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      },
    },
  );
}).listen(port, "127.0.0.1");
