/**
 * The small template language of cache keys and conditions: `$name` or `${name}` variables in
 * text, as nginx writes them. Variables: `$scheme`, `$host`, `$request_uri`, `$uri`, `$args`
 * (`$query_string`), `$is_args`, `$request_method`, `$server_port`, `$remote_addr`,
 * `$arg_NAME`, `$http_NAME` (`$http_accept_language`), `$cookie_NAME`; any other name is read
 * from the request's variables (regex captures, module variables), "" when unset.
 */
import type { WebRequest } from "../exchange.ts";

/** What a template reads; built from a request, or from a URL for invalidation. */
export interface TemplateSource {
  readonly method: string;
  readonly scheme: string;
  readonly host: string;
  /** The Host field as sent (with its port), for the effective URL. */
  readonly authority: string;
  /** Path and query as sent (`$request_uri`). */
  readonly requestUri: string;
  readonly path: string;
  readonly query: string;
  header(name: string): string | undefined;
  readonly port: number;
  readonly remoteAddress: string;
  readonly vars: ReadonlyMap<string, string>;
}

export type Template = (src: TemplateSource) => string;

/** The `$request_uri` of a request: its target, path and query only (absolute-form reduced). */
export function requestUriOf(target: string): string {
  if (target.startsWith("/")) return target;
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^#]*)/i.exec(target);
  return m?.[1] || "/";
}

export function sourceOf(req: WebRequest): TemplateSource {
  return {
    method: req.method,
    scheme: req.scheme,
    host: req.host,
    authority: req.fields.get("host") ?? req.host,
    requestUri: requestUriOf(req.target),
    path: req.path,
    query: req.query,
    header: (n) => req.fields.joined(n),
    port: req.connection.localPort,
    remoteAddress: req.connection.remoteAddress,
    vars: req.vars,
  };
}

/** A source for the same server but another URI (invalidation of Location/Content-Location). */
export function sourceForUri(base: TemplateSource, uri: URL): TemplateSource {
  return {
    ...base,
    method: "GET",
    host: uri.hostname.toLowerCase(),
    authority: uri.host,
    requestUri: uri.pathname + uri.search,
    path: decodeURIComponentSafe(uri.pathname),
    query: uri.search.slice(1),
  };
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function cookie(header: string | undefined, name: string): string {
  if (header === undefined) return "";
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return "";
}

function arg(query: string, name: string): string {
  for (const part of query.split("&")) {
    const eq = part.indexOf("=");
    const k = eq < 0 ? part : part.slice(0, eq);
    if (k === name) return eq < 0 ? "" : part.slice(eq + 1);
  }
  return "";
}

function variable(name: string): (s: TemplateSource) => string {
  switch (name) {
    case "scheme":
      return (s) => s.scheme;
    case "host":
      return (s) => s.host;
    case "request_uri":
      return (s) => s.requestUri;
    case "uri":
    case "document_uri":
      return (s) => s.path;
    case "args":
    case "query_string":
      return (s) => s.query;
    case "is_args":
      return (s) => (s.query === "" ? "" : "?");
    case "request_method":
      return (s) => s.method;
    case "server_port":
      return (s) => String(s.port);
    case "remote_addr":
      return (s) => s.remoteAddress;
  }
  if (name.startsWith("arg_")) {
    const a = name.slice(4);
    return (s) => arg(s.query, a);
  }
  if (name.startsWith("cookie_")) {
    const c = name.slice(7);
    return (s) => cookie(s.header("cookie"), c);
  }
  if (name.startsWith("http_")) {
    const h = name.slice(5).replace(/_/g, "-").toLowerCase();
    return (s) => s.header(h) ?? "";
  }
  return (s) => s.vars.get(name) ?? "";
}

/** Compile a template; throws on a `$` not followed by a variable name. */
export function compileTemplate(text: string): Template {
  const parts: (string | ((s: TemplateSource) => string))[] = [];
  const re = /\$(?:\{(\w+)\}|(\w+))/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) parts.push(text.slice(last, m.index));
    parts.push(variable((m[1] ?? m[2])!));
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  if (parts.some((p) => typeof p === "string" && p.includes("$"))) {
    throw new Error(`not a variable: ${JSON.stringify(text)} (write $name or \${name})`);
  }
  return (s) => {
    let out = "";
    for (const p of parts) out += typeof p === "string" ? p : p(s);
    return out;
  };
}

/** nginx's condition truth: non-empty and not "0". */
export function truthy(value: string): boolean {
  return value !== "" && value !== "0";
}
