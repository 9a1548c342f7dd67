/**
 * The static files module: nginx's static, index, autoindex, try_files, gzip_static and
 * open_file_cache, as one default content handler (it serves any location with a `root` or
 * `alias` that no other module answers for). See docs/static.md for the nginx side-by-side.
 *
 * Files of this folder, by concern (the settings are in src/config/settings/web/static.ts):
 *   serve.ts          the content handler: the order of decisions
 *   paths.ts          request path -> file path (root, alias), path safety, dotfiles
 *   symlinks.ts       the symbolic-link policy
 *   openFileCache.ts  lookups, cached facts and small files' content
 *   conditional.ts    ETag, Last-Modified, preconditions (RFC 9110 §13)
 *   range.ts          Range parsing, multipart/byteranges (RFC 9110 §14)
 *   mime.ts           Content-Type from the MIME table, default type, charset
 *   autoindex.ts      directory listings
 */
import {
  type OpenFileCacheSettings,
  parseTryFiles,
  staticDefaults,
  staticFields,
  type TryFiles,
} from "../../config/settings/web/static.ts";
import { parseLocationMatch } from "../../config/settings/web/syntax.ts";
import type { OutOf } from "../../config/types.ts";
import type { LocationScope, ModuleHandlers, WebModule } from "../module.ts";
import { TypeNamer } from "./mime.ts";
import { OpenFileCache } from "./openFileCache.ts";
import { cleanDir } from "./paths.ts";
import { type CompiledTryFiles, type MappingOf, type Render, StaticHandler } from "./serve.ts";
import { RealDirs, type SymlinkPolicy, symlinksAllowed } from "./symlinks.ts";

/** The settings as `setup` receives them: each undefined when unset. */
export type StaticSettings = {
  [K in keyof typeof staticFields]: OutOf<(typeof staticFields)[K]["type"]>;
};

/** Directory listings stop at this many entries. */
const listLimit = 10_000;

/** Refuse the config: the core names the file, the location and the module before this. */
function fail(setting: string, message: string): never {
  throw new Error(`${setting}: ${message}`);
}

/** root or alias: the one set on this block wins, else alias (only locations have one). */
function compileMapping(scope: LocationScope<StaticSettings>): MappingOf | undefined {
  const s = scope.settings;
  const useAlias =
    s.alias !== undefined && !(scope.own.root !== undefined && scope.own.alias === undefined);
  if (useAlias) {
    const alias = s.alias!;
    const text = scope.location.match;
    if (text === "") fail("alias", "alias is valid in a location only; a server uses root");
    const match = parseLocationMatch(text);
    if (typeof match === "string") fail("alias", match);
    if (match.kind === "named") {
      fail("alias", "a named location has no prefix to replace; use root");
    }
    const resolved = scope.resolvePath(alias);
    const raw = alias.endsWith("/") && !resolved.endsWith("/") ? `${resolved}/` : resolved;
    if (match.kind === "regex") {
      // The whole path comes from the captures; it must stay in the part before the first one.
      const capture = raw.search(/\$(\d|\{?\w)/);
      const fixed = capture < 0 ? raw : raw.slice(0, capture);
      const dir = cleanDir(fixed.slice(0, fixed.lastIndexOf("/") + 1) || "/");
      return { kind: "aliasRegex", render: compile(scope, "alias", raw), dir };
    }
    return { kind: "alias", dir: cleanDir(resolved), raw, prefix: match.uri };
  }
  if (s.root !== undefined) return { kind: "root", dir: cleanDir(scope.resolvePath(s.root)) };
  return undefined;
}

/** A setting's text with `$variables`, compiled by the core (unknown names fail the config). */
function compile(scope: LocationScope<StaticSettings>, setting: string, text: string): Render {
  let t: ReturnType<LocationScope["template"]>;
  try {
    t = scope.template(text);
  } catch (err) {
    fail(setting, `${JSON.stringify(text)}: ${(err as Error).message}`);
  }
  return (req) => t({ req });
}

function compileTryFiles(scope: LocationScope<StaticSettings>, tf: TryFiles): CompiledTryFiles {
  const f = tf.fallback;
  return {
    tests: tf.tests.map((e) => ({
      render: compile(scope, "tryFiles", e.template),
      directory: e.directory,
    })),
    fallback:
      f.kind === "uri" ? { kind: "uri", render: compile(scope, "tryFiles", f.template) } : f,
  };
}

/**
 * The open-file cache of a location. Locations with the same cache settings, symlink policy and
 * directory share one (per worker and pipeline: `scope.shared`), so that twenty locations under
 * one root do not hold twenty copies of the same files; its `max` bounds them together.
 */
function sharedCache(
  scope: LocationScope<StaticSettings>,
  cache: OpenFileCacheSettings,
  symlinks: SymlinkPolicy,
  base: string,
): OpenFileCache {
  const key = `openFileCache ${JSON.stringify([cache, symlinks === "on" ? "on" : [symlinks, base]])}`;
  const known = scope.shared.get(key);
  if (known instanceof OpenFileCache) return known;
  const realDirs = new RealDirs(cache.valid * 1000);
  const files = new OpenFileCache({
    max: cache.max,
    inactiveMs: cache.inactive * 1000,
    validMs: cache.valid * 1000,
    maxFileSize: cache.maxFileSize,
    maxBytes: cache.maxBytes,
    verify:
      symlinks === "on"
        ? async () => true
        : async (path, fd) => {
            try {
              return await symlinksAllowed(symlinks, base, await realDirs.get(base), path, fd);
            } catch {
              return false;
            }
          },
  });
  scope.shared.set(key, files);
  scope.onClose(() => files.clear());
  return files;
}

/** Extension -> media type overrides from `types`. */
function typeOverrides(types: Record<string, string[]> | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const [type, exts] of Object.entries(types ?? {})) {
    for (const ext of exts) out.set(`.${ext.replace(/^\./, "").toLowerCase()}`, type);
  }
  return out;
}

export const staticModule: WebModule<StaticSettings> = {
  name: "static",
  doc: "Serves files from a root or alias directory: index files, listings, try_files, conditional and range requests, precompressed siblings, an open-file cache.",
  fields: staticFields,
  setup(scope): ModuleHandlers | undefined {
    const s = scope.settings;
    const mapping = compileMapping(scope);
    if (mapping === undefined) {
      if (scope.own.tryFiles !== undefined) {
        fail("tryFiles", "needs a root or alias to look files up in");
      }
      return undefined;
    }
    let tryFiles: CompiledTryFiles | undefined;
    if (s.tryFiles !== undefined) {
      const parsed = parseTryFiles(s.tryFiles);
      if (typeof parsed === "string") fail("tryFiles", parsed);
      tryFiles = compileTryFiles(scope, parsed);
    }
    const charset = s.charset ?? staticDefaults.charset;
    const cache = s.openFileCache ?? staticDefaults.openFileCache;
    const symlinks = s.symlinks ?? staticDefaults.symlinks;
    const files = sharedCache(scope, cache, symlinks, mapping.dir);
    const handler = new StaticHandler({
      mapping,
      index: s.index ?? [...staticDefaults.index],
      autoindex: s.autoindex ?? staticDefaults.autoindex,
      autoindexFormat: s.autoindexFormat ?? staticDefaults.autoindexFormat,
      tryFiles,
      types: new TypeNamer(
        s.defaultType ?? staticDefaults.defaultType,
        charset.toLowerCase() === "off" ? undefined : charset,
        s.charsetTypes ?? staticDefaults.charsetTypes,
        typeOverrides(s.types),
      ),
      etag: s.etag ?? staticDefaults.etag,
      ifModifiedSince: s.ifModifiedSince ?? staticDefaults.ifModifiedSince,
      symlinks,
      dotfiles: s.dotfiles ?? staticDefaults.dotfiles,
      precompressed: s.precompressed ?? staticDefaults.precompressed,
      maxRanges: s.maxRanges ?? staticDefaults.maxRanges,
      files,
      listLimit,
    });
    return { defaultContent: handler.handle };
  },
};

export default staticModule;
