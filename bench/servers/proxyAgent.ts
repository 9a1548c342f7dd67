/**
 * A minimal reverse proxy on node:http's client: `node proxyAgent.ts <port> <upstreamPort>
 * [maxSockets]`. Each request goes to 127.0.0.1:<upstreamPort> over a keep-alive `http.Agent`
 * (LIFO, so the warmest sockets are reused), headers passed as received (raw, casing kept),
 * bodies streamed both ways. The node:http side of the pool comparison (bench/suites/pool.ts).
 */
import { Agent, createServer, request } from "node:http";

const port = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
const maxSockets = Number(process.argv[4] ?? 256);
const agent = new Agent({
  keepAlive: true,
  maxSockets,
  maxFreeSockets: maxSockets,
  scheduling: "lifo",
});

createServer((req, res) => {
  const up = request(
    {
      host: "127.0.0.1",
      port: upstreamPort,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    },
    (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.rawHeaders);
      upRes.pipe(res);
    },
  );
  up.on("error", () => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  req.pipe(up);
}).listen(port, "127.0.0.1");
