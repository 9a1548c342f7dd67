/**
 * Bare node:http hello in one process: `node nodeHttp.ts <port> [unix socket path]` (the socket
 * too when given, for a proxy in front over a unix socket). The yardstick for what any
 * Node HTTP server pays for node:http itself. Headers match nginx's `return 200 "hello"` with
 * `default_type text/plain` closely enough that neither sends much more than the other.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";

const port = Number(process.argv[2]);
const body = Buffer.from("hello");
const hello = (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
};
createServer(hello).listen(port, "127.0.0.1");
const unix = process.argv[3];
if (unix !== undefined) createServer(hello).listen(unix);
