/**
 * Taking a content handler's response body into memory for storing, up to a limit. A body over
 * the limit is given back whole (what was read, then the rest), to be passed through uncached.
 */
import { closeSync, readSync } from "node:fs";
import { Readable } from "node:stream";
import type { Body } from "../exchange.ts";

export type Taken = { bytes: Buffer } | { tooBig: Body };

export async function takeBody(body: Body, limit: number): Promise<Taken> {
  switch (body.kind) {
    case "empty":
      return { bytes: Buffer.alloc(0) };
    case "bytes":
      return typeof body.data === "string"
        ? { bytes: Buffer.from(body.data) }
        : { bytes: Buffer.from(body.data.buffer, body.data.byteOffset, body.data.byteLength) };
    case "file": {
      const len = body.end - body.start;
      if (len > limit) return { tooBig: body };
      const buf = Buffer.allocUnsafe(len);
      try {
        let off = 0;
        while (off < len) {
          const n = readSync(body.fd, buf, off, len - off, body.start + off);
          if (n === 0) break;
          off += n;
        }
        return { bytes: off === len ? buf : buf.subarray(0, off) };
      } finally {
        if (!body.keepOpen) closeSync(body.fd);
      }
    }
    case "stream": {
      if (body.length !== undefined && body.length > limit) return { tooBig: body };
      const it = body.stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
      const chunks: Buffer[] = [];
      let size = 0;
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        const c = typeof r.value === "string" ? Buffer.from(r.value) : r.value;
        chunks.push(c);
        size += c.length;
        if (size > limit) {
          const rest = async function* (): AsyncGenerator<Buffer> {
            yield* chunks;
            for (;;) {
              const n = await it.next();
              if (n.done) return;
              yield typeof n.value === "string" ? Buffer.from(n.value) : n.value;
            }
          };
          return {
            tooBig: { kind: "stream", stream: Readable.from(rest()), length: body.length },
          };
        }
      }
      return { bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks) };
    }
    case "takeover":
      return { tooBig: body };
  }
}

/** Drop a body we will not send (an upstream error answered with a stale response). */
export function discardBody(body: Body): void {
  if (body.kind === "stream") body.stream.destroy();
  else if (body.kind === "file" && !body.keepOpen) {
    try {
      closeSync(body.fd);
    } catch {
      // closed already
    }
  }
}
