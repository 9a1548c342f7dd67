/**
 * node:http hello behind node:cluster: `node nodeCluster.ts <port> [workers=2]`. The primary
 * accepts and hands connections round-robin to the workers (Node's default on Linux), the
 * shape closest to a pre-fork app server written naively in Node.
 */
import cluster from "node:cluster";
import { createServer } from "node:http";

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] ?? 2);

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  // Stop means stop: the workers go with the primary.
  const stop = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  const body = Buffer.from("hello");
  createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
    res.end(body);
  }).listen(port, "127.0.0.1");
}
