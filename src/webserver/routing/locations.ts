/**
 * Choosing a location, with nginx's precedence (ngx_http_core_find_location):
 *
 * 1. an exact location (`= /uri`) equal to the path wins at once;
 * 2. otherwise the longest matching prefix is remembered, and its nested locations are searched
 *    the same way (an exact or regex match inside wins);
 * 3. unless that longest prefix is `^~`, the regex locations of this level are tried in order of
 *    appearance, the first match winning (its nested locations searched in turn);
 * 4. else the longest prefix (the deepest one found) is the location.
 *
 * Named locations (`@name`) never match a path; they are reached by name only.
 */
import type { LocationMatch } from "../../config/settings/web/syntax.ts";

export interface LocationNode<T> {
  readonly match: LocationMatch;
  readonly regex: RegExp | undefined;
  readonly value: T;
  readonly children: LocationTree<T>;
}

export interface Found<T> {
  value: T;
  /** The regex match of a regex location, for `$1`.. and named captures. */
  captures: RegExpExecArray | undefined;
}

export class LocationTree<T> {
  private readonly exact = new Map<string, LocationNode<T>>();
  /** Longest first. */
  private prefixes: LocationNode<T>[] = [];
  private readonly regexes: LocationNode<T>[] = [];
  readonly size: number;

  constructor(nodes: readonly LocationNode<T>[]) {
    for (const n of nodes) {
      const m = n.match;
      if (m.kind === "exact") this.exact.set(m.uri, n);
      else if (m.kind === "prefix") this.prefixes.push(n);
      else if (m.kind === "regex") this.regexes.push(n);
    }
    this.prefixes = this.prefixes.sort(
      (a, b) => (b.match as { uri: string }).uri.length - (a.match as { uri: string }).uri.length,
    );
    this.size = nodes.length;
  }

  /** The location for `path`, or undefined when none matches. */
  find(path: string): Found<T> | undefined {
    if (this.size === 0) return undefined;
    const out: { node: LocationNode<T> | undefined; captures: RegExpExecArray | undefined } = {
      node: undefined,
      captures: undefined,
    };
    this.search(path, out);
    return out.node === undefined ? undefined : { value: out.node.value, captures: out.captures };
  }

  /** Returns "final" for an exact or regex match, "prefix" for a prefix one, undefined for none. */
  private search(
    path: string,
    out: { node: LocationNode<T> | undefined; captures: RegExpExecArray | undefined },
  ): "final" | "prefix" | undefined {
    const exact = this.exact.get(path);
    if (exact) {
      out.node = exact;
      out.captures = undefined;
      return "final";
    }
    let prefix: LocationNode<T> | undefined;
    for (const p of this.prefixes) {
      if (path.startsWith((p.match as { uri: string }).uri)) {
        prefix = p;
        break;
      }
    }
    let noRegex = false;
    if (prefix) {
      out.node = prefix;
      out.captures = undefined;
      noRegex = (prefix.match as { noRegex: boolean }).noRegex;
      if (prefix.children.size > 0 && prefix.children.search(path, out) === "final") return "final";
    }
    if (!noRegex) {
      for (const r of this.regexes) {
        const m = r.regex!.exec(path);
        if (m) {
          out.node = r;
          out.captures = m;
          if (r.children.size > 0) r.children.search(path, out);
          return "final";
        }
      }
    }
    return prefix ? "prefix" : undefined;
  }
}
