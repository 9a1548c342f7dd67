/**
 * Fields of the compression filter (src/webserver/compress/): on-the-fly gzip, brotli and zstd of
 * responses, whatever produced them (files, proxied responses, error pages). Valid in server and
 * location blocks, inherited by nested blocks. No schema defaults (inheritance needs "unset"):
 * the docs state them and the module applies {@link compressDefaults}.
 */
import { boolean, field, integer, list, optional, refine, size, string } from "../../types.ts";

export const compressDefaults = {
  gzip: false,
  gzipLevel: 1,
  brotli: false,
  brotliLevel: 4,
  zstd: false,
  zstdLevel: 3,
  compressMinLength: 512,
} as const;

const mediaPattern = /^(\*|[a-z0-9!#$&^_.+-]+\/(\*|[a-z0-9!#$&^_.+-]+))$/i;

export const compressFields = {
  gzip: field({
    type: optional(boolean()),
    doc: "Compress responses with gzip on the fly for clients that accept it. Default false.",
    nginx: "gzip",
  }),
  gzipLevel: field({
    type: optional(integer({ min: 1, max: 9 })),
    doc: "gzip's compression level, 1 (fastest) to 9 (smallest). Default 1, as nginx.",
    nginx: "gzip_comp_level",
  }),
  brotli: field({
    type: optional(boolean()),
    doc: "Compress responses with brotli on the fly for clients that accept it (`br`). Default false.",
    nginx: "brotli (ngx_brotli)",
  }),
  brotliLevel: field({
    type: optional(integer({ min: 0, max: 11 })),
    doc: "brotli's quality, 0 (fastest) to 11 (smallest, far too slow on the fly). Default 4 (ngx_brotli's is 6, twice the CPU for a few percent).",
    nginx: "brotli_comp_level (ngx_brotli)",
  }),
  zstd: field({
    type: optional(boolean()),
    doc: "Compress responses with Zstandard on the fly for clients that accept it (RFC 8878; Chrome and Firefox do). Default false.",
    nginx: "zstd (zstd-nginx-module)",
  }),
  zstdLevel: field({
    type: optional(integer({ min: 1, max: 19 })),
    doc: "zstd's level, 1 to 19. Default 3 (zstd's own default).",
    nginx: "zstd_comp_level (zstd-nginx-module)",
  }),
  compressTypes: field({
    type: optional(
      refine(list(string({ metavar: "TYPE" })), (types, problem) => {
        const bad = types.find((t) => !mediaPattern.test(t));
        return bad === undefined
          ? types
          : problem(`not a media type or pattern: ${JSON.stringify(bad)}`);
      }),
    ),
    doc: 'The media types compressed; `text/*` patterns allowed, `"*"` for all. Default: every `text/*` type and every type the mime-db registry marks compressible (JSON, JavaScript, XML, SVG, WebAssembly, fonts...), except `application/octet-stream` and `text/event-stream` (nginx\'s default is `text/html` alone).',
    nginx: "gzip_types, brotli_types, zstd_types",
  }),
  compressMinLength: field({
    type: optional(size()),
    doc: "Responses whose length is known and smaller than this are sent as they are (the encoding overhead would eat the gain). Default 512 bytes (nginx: 20).",
    nginx: "gzip_min_length",
  }),
};
