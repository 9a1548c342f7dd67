/**
 * Choosing a server by name, among those listening on one address (ngx_http_find_virtual_server):
 * an exact name first, then the longest leading wildcard (`*.example.com`, `.example.com`), then
 * the longest trailing wildcard (`www.example.*`), then the first regex that matches, in the
 * order the servers (and their names) appear. No match: the address's default server.
 */
import type { ServerNameMatch } from "../../config/settings/web/syntax.ts";

export interface NameEntry<S> {
  readonly match: ServerNameMatch;
  readonly regex: RegExp | undefined;
  readonly server: S;
}

export interface HostMatch<S> {
  server: S;
  captures: RegExpExecArray | undefined;
}

export class VhostTable<S> {
  private readonly exact = new Map<string, S>();
  /** Longest suffix first. */
  private readonly leading: { suffix: string; includeBare: boolean; server: S }[] = [];
  /** Longest prefix first. */
  private readonly trailing: { prefix: string; server: S }[] = [];
  private readonly regexes: { regex: RegExp; server: S }[] = [];
  readonly defaultServer: S;
  /** Whether any name needs more than one Map lookup. */
  private readonly simple: boolean;

  constructor(entries: readonly NameEntry<S>[], defaultServer: S) {
    this.defaultServer = defaultServer;
    for (const e of entries) {
      const m = e.match;
      if (m.kind === "exact") {
        if (!this.exact.has(m.name)) this.exact.set(m.name, e.server);
      } else if (m.kind === "leading") {
        this.leading.push({ suffix: m.suffix, includeBare: m.includeBare, server: e.server });
        if (m.includeBare && !this.exact.has(m.suffix.slice(1))) {
          this.exact.set(m.suffix.slice(1), e.server);
        }
      } else if (m.kind === "trailing") this.trailing.push({ prefix: m.prefix, server: e.server });
      else this.regexes.push({ regex: e.regex!, server: e.server });
    }
    this.leading.sort((a, b) => b.suffix.length - a.suffix.length);
    this.trailing.sort((a, b) => b.prefix.length - a.prefix.length);
    this.simple = this.leading.length + this.trailing.length + this.regexes.length === 0;
  }

  /** The server named by `host` (already lowercased, without port), or undefined. */
  find(host: string): HostMatch<S> | undefined {
    const exact = this.exact.get(host);
    if (exact !== undefined) return { server: exact, captures: undefined };
    if (this.simple) return undefined;
    for (const l of this.leading) {
      if (host.endsWith(l.suffix) && host.length > l.suffix.length) {
        return { server: l.server, captures: undefined };
      }
    }
    for (const t of this.trailing) {
      if (host.startsWith(t.prefix) && host.length > t.prefix.length) {
        return { server: t.server, captures: undefined };
      }
    }
    for (const r of this.regexes) {
      const m = r.regex.exec(host);
      if (m) return { server: r.server, captures: m };
    }
    return undefined;
  }
}
