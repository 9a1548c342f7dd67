/**
 * The static files module (nginx's static, index, autoindex, try_files, gzip_static and
 * open_file_cache, in one content handler). See docs/static.md for the nginx side-by-side.
 *
 * Files of this folder, by concern:
 *   fields.ts         the settings (and their documented defaults)
 *   serve.ts          the content handler: the order of decisions
 *   paths.ts          request path -> file path (root, alias), path safety, dotfiles
 *   symlinks.ts       the symbolic-link policy
 *   openFileCache.ts  lookups, cached facts and small files' content
 *   conditional.ts    ETag, Last-Modified, preconditions (RFC 9110 §13)
 *   range.ts          Range parsing, multipart/byteranges (RFC 9110 §14)
 *   mime.ts           Content-Type from the MIME table, default type, charset
 *   autoindex.ts      directory listings
 */
import type { LocationScope, ModuleHandlers, WebModule } from "../module.ts";
import { defaults, type StaticSettings, staticFields } from "./fields.ts";
import { TypeNamer } from "./mime.ts";
import { OpenFileCache } from "./openFileCache.ts";
import { cleanDir, isRegexLocation, locationPrefix, type Mapping } from "./paths.ts";
import { StaticHandler, type TryFiles } from "./serve.ts";
import { RealDirs, symlinksAllowed } from "./symlinks.ts";

/** Directory listings stop at this many entries. */
const listLimit = 10_000;

function fail(scope: LocationScope, setting: string, message: string): never {
  const where =
    scope.location.match === ""
      ? scope.location.path
      : `${scope.location.path} (location ${scope.location.match})`;
  throw new Error(`${where}.${setting}: ${message}`);
}

function compileMapping(scope: LocationScope<StaticSettings>): Mapping | undefined {
  const s = scope.settings;
  if (s.alias !== undefined) {
    const match = scope.location.match;
    if (match === "")
      fail(scope, "alias", "alias is valid in a location only; use root for a server");
    if (match.startsWith("@"))
      fail(scope, "alias", "a named location has no prefix to replace; use root");
    const raw = scope.resolvePath(s.alias);
    const withSlash = s.alias.endsWith("/") && !raw.endsWith("/") ? `${raw}/` : raw;
    if (isRegexLocation(match)) {
      const capture = withSlash.search(/\$(\d|\{?\w)/);
      const fixed = capture < 0 ? withSlash : withSlash.slice(0, capture);
      const dir = cleanDir(fixed.slice(0, fixed.lastIndexOf("/") + 1) || "/");
      return { kind: "aliasRegex", template: withSlash, dir };
    }
    const prefix = locationPrefix(match);
    if (prefix === undefined) fail(scope, "alias", `cannot tell the prefix of location "${match}"`);
    return { kind: "alias", dir: cleanDir(raw), raw: withSlash, prefix };
  }
  if (s.root !== undefined) return { kind: "root", dir: cleanDir(scope.resolvePath(s.root)) };
  return undefined;
}

/** Check and compile `tryFiles`. */
export function compileTryFiles(entries: readonly string[], scope?: LocationScope): TryFiles {
  const bad = (m: string): never => {
    if (scope) fail(scope, "tryFiles", m);
    throw new Error(`tryFiles: ${m}`);
  };
  if (entries.length < 2) bad("needs at least one file to try and a fallback (2 entries or more)");
  const last = entries[entries.length - 1]!;
  let fallback: TryFiles["fallback"];
  const code = /^=(\d{3})$/.exec(last);
  if (code) {
    const status = Number(code[1]);
    if (status < 200 || status > 599) bad(`"${last}": the status must be 200 to 599`);
    fallback = { kind: "status", status };
  } else if (last.startsWith("@")) {
    if (last.length < 2) bad(`"${last}": a named location needs a name`);
    fallback = { kind: "named", name: last };
  } else if (last.startsWith("/") || last.startsWith("$")) {
    fallback = { kind: "uri", template: last };
  } else {
    return bad(
      `"${last}": the last entry must be a URI ("/index.html"), a named location ("@app") or a status ("=404")`,
    );
  }
  const tests = entries.slice(0, -1).map((template) => {
    if (template === "") bad("an entry is empty");
    return { template, directory: template.endsWith("/") };
  });
  return { tests, fallback };
}

export const staticModule: WebModule<StaticSettings> = {
  name: "static",
  doc: "Serves files from a root or alias directory: index files, listings, try_files, conditional and range requests, precompressed siblings, an open-file cache.",
  fields: staticFields,
  setup(scope): ModuleHandlers | undefined {
    const s = scope.settings;
    const mapping = compileMapping(scope);
    if (mapping === undefined) {
      if (s.tryFiles !== undefined)
        fail(scope, "tryFiles", "needs a root or alias to look files up in");
      return undefined;
    }
    const index = s.index ?? [...defaults.index];
    index.forEach((name, i) => {
      if (name === "") fail(scope, "index", "a name is empty");
      if (name.startsWith("/") && i !== index.length - 1) {
        fail(scope, "index", `only the last index may be an absolute path ("${name}")`);
      }
      if (!name.startsWith("/") && name.includes("/")) {
        fail(scope, "index", `"${name}": a relative index is a file name, without "/"`);
      }
    });
    const charset = s.charset ?? defaults.charset;
    const cacheOptions = s.openFileCache ?? defaults.openFileCache;
    const symlinks = s.symlinks ?? defaults.symlinks;
    const realDirs = new RealDirs(cacheOptions.valid * 1000);
    const mappingDir = mapping.dir;
    const files = new OpenFileCache({
      max: cacheOptions.max,
      inactiveMs: cacheOptions.inactive * 1000,
      validMs: cacheOptions.valid * 1000,
      maxFileSize: cacheOptions.maxFileSize,
      verify:
        symlinks === "on"
          ? async () => true
          : async (path, fd) => {
              try {
                return await symlinksAllowed(
                  symlinks,
                  mappingDir,
                  await realDirs.get(mappingDir),
                  path,
                  fd,
                );
              } catch {
                return false;
              }
            },
    });
    scope.onClose(() => files.clear());
    const handler = new StaticHandler({
      mapping,
      index,
      autoindex: s.autoindex ?? defaults.autoindex,
      autoindexFormat: s.autoindexFormat ?? defaults.autoindexFormat,
      tryFiles: s.tryFiles === undefined ? undefined : compileTryFiles(s.tryFiles, scope),
      types: new TypeNamer(
        s.defaultType ?? defaults.defaultType,
        charset.toLowerCase() === "off" ? undefined : charset,
        s.charsetTypes ?? defaults.charsetTypes,
      ),
      etag: s.etag ?? defaults.etag,
      ifModifiedSince: s.ifModifiedSince ?? defaults.ifModifiedSince,
      symlinks,
      dotfiles: s.dotfiles ?? defaults.dotfiles,
      precompressed: s.precompressed ?? defaults.precompressed,
      maxRanges: s.maxRanges ?? defaults.maxRanges,
      files,
      listLimit,
    });
    return { content: handler.handle };
  },
};

export default staticModule;
