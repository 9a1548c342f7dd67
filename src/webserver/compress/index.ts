/**
 * The compression filter module: on-the-fly gzip, brotli and zstd for responses of any origin
 * (see filter.ts for when). Its settings are in src/config/settings/web/compress.ts.
 */
import { compressDefaults, compressFields } from "../../config/settings/web/compress.ts";
import type { OutOf } from "../../config/types.ts";
import type { ModuleHandlers, WebModule } from "../module.ts";
import { type Encoder, encoder } from "./codecs.ts";
import { compressFilter } from "./filter.ts";
import { typeMatcher } from "./types.ts";

export type CompressSettings = {
  [K in keyof typeof compressFields]: OutOf<(typeof compressFields)[K]["type"]>;
};

export const compressModule: WebModule<CompressSettings> = {
  name: "compress",
  doc: "Compresses responses on the fly with gzip, brotli or zstd, by the client's Accept-Encoding.",
  fields: compressFields,
  setup(scope): ModuleHandlers | undefined {
    const s = scope.settings;
    const d = compressDefaults;
    // The server's preference when the client likes several equally: zstd compresses about as
    // well as brotli at a fraction of the CPU, and both beat gzip.
    const encoders: Encoder[] = [];
    if (s.zstd ?? d.zstd) encoders.push(encoder("zstd", s.zstdLevel ?? d.zstdLevel));
    if (s.brotli ?? d.brotli) encoders.push(encoder("br", s.brotliLevel ?? d.brotliLevel));
    if (s.gzip ?? d.gzip) encoders.push(encoder("gzip", s.gzipLevel ?? d.gzipLevel));
    if (encoders.length === 0) return undefined;
    return {
      filter: compressFilter({
        encoders,
        types: typeMatcher(s.compressTypes),
        minLength: s.compressMinLength ?? d.compressMinLength,
      }),
    };
  },
};

export default compressModule;
