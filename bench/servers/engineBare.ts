/**
 * An HTTP/1 engine with no pipeline behind it: `node engineBare.ts <port> brigade|node|raw`.
 * `GET /` answers "hello", `GET /1k` 1 KiB, anything else 404, with content-type, date and
 * server fields like nginx's `return`. `brigade` and `node` are the web server's two engines
 * behind its listener (engine/listener.ts); `raw` is a bare node:http server. It is the floor
 * under `brigade web`: what each engine alone costs, to tell the engine's share from the
 * pipeline's.
 */
import { createServer } from "node:http";
import { createLogger } from "../../src/core/logger.ts";
import { WebEngine } from "../../src/webserver/engine/listener.ts";
import type { EngineHandler, Outcome } from "../../src/webserver/engine/types.ts";
import { Fields, type WebResponse } from "../../src/webserver/exchange.ts";

const port = Number(process.argv[2]);
const mode = process.argv[3] ?? "brigade";
const kib = `${"x".repeat(1023)}\n`;

function reply(status: number, data: string): WebResponse {
  return {
    status,
    fields: new Fields(["content-type", "text/plain"]),
    body: { kind: "bytes", data },
  };
}

function raw(): void {
  const hello = Buffer.from("hello");
  const k = Buffer.from(kib);
  createServer((req, res) => {
    const body = req.url === "/" ? hello : req.url === "/1k" ? k : undefined;
    res.writeHead(body ? 200 : 404, {
      "content-type": "text/plain",
      "content-length": body?.length ?? 0,
      server: "node",
    });
    res.end(body);
  }).listen(port, "127.0.0.1");
}

async function engine(which: "node" | "brigade"): Promise<void> {
  const done = () => {};
  const handler: EngineHandler = {
    handle(req): Promise<Outcome> {
      const res =
        req.path === "/"
          ? reply(200, "hello")
          : req.path === "/1k"
            ? reply(200, kib)
            : reply(404, "");
      return Promise.resolve({ response: res, close: false, complete: done });
    },
    rejected: () => {},
  };
  const web = new WebEngine(handler, {
    engine: which,
    headerTimeout: 60_000,
    bodyTimeout: 60_000,
    bodyMinRate: 0,
    bodyMinRateGrace: 0,
    keepaliveTimeout: 75_000,
    keepaliveRequests: 1_000_000,
    sendTimeout: 60_000,
    maxRequestLine: 8192,
    maxHeaderSize: 32768,
    maxHeaders: 100,
    serverHeader: "brigade",
    mergeSlashes: true,
    logger: createLogger({ level: "warn", format: "text" }),
  });
  await web.listen({ key: `127.0.0.1:${port}`, tls: undefined }, { host: "127.0.0.1", port });
}

if (mode === "raw") raw();
else await engine(mode === "node" ? "node" : "brigade");
