/**
 * A test module answering the content phase with what the engine must be able to write (the
 * first of these words in the path decides, so any prefix may stand before it): the request as
 * seen (`/req`), the body read back (`/body`), a file range (`/file/<size>`), a
 * stream (`/stream/<chunks>`), a takeover echo (`/tunnel`, Upgrade and CONNECT), an error
 * (`/error/<status>`), a throw (`/throw`).
 */
import { openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Fields, HttpError, response, type WebResponse } from "../../src/webserver/exchange.ts";
import type { WebModule } from "../../src/webserver/module.ts";

const words = new Set(["req", "body", "file", "stream", "tunnel", "error", "throw"]);

export function probe(dir: string): WebModule {
  const files = new Map<number, string>();
  const fileOf = (size: number): string => {
    let f = files.get(size);
    if (f === undefined) {
      f = join(dir, `file-${size}`);
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i++) data[i] = 97 + (i % 26);
      writeFileSync(f, data);
      files.set(size, f);
    }
    return f;
  };
  return {
    name: "probe",
    doc: "test content",
    setup: () => ({
      async content(req): Promise<WebResponse> {
        // The first known word in the path decides (`/any/prefix/req/...` is `req`).
        const parts = req.method === "CONNECT" ? ["", "tunnel"] : req.path.split("/");
        const at = parts.findIndex((p) => words.has(p));
        const first = at < 0 ? "" : parts[at];
        const arg = at < 0 ? undefined : parts[at + 1];
        switch (first) {
          case "req":
            return response(
              200,
              JSON.stringify({
                method: req.method,
                target: req.target,
                path: req.path,
                query: req.query,
                host: req.host,
                version: req.httpVersion,
                scheme: req.scheme,
                remote: req.connection.remoteAddress,
                requests: req.connection.requests,
                vars: Object.fromEntries(req.vars),
                fields: [...req.fields],
              }),
              { "content-type": "application/json" },
            );
          case "body": {
            const body = await req.body.buffer();
            return response(200, `${body.length}:${body.toString()}`);
          }
          case "file": {
            const size = Number(arg);
            const fd = openSync(fileOf(size), "r");
            return response(200, { kind: "file", fd, start: 0, end: size, path: fileOf(size) });
          }
          case "stream": {
            const n = Number(arg);
            const chunks = Array.from({ length: n }, (_, i) => `chunk${i};`);
            return response(200, { kind: "stream", stream: Readable.from(chunks) });
          }
          case "tunnel":
            if (!req.canTakeover) throw new HttpError(400, "not a takeover request");
            return {
              status: req.method === "CONNECT" ? 200 : 101,
              fields: req.method === "CONNECT" ? new Fields() : Fields.from({ upgrade: "echo" }),
              body: {
                kind: "takeover",
                onSocket(socket, head) {
                  if (head.length > 0) socket.write(head);
                  socket.pipe(socket);
                },
              },
            };
          case "error":
            throw new HttpError(Number(arg));
          case "throw":
            throw new Error("boom");
          default:
            throw new HttpError(404);
        }
      },
    }),
  };
}
