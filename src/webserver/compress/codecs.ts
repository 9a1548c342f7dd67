/**
 * The encoders, from node:zlib: one-shot (for a body already in memory: the result's length is
 * known, so it goes out with Content-Length) and streaming (for files and streams: chunked, with
 * backpressure through the pipeline).
 */
import type { Transform } from "node:stream";
import zlib from "node:zlib";
import type { Coding } from "../contentCoding.ts";

export interface Encoder {
  readonly coding: Coding;
  /** Compress a whole body (in libuv's thread pool). */
  once(data: Uint8Array, sizeHint: number): Promise<Buffer>;
  /** A streaming compressor. */
  stream(sizeHint: number | undefined): Transform;
}

function brotliParams(level: number, sizeHint: number | undefined): Record<number, number> {
  const params: Record<number, number> = {
    [zlib.constants.BROTLI_PARAM_QUALITY]: level,
    [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
  };
  if (sizeHint !== undefined && sizeHint > 0) {
    params[zlib.constants.BROTLI_PARAM_SIZE_HINT] = sizeHint;
  }
  return params;
}

export function encoder(coding: Coding, level: number): Encoder {
  switch (coding) {
    case "gzip":
      return {
        coding,
        once: (data) =>
          new Promise((resolve, reject) =>
            zlib.gzip(data, { level }, (err, out) => (err ? reject(err) : resolve(out))),
          ),
        stream: () => zlib.createGzip({ level }),
      };
    case "br":
      return {
        coding,
        once: (data, sizeHint) =>
          new Promise((resolve, reject) =>
            zlib.brotliCompress(data, { params: brotliParams(level, sizeHint) }, (err, out) =>
              err ? reject(err) : resolve(out),
            ),
          ),
        stream: (sizeHint) => zlib.createBrotliCompress({ params: brotliParams(level, sizeHint) }),
      };
    case "zstd": {
      const params = { [zlib.constants.ZSTD_c_compressionLevel]: level };
      return {
        coding,
        once: (data, sizeHint) =>
          new Promise((resolve, reject) =>
            zlib.zstdCompress(data, { params, pledgedSrcSize: sizeHint }, (err, out) =>
              err ? reject(err) : resolve(out),
            ),
          ),
        stream: (sizeHint) =>
          zlib.createZstdCompress(
            sizeHint === undefined ? { params } : { params, pledgedSrcSize: sizeHint },
          ),
      };
    }
  }
}
