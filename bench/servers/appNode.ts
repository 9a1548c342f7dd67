/**
 * The hello app as a Node `(req, res)` listener, for `brigade app bench/servers/appNode.ts`:
 * the same response as bench/servers/nodeHttp.ts, so the difference is Brigade's layer.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

const body = Buffer.from("hello");

export default function hello(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
}
