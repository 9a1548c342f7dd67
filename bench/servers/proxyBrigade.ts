/**
 * The same minimal node:http reverse proxy as proxyAgent.ts and proxyUndici.ts, on Brigade's
 * upstream engine: `node proxyBrigade.ts <port> <upstreamPort> [group|pool]`. `group` sends
 * through `UpstreamGroup.request` (selection, lease, retries, the pool), `pool` straight to a
 * `PeerPool`, to show what the group layer costs on top of the connection layer.
 */
import { createServer } from "node:http";
import { createUpstreamGroup, PeerPool } from "../../src/upstream/index.ts";

const port = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
const mode = process.argv[4] ?? "group";
const address = `127.0.0.1:${upstreamPort}`;
const group = await createUpstreamGroup("bench", { peers: [address], keepalive: { idle: 256 } });
const pool = new PeerPool(
  { kind: "tcp", host: "127.0.0.1", port: upstreamPort },
  {
    idle: 256,
    idleTimeout: 4000,
    maxRequests: 100000,
    connectTimeout: 5000,
    sendTimeout: 60000,
    readTimeout: 60000,
  },
);

createServer((req, res) => {
  const upstream = { method: req.method ?? "GET", path: req.url ?? "/", headers: req.rawHeaders };
  const sent = mode === "pool" ? pool.request(upstream) : group.request(upstream);
  sent.then(
    (up) => {
      res.writeHead(up.status, up.headers);
      up.body.pipe(res);
    },
    (err: { status?: number }) => {
      res.writeHead(err.status ?? 502).end();
    },
  );
}).listen(port, "127.0.0.1");
