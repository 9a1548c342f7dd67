/**
 * The static module's settings, valid in server and location blocks and inherited by nested
 * locations. Each names the nginx directive it stands for; the doc is the user documentation.
 * No field has a schema default (inheritance needs to see "unset"): the defaults named in the
 * docs are applied in `setup` (see {@link defaults}).
 */
import {
  boolean,
  duration,
  field,
  integer,
  list,
  type OutOf,
  object,
  oneOf,
  optional,
  size,
  string,
} from "../../config/types.ts";

export const staticFields = {
  root: field({
    type: optional(string({ metavar: "DIR" })),
    doc: "The directory files are served from: a request for `/a/b.css` is the file `<root>/a/b.css` (nginx `root`). Relative to the config file's directory. A location with `root` or `alias` serves files unless another module answers for it.",
  }),
  alias: field({
    type: optional(string({ metavar: "DIR" })),
    doc: 'Serve a location from another directory, replacing the location\'s prefix (nginx `alias`): with `location /img/` and `alias: "/data/pictures/"`, `/img/a.png` is `/data/pictures/a.png`. In a regex location it is the whole file path and may use the captures (`/data/$1`). Takes precedence over an inherited `root`. Unlike nginx, a prefix and an alias that disagree on the trailing slash never let a request out of the directory (`/img../secret`).',
  }),
  index: field({
    type: optional(list(string())),
    doc: 'Files tried, in order, for a request ending in `/` (nginx `index`); the first that exists is served through an internal redirect to it, so its own location applies. The last may be an absolute path, used without checking. Default `["index.html"]`.',
  }),
  autoindex: field({
    type: optional(boolean()),
    doc: "List a directory that has no index file (nginx `autoindex`), instead of answering 403. Names starting with a dot are listed only when `dotfiles` is `allow`, and links only where `symlinks` would serve them. Default false.",
  }),
  autoindexFormat: field({
    type: optional(oneOf(["html", "json"] as const)),
    doc: "The listing's format (nginx `autoindex_format`): `html`, or `json` (nginx's layout: an array of `{name, type, mtime, size}`). With `html`, a client whose `Accept` prefers `application/json` to `text/html` gets JSON (and the listing says `Vary: Accept`). Default `\"html\"`.",
  }),
  tryFiles: field({
    type: optional(list(string())),
    doc: 'Try files in order and serve the first that exists, else fall back to the last entry (nginx `try_files`). Entries are request paths with variables (`$uri`, `$args`, `$is_args`, `$request_uri`, `$host`, captures `$1`..`$9` and named captures); one ending in `/` tests for a directory (then served by `index`/`autoindex`). The last entry is a URI to redirect to internally (`"/index.html"`, `"/index.php?$args"`), a named location (`"@app"`), or `"=404"` (any status). The single-page app case: `["$uri", "/index.html"]`.',
  }),
  defaultType: field({
    type: optional(string({ metavar: "TYPE" })),
    doc: 'The Content-Type of files whose extension the MIME table (mime-db, via mime-types) does not know (nginx `default_type`). Default `"application/octet-stream"` (what nginx\'s shipped nginx.conf sets; its built-in default is text/plain).',
  }),
  charset: field({
    type: optional(string({ metavar: "CHARSET" })),
    doc: 'Added as `; charset=...` to the Content-Type of the `charsetTypes` (nginx `charset`); `"off"` adds none. Default `"utf-8"` (nginx\'s default is off).',
  }),
  charsetTypes: field({
    type: optional(list(string({ metavar: "TYPE" }))),
    doc: "The media types that get the `charset` (nginx `charset_types`); `text/*` patterns allowed. Default: `text/*`, `application/javascript`, `application/json`, `application/manifest+json`, `application/xml`, `application/rss+xml`, `application/atom+xml`, `image/svg+xml`.",
  }),
  etag: field({
    type: optional(boolean()),
    doc: 'Send an ETag, in nginx\'s format `"<mtime hex>-<size hex>"` (nginx `etag`). Default true.',
  }),
  ifModifiedSince: field({
    type: optional(oneOf(["off", "exact", "before"] as const)),
    doc: "How If-Modified-Since is compared with the file's time (nginx `if_modified_since`): `exact` answers 304 only for the same second (a file replaced by an older one is not mistaken for unchanged), `before` for any date not earlier than the file's (RFC 9110's reading), `off` never. If-None-Match takes precedence when both are sent. Default `\"exact\"`.",
  }),
  symlinks: field({
    type: optional(oneOf(["on", "off", "ifOwnerMatch"] as const)),
    doc: 'Whether symbolic links below the root or alias directory are followed (nginx `disable_symlinks`, with the opposite sense): `on` follows them (nginx `disable_symlinks off`), `off` refuses (403) any path with a link in any component (nginx `disable_symlinks on`), `ifOwnerMatch` follows a link only when it and its target have the same owner (nginx `if_not_owner`). The root directory itself may be a link. Default `"on"`.',
  }),
  dotfiles: field({
    type: optional(oneOf(["ignore", "deny", "allow"] as const)),
    doc: 'Requests for a path with a segment starting with a dot (`/.env`, `/.git/config`): `ignore` answers 404 as if it did not exist, `deny` 403, `allow` serves it. `/.well-known/` is always allowed (RFC 8615). nginx has no directive for this (one writes `location ~ /\\. { deny all; }`). Default `"ignore"`.',
  }),
  precompressed: field({
    type: optional(list(oneOf(["br", "zstd", "gzip"] as const))),
    doc: "Serve a precompressed sibling (`file.br`, `file.zst`, `file.gz`) instead of the file when the client accepts that encoding (nginx `gzip_static`, and ngx_brotli's `brotli_static`), choosing by the client's q-values, ties broken by this list's order; the response says `Vary: Accept-Encoding` whenever a sibling exists. Its ETag and Last-Modified are the sibling's. Default none (`[]`).",
  }),
  maxRanges: field({
    type: optional(integer({ min: 0 })),
    doc: "The most byte ranges one request may ask for; more and the whole file is sent, 0 disables range requests (nginx `max_ranges`). Overlapping and adjacent ranges are merged. Default 100 (nginx: unlimited).",
  }),
  openFileCache: field({
    type: optional(
      object(
        {
          max: field({
            type: integer({ min: 0 }),
            default: 1000,
            doc: "Entries kept per location and worker, least recently used dropped first; 0 turns the cache off.",
          }),
          inactive: field({
            type: duration(),
            default: "60s",
            doc: "An entry not used for this long is dropped (nginx `inactive=`).",
          }),
          valid: field({
            type: duration(),
            default: "1s",
            doc: "How long an entry is trusted before one `stat` checks the file again (nginx `open_file_cache_valid`, default 60s there): edits show up within this time.",
          }),
          maxFileSize: field({
            type: size(),
            default: "64k",
            doc: "Files up to this size are kept in memory and served without touching the disk.",
          }),
        },
        { name: "open file cache" },
      ),
    ),
    doc: 'Cache what file lookups find (nginx `open_file_cache`, `open_file_cache_valid`, `open_file_cache_errors on`): existence, type, size, validators, the symlink check, and the content of small files. Default on: `{ max: 1000, inactive: "60s", valid: "1s", maxFileSize: "64k" }`; `{ max: 0 }` turns it off.',
  }),
};

export type StaticFields = typeof staticFields;
/** The settings as `setup` receives them: each undefined when unset. */
export type StaticSettings = { [K in keyof StaticFields]: OutOf<StaticFields[K]["type"]> };

/** The defaults the docs above promise. */
export const defaults = {
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
  openFileCache: { max: 1000, inactive: 60, valid: 1, maxFileSize: 64 * 1024 },
} as const;
