/**
 * What a forward proxy is asked for: the target of an absolute-form request
 * (`http://example.com:8080/a?b`, RFC 9112 §3.2.2) or of a CONNECT (`example.com:443`, the
 * authority form, §3.2.3), parsed strictly. Anything else is a 400 naming what is wrong.
 */
import { isIPv4, isIPv6 } from "node:net";

export interface Target {
  /** Lowercase, without brackets or a trailing dot: `example.com`, `127.0.0.1`, `::1`. */
  readonly host: string;
  readonly port: number;
  /** 4 or 6 for an IP literal, 0 for a name. */
  readonly family: 0 | 4 | 6;
  /** `host:port` with brackets for IPv6 (what logs and the CONNECT line say). */
  readonly hostPort: string;
  /** The Host field to send: the port left out when it is the scheme's default. */
  readonly authority: string;
  /** Path and query as received (`/` when the URL has none). */
  readonly pathAndQuery: string;
}

const label = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/;

/** A host as a URL or authority writes it, or a problem. */
function parseHost(raw: string): { host: string; family: 0 | 4 | 6 } | string {
  if (raw === "") return "no host";
  if (raw.startsWith("[")) {
    if (!raw.endsWith("]")) return `bad IPv6 literal ${JSON.stringify(raw)}`;
    const inner = raw.slice(1, -1).toLowerCase();
    if (!isIPv6(inner) || inner.includes("%")) return `bad IPv6 literal ${JSON.stringify(raw)}`;
    return { host: inner, family: 6 };
  }
  let host = raw.toLowerCase();
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (isIPv4(host)) return { host, family: 4 };
  if (host.length > 253 || !host.split(".").every((l) => l.length <= 63 && label.test(l))) {
    return `bad host name ${JSON.stringify(raw)}`;
  }
  return { host, family: 0 };
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** Split `host[:port]` (brackets for IPv6); the port is "" when absent. */
function splitAuthority(authority: string): { host: string; port: string | undefined } {
  if (authority.startsWith("[")) {
    const end = authority.indexOf("]");
    if (end < 0) return { host: authority, port: undefined };
    const rest = authority.slice(end + 1);
    return {
      host: authority.slice(0, end + 1),
      port: rest === "" ? undefined : rest.startsWith(":") ? rest.slice(1) : "!",
    };
  }
  const colon = authority.lastIndexOf(":");
  return colon < 0
    ? { host: authority, port: undefined }
    : { host: authority.slice(0, colon), port: authority.slice(colon + 1) };
}

function make(
  host: string,
  family: 0 | 4 | 6,
  port: number,
  defaultPort: number,
  pathAndQuery: string,
): Target {
  const h = family === 6 ? `[${host}]` : host;
  return {
    host,
    port,
    family,
    hostPort: `${h}:${port}`,
    authority: port === defaultPort ? h : `${h}:${port}`,
    pathAndQuery,
  };
}

/** An absolute-form `http:` target, or a problem (for the 400). */
export function parseAbsolute(target: string): Target | string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/.exec(target);
  if (!m) return `not an absolute URL: ${JSON.stringify(target)}`;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== "http") {
    return scheme === "https"
      ? "https URLs go through a CONNECT tunnel (the client speaks TLS to the origin itself)"
      : `only http URLs are forwarded, not ${scheme}:`;
  }
  const authority = m[2]!;
  if (authority.includes("@")) return "credentials in the URL are not forwarded";
  const { host: rawHost, port: rawPort } = splitAuthority(authority);
  const h = parseHost(rawHost);
  if (typeof h === "string") return h;
  let port = 80;
  if (rawPort !== undefined && rawPort !== "") {
    const p = parsePort(rawPort);
    if (p === undefined) return `bad port ${JSON.stringify(rawPort)}`;
    port = p;
  }
  let rest = m[3]!;
  if (rest === "" || rest.startsWith("?")) rest = `/${rest}`;
  return make(h.host, h.family, port, 80, rest);
}

/** A CONNECT target (`host:port`, the port required), or a problem. */
export function parseConnect(target: string): Target | string {
  const { host: rawHost, port: rawPort } = splitAuthority(target);
  if (rawPort === undefined || rawPort === "")
    return `CONNECT needs host:port, found ${JSON.stringify(target)}`;
  const h = parseHost(rawHost);
  if (typeof h === "string") return h;
  const port = parsePort(rawPort);
  if (port === undefined) return `bad port ${JSON.stringify(rawPort)}`;
  return make(h.host, h.family, port, -1, "");
}

/** A domain pattern list (the schema's `domainList`): does `host` match one? */
export function domainMatcher(patterns: readonly string[]): (host: string) => string | undefined {
  const exact = new Map<string, string>();
  const suffixes: [string, string, boolean][] = [];
  let any: string | undefined;
  for (const p of patterns) {
    if (p === "*") any = p;
    else if (p.startsWith(".")) suffixes.push([p, p.slice(1), true]);
    else if (p.startsWith("*.")) suffixes.push([p, p.slice(2), false]);
    else exact.set(p, p);
  }
  return (host) => {
    if (any !== undefined) return any;
    const e = exact.get(host);
    if (e !== undefined) return e;
    for (const [pattern, domain, self] of suffixes) {
      if (host.endsWith(`.${domain}`) || (self && host === domain)) return pattern;
    }
    return undefined;
  };
}

/** A port range list: does `port` fall in one? */
export function portMatcher(
  ranges: readonly (readonly [number, number])[],
): (port: number) => boolean {
  return (port) => ranges.some(([lo, hi]) => port >= lo && port <= hi);
}
