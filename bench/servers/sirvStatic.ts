/**
 * sirv (the static handler of Polka and SvelteKit's adapter-node) on node:http, one process:
 * `node sirvStatic.ts <port> <dir>`. ETags on; `dev: false` caches the file list at start, its
 * fastest mode.
 */
import { createServer } from "node:http";
import sirv from "sirv";

const port = Number(process.argv[2]);
const dir = process.argv[3]!;
const serve = sirv(dir, { etag: true, dev: false });
createServer((req, res) =>
  serve(req, res, () => {
    res.statusCode = 404;
    res.end();
  }),
).listen(port, "127.0.0.1");
