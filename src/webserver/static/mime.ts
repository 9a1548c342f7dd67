/**
 * Content-Type of a file from its extension, from the `mime-types` package (jshttp's table over
 * `mime-db`, the registry that merges IANA, Apache and nginx's mime.types and is kept up to date
 * by the community; its extension conflicts are resolved by a maintained scoring, so `.js` is
 * `text/javascript` per RFC 9239), plus nginx's `default_type` and `charset`/`charset_types`.
 */
import { extname } from "node:path";
import mimeTypes from "mime-types";

/** A media-type pattern: `text/html`, `text/*` or `*`. */
export function typeMatches(type: string, patterns: readonly string[]): boolean {
  const semi = type.indexOf(";");
  const bare = (semi < 0 ? type : type.slice(0, semi)).trim().toLowerCase();
  for (const p of patterns) {
    if (p === "*" || p === "*/*" || p === bare) return true;
    if (p.endsWith("/*") && bare.startsWith(p.slice(0, -1))) return true;
  }
  return false;
}

/** How one location names types: built once per location, memoised per extension. */
export class TypeNamer {
  readonly #defaultType: string;
  readonly #charset: string | undefined;
  readonly #charsetTypes: readonly string[];
  readonly #overrides: ReadonlyMap<string, string>;
  readonly #byExtension = new Map<string, string>();
  /** The last path asked for, and its type. */
  #lastPath = "";
  #lastType = "";

  /**
   * @param defaultType for files whose extension the table does not know (nginx `default_type`)
   * @param charset added as `; charset=` to the types of `charsetTypes`; undefined for none
   * @param overrides `.ext` -> type, over the table (nginx `types`)
   */
  constructor(
    defaultType: string,
    charset: string | undefined,
    charsetTypes: readonly string[],
    overrides: ReadonlyMap<string, string> = new Map(),
  ) {
    this.#defaultType = defaultType;
    this.#charset = charset;
    this.#charsetTypes = charsetTypes.map((t) => t.toLowerCase());
    this.#overrides = overrides;
    this.#lastType = this.#forPath(this.#lastPath);
  }

  /** The Content-Type value for a file name. */
  forPath(path: string): string {
    // The same file as last time (a hot file: its path is the open-file cache's same string).
    if (path === this.#lastPath) return this.#lastType;
    const type = this.#forPath(path);
    this.#lastPath = path;
    this.#lastType = type;
    return type;
  }

  #forPath(path: string): string {
    const ext = extname(path).toLowerCase();
    let type = this.#byExtension.get(ext);
    if (type === undefined) {
      const known = ext === "" ? undefined : (this.#overrides.get(ext) ?? mimeTypes.lookup(ext));
      type = this.withCharset(known || this.#defaultType);
      if (this.#byExtension.size < 4096) this.#byExtension.set(ext, type);
    }
    return type;
  }

  /** `type` with `; charset=...` when configured for it (never a second charset parameter). */
  withCharset(type: string): string {
    if (this.#charset === undefined || /;\s*charset=/i.test(type)) return type;
    return typeMatches(type, this.#charsetTypes) ? `${type}; charset=${this.#charset}` : type;
  }
}
