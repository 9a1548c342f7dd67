/**
 * Fields of the static-file module (src/webserver/static/), valid in server and location blocks
 * and inherited by nested blocks. Each names the nginx directive it stands for; the doc is the
 * user documentation (docs/settings.md, and docs/static.md for the side-by-side).
 *
 * Module fields give no `default`: inheritance (location < enclosing location < server < the
 * web section) needs to see "unset". The default is stated in the doc, and applied by the module
 * from {@link staticDefaults}. The core relies on `root` existing, for the quick start
 * `brigade web --root DIR` (src/config/settings/web.ts).
 */
import {
  boolean,
  byShape,
  duration,
  field,
  integer,
  list,
  object,
  oneOf,
  optional,
  record,
  refine,
  size,
  string,
} from "../../types.ts";

/** `tryFiles`, parsed: entries to test, then the fallback. */
export interface TryFiles {
  /** Tested in order: a file, or (ending in `/`) a directory. Variables are substituted first. */
  readonly tests: readonly { readonly template: string; readonly directory: boolean }[];
  readonly fallback:
    | { readonly kind: "uri"; readonly template: string }
    | { readonly kind: "named"; readonly name: string }
    | { readonly kind: "status"; readonly status: number };
}

/** Parse a `tryFiles` list; a string is the problem. */
export function parseTryFiles(entries: readonly string[]): TryFiles | string {
  if (entries.length < 2) {
    return "needs at least one file to try and a fallback (2 entries or more), as nginx's try_files";
  }
  const last = entries[entries.length - 1]!;
  let fallback: TryFiles["fallback"];
  const code = /^=(\d{3})$/.exec(last);
  if (code) {
    const status = Number(code[1]);
    if (status < 200 || status > 599) return `"${last}": the status must be 200 to 599`;
    fallback = { kind: "status", status };
  } else if (last.startsWith("@")) {
    if (!/^@[\w-]+$/.test(last)) return `"${last}": a named location is "@" and a name`;
    fallback = { kind: "named", name: last };
  } else if (last.startsWith("/") || last.startsWith("$")) {
    fallback = { kind: "uri", template: last };
  } else {
    return `"${last}": the last entry must be a URI ("/index.html"), a named location ("@app") or a status ("=404")`;
  }
  const tests: { template: string; directory: boolean }[] = [];
  for (const template of entries.slice(0, -1)) {
    if (template === "") return "an entry is empty";
    if (template.startsWith("@") || template.startsWith("=")) {
      return `"${template}": only the last entry may be a named location or a status`;
    }
    tests.push({ template, directory: template.endsWith("/") });
  }
  return { tests, fallback };
}

/** The open file cache's settings, normalised. */
export interface OpenFileCacheSettings {
  readonly max: number;
  readonly inactive: number;
  readonly valid: number;
  readonly maxFileSize: number;
  readonly maxBytes: number;
}

/** The defaults the docs below promise (applied by the module). */
export const staticDefaults = {
  index: ["index.html"],
  autoindex: false,
  autoindexFormat: "html",
  defaultType: "application/octet-stream",
  charset: "utf-8",
  charsetTypes: [
    "text/*",
    "application/javascript",
    "application/json",
    "application/manifest+json",
    "application/xml",
    "application/rss+xml",
    "application/atom+xml",
    "image/svg+xml",
  ],
  etag: true,
  ifModifiedSince: "exact",
  symlinks: "on",
  dotfiles: "ignore",
  precompressed: [],
  maxRanges: 100,
  openFileCache: {
    max: 1000,
    inactive: 60,
    valid: 1,
    maxFileSize: 1024 * 1024,
    maxBytes: 64 * 1024 * 1024,
  },
} as const;

const cacheOff: OpenFileCacheSettings = { ...staticDefaults.openFileCache, max: 0 };

const openFileCacheType = byShape(
  {
    boolean: refine(
      boolean(),
      (on): OpenFileCacheSettings => (on ? staticDefaults.openFileCache : cacheOff),
    ),
    object: object(
      {
        max: field({
          type: integer({ min: 0 }),
          default: staticDefaults.openFileCache.max,
          doc: "Entries kept per worker, least recently used dropped first; 0 turns the cache off. Locations with the same cache settings (and symlink policy) share one cache.",
          nginx: "open_file_cache max=",
        }),
        inactive: field({
          type: duration(),
          default: "60s",
          doc: "An entry not used for this long is dropped.",
          nginx: "open_file_cache inactive=",
        }),
        valid: field({
          type: duration(),
          default: "1s",
          doc: "How long an entry is trusted before one `stat` checks the file again: edits show up within this time (nginx's default is 60s).",
          nginx: "open_file_cache_valid",
        }),
        maxFileSize: field({
          type: size(),
          default: "1m",
          doc: "Files up to this size are kept in memory and served without touching the disk (nginx caches descriptors, never content, and sends from the page cache with sendfile, which Node cannot). Larger files are streamed from the descriptor through reused 256 KiB buffers, one per connection at a time.",
        }),
        maxBytes: field({
          type: size(),
          default: "64m",
          doc: "The content held in memory by one cache at most (per worker), all files together; the least recently used go first. Bounds the cache's memory whatever the number of files.",
        }),
      },
      { name: "open file cache" },
    ),
  },
  {
    name: "open file cache",
    expected: "true, false, or { max, inactive, valid, maxFileSize, maxBytes }",
  },
);

const mediaType = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/i;
const mediaPattern = /^(\*|[a-z0-9!#$&^_.+-]+\/(\*|[a-z0-9!#$&^_.+-]+))$/i;

const typePatterns = refine(list(string({ metavar: "TYPE" })), (types, problem) => {
  const bad = types.find((t) => !mediaPattern.test(t));
  return bad === undefined ? types : problem(`not a media type or pattern: ${JSON.stringify(bad)}`);
});

export const staticFields = {
  root: field({
    type: optional(string({ metavar: "DIR" })),
    doc: "The directory files are served from: a request for `/a/b.txt` is `<root>/a/b.txt`. Relative to the config file's directory (or the working directory without one). A location with a `root` (its own or inherited) serves files unless another module answers for it. Unset: no files are served.",
    nginx: "root",
  }),
  alias: field({
    type: optional(string({ metavar: "DIR" })),
    doc: 'Serve a location from another directory, replacing the location\'s prefix: with `match: "/img/"` and `alias: "/data/pictures/"`, `/img/a.png` is `/data/pictures/a.png`. In a regex location it is the whole file path and may use the captures (`"/data/$1"`). Locations only. Where both apply, the one set on the block itself wins, else `alias`. Unlike nginx, a prefix and an alias that disagree on the trailing slash never let a request out of the directory (`/img../secret`).',
    nginx: "alias",
  }),
  index: field({
    type: optional(
      refine(list(string()), (names, problem) => {
        for (const [i, name] of names.entries()) {
          if (name === "") return problem("a name is empty");
          if (name.startsWith("/") && i !== names.length - 1) {
            return problem(`only the last index may be an absolute path ("${name}")`);
          }
          if (!name.startsWith("/") && name.includes("/")) {
            return problem(
              `"${name}": an index is a file name, without "/" (or, last, an absolute path)`,
            );
          }
        }
        return names;
      }),
    ),
    doc: 'The files tried, in order, for a request ending in "/"; the first that exists is served by an internal redirect to it (so its own location applies). The last may be an absolute path, used without checking. Default `["index.html"]`.',
    nginx: "index",
  }),
  autoindex: field({
    type: optional(boolean()),
    doc: "List a directory that has no index file instead of answering 403. Names starting with a dot are listed only when `dotfiles` is `allow`, and links only where `symlinks` would serve them; a listing stops at 10,000 entries. Default false.",
    nginx: "autoindex",
  }),
  autoindexFormat: field({
    type: optional(oneOf(["html", "json"])),
    doc: "The listing's format: `html`, or `json` (nginx's layout: an array of `{name, type, mtime, size}`). With `html`, a client whose `Accept` prefers `application/json` to `text/html` gets the JSON, and the listing says `Vary: Accept`. Default `\"html\"`.",
    nginx: "autoindex_format",
  }),
  tryFiles: field({
    type: optional(
      refine(list(string()), (entries, problem) => {
        const parsed = parseTryFiles(entries);
        return typeof parsed === "string" ? problem(parsed) : entries;
      }),
    ),
    doc: 'Try files in order and serve the first that exists, else fall back to the last entry. Entries are request paths with variables (`$uri`, `$args`, `$is_args`, `$request_uri`, `$host`, captures `$1`..`$9` and named captures); one ending in `/` tests for a directory (then served by `index` or `autoindex`). The last entry is a URI to redirect to internally (`"/index.html"`, `"/index.php?$args"`: the query is only what it says), a named location (`"@app"`), or a status (`"=404"`). The single-page app: `["$uri", "/index.html"]`.',
    nginx: "try_files",
  }),
  types: field({
    type: optional(
      record(list(string({ metavar: "EXT" })), {
        name: "media type -> extensions",
        key: (k) => (mediaType.test(k) ? undefined : `not a media type: ${JSON.stringify(k)}`),
      }),
    ),
    doc: 'More file extensions and their media types, over the built-in table (mime-db, the registry that merges IANA\'s, Apache\'s and nginx\'s lists): `{ "text/x-nginx-conf": ["conf"], "application/wasm": ["wasm"] }` (no leading dot).',
    nginx: "types",
  }),
  defaultType: field({
    type: optional(string({ metavar: "TYPE" })),
    doc: 'The Content-Type of files whose extension no table knows. Default `"application/octet-stream"` (what nginx\'s shipped nginx.conf sets; its built-in default is text/plain).',
    nginx: "default_type",
  }),
  charset: field({
    type: optional(string({ metavar: "CHARSET" })),
    doc: 'Added as `; charset=...` to the Content-Type of the `charsetTypes`; `"off"` adds none. Default `"utf-8"` (nginx\'s default is off).',
    nginx: "charset",
  }),
  charsetTypes: field({
    type: optional(typePatterns),
    doc: "The media types that get the `charset`; `text/*` patterns allowed. Default: `text/*`, `application/javascript`, `application/json`, `application/manifest+json`, `application/xml`, `application/rss+xml`, `application/atom+xml`, `image/svg+xml`.",
    nginx: "charset_types",
  }),
  etag: field({
    type: optional(boolean()),
    doc: 'Send an ETag, in nginx\'s format `"<mtime hex>-<size hex>"` (strong; the compression filter makes it weak when it compresses). Default true.',
    nginx: "etag",
  }),
  ifModifiedSince: field({
    type: optional(oneOf(["off", "exact", "before"])),
    doc: "How If-Modified-Since is compared with the file's time: `exact` answers 304 only for the same second (a file replaced by an older one is not taken for unchanged), `before` for any date not earlier than the file's (RFC 9110's reading), `off` never. If-None-Match takes precedence when both are sent (RFC 9110; nginx wants both to agree). Default `\"exact\"`.",
    nginx: "if_modified_since",
  }),
  symlinks: field({
    type: optional(oneOf(["on", "off", "ifOwnerMatch"])),
    doc: 'Whether symbolic links below the root (or alias) directory are followed: `on` follows them, `off` refuses (403) a path with a link in any of its components, `ifOwnerMatch` follows a link only when the link and its target have the same owner. The root directory itself may be a link (deploys switch a `current` link), as with nginx\'s `from=$document_root`. nginx spells it the other way round: `on` is `disable_symlinks off`, `off` is `disable_symlinks on`, `ifOwnerMatch` is `disable_symlinks if_not_owner`. Default `"on"`.',
    nginx: "disable_symlinks",
  }),
  dotfiles: field({
    type: optional(oneOf(["ignore", "deny", "allow"])),
    doc: 'Requests for a path with a segment starting with a dot (`/.env`, `/.git/config`): `ignore` answers 404 as if it did not exist, `deny` 403, `allow` serves it. `/.well-known/` is always allowed (RFC 8615). nginx has no directive for this (one writes `location ~ /\\. { deny all; }`). Default `"ignore"`.',
  }),
  precompressed: field({
    type: optional(list(oneOf(["br", "zstd", "gzip"]))),
    doc: "Serve a precompressed sibling (`file.br`, `file.zst`, `file.gz`) instead of the file when the client accepts that encoding, by the client's q-values, ties broken by this list's order. The response says `Vary: Accept-Encoding` whenever a sibling exists; its ETag and Last-Modified are the sibling's. Default none (`[]`).",
    nginx: "gzip_static, brotli_static (ngx_brotli)",
  }),
  maxRanges: field({
    type: optional(integer({ min: 0 })),
    doc: "The most byte ranges one request may ask for; with more the whole file is sent; 0 turns range requests off. Overlapping and adjacent ranges are merged. Default 100 (nginx: unlimited).",
    nginx: "max_ranges",
  }),
  openFileCache: field({
    type: optional(openFileCacheType),
    doc: 'Cache what file lookups find: existence (errors too), type, size, validators, the symlink check, and the content of small files. `true` (the default) is `{ max: 1000, inactive: "60s", valid: "1s", maxFileSize: "1m", maxBytes: "64m" }`; `false` turns it off.',
    nginx: "open_file_cache, open_file_cache_valid, open_file_cache_errors on",
  }),
};
