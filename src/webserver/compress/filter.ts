/**
 * The compression filter (nginx's gzip filter, and ngx_brotli's, for all three codings): a
 * response is compressed on its way out when
 *
 *   - its status is 200, 403 or 404 (nginx's set: not a 206, not a 304, not a redirect),
 *   - it has a body, no Content-Encoding yet (a precompressed file, a proxied compressed
 *     response) and no `Cache-Control: no-transform`,
 *   - its type is one of `compressTypes`, and its length, when known, is at least
 *     `compressMinLength`,
 *   - and the client accepts one of the enabled codings (q-values; ties: zstd, br, gzip).
 *
 * Every response that passes the type and length tests says `Vary: Accept-Encoding`, compressed
 * or not, so caches keep the variants apart. A compressed response loses its Content-Length (a
 * streamed body goes chunked; a body already in memory is compressed whole and gets its new
 * length), and Accept-Ranges, and its strong ETag becomes weak (nginx does the same: the bytes
 * differ from the identity representation's).
 */
import { close, createReadStream } from "node:fs";
import { pipeline, Readable } from "node:stream";
import { addToList, type Coding, negotiateEncoding } from "../contentCoding.ts";
import type { Body, WebRequest, WebResponse } from "../exchange.ts";
import type { ResponseFilter } from "../module.ts";
import type { Encoder } from "./codecs.ts";
import { bareType } from "./types.ts";

export interface CompressConfig {
  /** The enabled encoders, in the server's order of preference. */
  readonly encoders: readonly Encoder[];
  readonly types: (bare: string) => boolean;
  readonly minLength: number;
}

const compressedStatuses = new Set([200, 403, 404]);

function lengthOf(body: Body): number | undefined {
  switch (body.kind) {
    case "bytes":
      return typeof body.data === "string" ? Buffer.byteLength(body.data) : body.data.byteLength;
    case "file":
      return body.end - body.start;
    case "stream":
      return body.length;
    default:
      return undefined;
  }
}

function weaken(etag: string): string {
  return etag.startsWith('"') ? `W/${etag}` : etag;
}

function sourceOf(body: Body): Readable {
  if (body.kind === "file") {
    if (body.end <= body.start) {
      if (!body.keepOpen) close(body.fd, () => {});
      return Readable.from([]);
    }
    return createReadStream("", {
      fd: body.fd,
      start: body.start,
      end: body.end - 1,
      autoClose: !body.keepOpen,
      highWaterMark: 64 * 1024,
    });
  }
  if (body.kind === "stream") return body.stream;
  throw new Error(`cannot stream a ${body.kind} body`);
}

/** Release a body we will not send (HEAD): close its file, destroy its stream. */
function release(body: Body): void {
  if (body.kind === "file" && !body.keepOpen) close(body.fd, () => {});
  if (body.kind === "stream") body.stream.destroy();
}

export function compressFilter(c: CompressConfig): ResponseFilter {
  const offered: Coding[] = c.encoders.map((e) => e.coding);
  const byCoding = new Map(c.encoders.map((e) => [e.coding, e]));
  // Synchronous unless it compresses a body in memory: the pipeline awaits only a promise.
  return (req: WebRequest, res: WebResponse): WebResponse | Promise<WebResponse> => {
    if (!compressedStatuses.has(res.status)) return res;
    const body = res.body;
    if (body.kind === "empty" || body.kind === "takeover") return res;
    const f = res.fields;
    const encoding = f.get("content-encoding");
    if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") return res;
    if (f.has("content-range")) return res;
    const type = f.get("content-type");
    if (type === undefined || !c.types(bareType(type))) return res;
    const length = lengthOf(body);
    if (length !== undefined && length < c.minLength) return res;
    if (/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(f.joined("cache-control") ?? "")) return res;

    f.set("vary", addToList(f.joined("vary"), "Accept-Encoding"));
    const coding = negotiateEncoding(req.fields.joined("accept-encoding"), offered);
    if (coding === undefined) return res;
    const enc = byCoding.get(coding)!;

    f.set("content-encoding", coding);
    f.delete("content-length");
    f.delete("accept-ranges");
    const etag = f.get("etag");
    if (etag !== undefined) f.set("etag", weaken(etag));

    if (req.method === "HEAD") {
      // The length is unknown without compressing: say nothing, as a chunked GET would.
      release(body);
      return { ...res, body: { kind: "stream", stream: Readable.from([]) } };
    }
    if (body.kind === "bytes") {
      const data = typeof body.data === "string" ? Buffer.from(body.data) : body.data;
      return enc
        .once(data, data.byteLength)
        .then((out): WebResponse => ({ ...res, body: { kind: "bytes", data: out } }));
    }
    const z = enc.stream(length);
    // pipeline destroys every stage when one fails or the engine destroys the output (client
    // gone), which closes the file.
    pipeline(sourceOf(body), z, () => {});
    return { ...res, body: { kind: "stream", stream: z } };
  };
}
