/**
 * The small languages inside web server settings, parsed once here for both the schema (which
 * refuses a bad value with its key path) and the web server (which compiles the parsed form):
 * location matches (`"= /"`, `"^~ /static/"`, `"~* \\.png$"`, `"@app"`), server names, regular
 * expressions in nginx's (PCRE) spelling, and the nginx-style shorthands of `rewrite`,
 * `errorPages` and `expires`.
 */

/** How a location matches, nginx's `location [ = | ^~ | ~ | ~* ] uri` and `location @name`. */
export type LocationMatch =
  | { kind: "exact"; uri: string }
  | { kind: "prefix"; uri: string; noRegex: boolean }
  | { kind: "regex"; source: string; caseless: boolean }
  | { kind: "named"; name: string };

/**
 * nginx regular expressions are PCRE; ours are JavaScript's. The common spellings agree; PCRE's
 * named groups `(?P<name>...)` and `(?P=name)` are rewritten to JavaScript's.
 */
export function jsRegexSource(source: string): string {
  return source.replace(/\(\?P</g, "(?<").replace(/\(\?P=(\w+)\)/g, "\\k<$1>");
}

/** Compile an nginx-spelled regex, or return the reason it does not compile. */
export function compileRegex(source: string, caseless = false): RegExp | string {
  try {
    return new RegExp(jsRegexSource(source), caseless ? "i" : "");
  } catch (e) {
    return `not a valid regular expression: ${(e as Error).message}`;
  }
}

/** Parse a location's `match`; a string is the problem. */
export function parseLocationMatch(text: string): LocationMatch | string {
  const t = text.trim();
  const m = /^(=|\^~|~\*|~|@)?\s*(.*)$/s.exec(t)!;
  const op = m[1];
  const rest = m[2]!;
  if (op === "@") {
    return /^[\w-]+$/.test(rest)
      ? { kind: "named", name: rest }
      : `a named location is "@" and a name of letters, digits, "_" or "-", found ${JSON.stringify(text)}`;
  }
  if (op === "~" || op === "~*") {
    if (rest === "") return "a regex location needs a regular expression after ~ or ~*";
    const re = compileRegex(rest, op === "~*");
    return typeof re === "string" ? re : { kind: "regex", source: rest, caseless: op === "~*" };
  }
  if (!rest.startsWith("/")) {
    return `expected "/prefix", "= /exact", "^~ /prefix", "~ regex", "~* regex" or "@name", found ${JSON.stringify(text)}`;
  }
  if (op === "=") return { kind: "exact", uri: rest };
  return { kind: "prefix", uri: rest, noRegex: op === "^~" };
}

/** A server name: exact, `*.example.com` / `.example.com` / `www.example.*`, or `~regex`. */
export type ServerNameMatch =
  | { kind: "exact"; name: string }
  /** `*.example.com` matches below example.com; `.example.com` also example.com itself. */
  | { kind: "leading"; suffix: string; includeBare: boolean }
  | { kind: "trailing"; prefix: string }
  | { kind: "regex"; source: string };

const hostChars = /^[a-z0-9_.-]*$/;

export function parseServerName(text: string): ServerNameMatch | string {
  if (text.startsWith("~")) {
    const re = compileRegex(text.slice(1), true);
    return typeof re === "string" ? re : { kind: "regex", source: text.slice(1) };
  }
  const name = text.toLowerCase().replace(/\.$/, "");
  const bad = `expected a host name, "*.example.com", ".example.com", "www.example.*" or "~regex", found ${JSON.stringify(text)}`;
  if (name.startsWith("*.")) {
    const suffix = name.slice(1);
    return hostChars.test(suffix) && !suffix.includes("*")
      ? { kind: "leading", suffix, includeBare: false }
      : bad;
  }
  if (name.startsWith(".") && name.length > 1) {
    return hostChars.test(name) ? { kind: "leading", suffix: name, includeBare: true } : bad;
  }
  if (name.endsWith(".*")) {
    const prefix = name.slice(0, -1);
    return hostChars.test(prefix) ? { kind: "trailing", prefix } : bad;
  }
  // "" matches requests without a Host; "_" is nginx's conventional never-matching name.
  if (!/^(\[[0-9a-f:.]+\]|[a-z0-9_.-]*)$/.test(name) || name.includes("*")) return bad;
  return { kind: "exact", name };
}

export const rewriteFlags = ["last", "break", "redirect", "permanent"] as const;
export type RewriteFlag = (typeof rewriteFlags)[number];

/** `"^/old/(.*)$ /new/$1 permanent"` -> its parts. */
export function parseRewriteShorthand(
  text: string,
): { regex: string; replacement: string; flag?: RewriteFlag } | string {
  const parts = text.trim().split(/\s+/);
  if (parts.length < 2 || parts.length > 3) {
    return `expected "regex replacement [last|break|redirect|permanent]", found ${JSON.stringify(text)} (write an object for a regex with spaces)`;
  }
  const [regex, replacement, flag] = parts as [string, string, string | undefined];
  if (flag !== undefined && !(rewriteFlags as readonly string[]).includes(flag)) {
    return `unknown rewrite flag ${JSON.stringify(flag)}; expected one of ${rewriteFlags.join(", ")}`;
  }
  return flag === undefined
    ? { regex, replacement }
    : { regex, replacement, flag: flag as RewriteFlag };
}

/** An error page: nginx's `error_page code ... [=[response]] uri`. */
export interface ErrorPage {
  codes: number[];
  /** `/path` (internal redirect), `@name` (named location) or `http(s)://...` (redirect); variables allowed. */
  uri: string;
  /** The status to answer with: a code, `"response"` (the redirected response's, nginx's bare `=`), or unset: the error's. */
  status?: number | "response";
}

export function checkErrorPageUri(uri: string): string | undefined {
  return /^(\/|@[\w-]+$|https?:\/\/|\$)/.test(uri)
    ? undefined
    : `expected a "/path", an "@name" or an "http(s)://" URL, found ${JSON.stringify(uri)}`;
}

/** `"500 502 503 504 /50x.html"`, `"404 =200 /empty.gif"`, `"404 = @fallback"`. */
export function parseErrorPageShorthand(text: string): ErrorPage | string {
  const parts = text.trim().split(/\s+/);
  const uri = parts.pop();
  const usage = `expected "code ... [=[status]] uri", found ${JSON.stringify(text)}`;
  if (uri === undefined || parts.length === 0) return usage;
  const page: ErrorPage = { codes: [], uri };
  for (const p of parts) {
    if (p.startsWith("=")) {
      if (page.status !== undefined) return usage;
      if (p === "=") page.status = "response";
      else if (/^=\d{3}$/.test(p)) page.status = Number(p.slice(1));
      else return usage;
    } else if (/^\d{3}$/.test(p) && page.status === undefined) page.codes.push(Number(p));
    else return usage;
  }
  if (page.codes.length === 0) return usage;
  return page;
}

/** nginx's `expires`: how Expires and Cache-Control max-age are set. */
export type Expires =
  | { kind: "off" }
  | { kind: "epoch" }
  | { kind: "max" }
  /** Seconds from the response time (negative: already expired, `no-cache`). */
  | { kind: "offset"; seconds: number }
  /** Seconds from the file's modification time (`Last-Modified`). */
  | { kind: "modified"; seconds: number };
