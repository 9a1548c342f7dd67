/**
 * Bare node:http hello in one process: `node nodeHttp.ts <port>`. The yardstick for what any
 * Node HTTP server pays for node:http itself. Headers match nginx's `return 200 "hello"` with
 * `default_type text/plain` closely enough that neither sends much more than the other.
 */
import { createServer } from "node:http";

const port = Number(process.argv[2]);
const body = Buffer.from("hello");
createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
}).listen(port, "127.0.0.1");
