/**
 * The cache bench's upstream: `GET /1k` and `/64k` answer that many bytes with
 * `Cache-Control: public, max-age=3600` and a Content-Length. Counts requests at `/__count`, so
 * a run can show the caches answered from storage. `node cacheOrigin.ts <port>`.
 */
import http from "node:http";

const bodies: Record<string, Buffer> = {
  "/1k": Buffer.alloc(1024, "a"),
  "/64k": Buffer.alloc(64 * 1024, "b"),
};
let count = 0;
http
  .createServer((req, res) => {
    if (req.url === "/__count") {
      res.end(String(count));
      return;
    }
    count++;
    const body = bodies[req.url ?? ""];
    if (!body) {
      res.writeHead(404, { "content-length": "0" });
      res.end();
      return;
    }
    res.writeHead(200, {
      "content-type": "text/plain",
      "content-length": String(body.length),
      "cache-control": "public, max-age=3600",
    });
    res.end(body);
  })
  .listen(Number(process.argv[2]), "127.0.0.1");
