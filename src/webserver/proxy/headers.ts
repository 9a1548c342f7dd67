/**
 * Header fields across the proxy, both ways.
 *
 * To the upstream: the client's fields without the hop-by-hop ones (RFC 9110 §7.6.1: Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and every field the
 * Connection field names), Host passed on (or set), the forwarding headers (X-Forwarded-For
 * appended, the others set), then the location's `proxySetHeaders`.
 *
 * To the client: the upstream's fields without the hop-by-hop ones and framing (the engine frames),
 * without what nginx hides by default (Server, Date, X-Pad, X-Accel-*) unless passed, with
 * `Location`/`Refresh` and `Set-Cookie` rewritten as configured.
 */
import type { ForwardedHeaderName, ReplaceRule } from "../../config/settings/web/proxy.ts";
import { sameStrings } from "../../core/lists.ts";
import { Fields, type WebRequest } from "../exchange.ts";
import type { Template } from "../variables.ts";

/** Hop-by-hop fields (RFC 9110 §7.6.1, plus the non-standard Proxy-Connection and Proxy-Authenticate/-Authorization). */
export const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** `Connection: keep-alive` and `Connection: close`, the usual ones, made once. */
const keepAliveToken: ReadonlySet<string> = new Set(["keep-alive"]);
const closeToken: ReadonlySet<string> = new Set(["close"]);

/** The tokens of the Connection field(s), lowercased, or undefined when there is none. */
export function connectionTokens(value: string | undefined): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  if (value === "keep-alive" || value === "Keep-Alive") return keepAliveToken;
  if (value === "close") return closeToken;
  const out = new Set<string>();
  for (const t of value.split(",")) {
    const n = t.trim().toLowerCase();
    if (n !== "") out.add(n);
  }
  return out;
}

/** RFC 7239 node: an IPv6 address is quoted and bracketed; a unix-socket peer is "unknown". */
function forwardedNode(address: string): string {
  if (address === "") return "unknown";
  return address.includes(":") ? `"[${address}]"` : address;
}

function quoted(value: string): string {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value)
    ? value
    : `"${value.replace(/["\\]/g, "\\$&")}"`;
}

export interface RequestHeaderPlan {
  forwarded: ReadonlySet<ForwardedHeaderName>;
  /** Compiled `proxySetHeaders`, lowercase names; an empty result removes the header. */
  set: readonly { name: string; value: Template }[];
  /** Names in `set`, for skipping the client's own. */
  setNames: ReadonlySet<string>;
  /** The plan's last request fields and what they made (see {@link upstreamRequestFields}). */
  last?: LastRequestFields | undefined;
  /** Every `set` value is a constant (worked out at the first request). */
  constantSet?: boolean | undefined;
}

/** What the upstream's fields were made of, and the list made. */
interface LastRequestFields {
  src: string[];
  host: string;
  h2: boolean;
  remote: string;
  localPort: number;
  scheme: string;
  out: string[];
}

/** Client field lists longer than this are not remembered. */
const LAST_REQUEST_FIELDS_MAX = 64;

/** The client's Host as sent (with its port), else the server's name. */
export function clientHost(req: WebRequest): string {
  return req.fields.get("host") ?? req.host;
}

/** nginx's `$proxy_add_x_forwarded_for`: the client's X-Forwarded-For plus the client address. */
export function addForwardedFor(req: WebRequest): string {
  const prev = req.fields.joined("x-forwarded-for");
  const addr = req.connection.remoteAddress || "unix";
  return prev === undefined ? addr : `${prev}, ${addr}`;
}

/**
 * The fields for the upstream, as a flat `[name, value, ...]` list (lowercase names). Framing is
 * the pool's: Content-Length is left out here and added by the caller where the body needs it.
 * `upgrade` keeps Upgrade and sends `Connection: upgrade` (a tunnel).
 */
export function upstreamRequestFields(
  req: WebRequest,
  plan: RequestHeaderPlan,
  upgrade: string | undefined,
): string[] {
  const src = req.fields.list;
  // The same client fields, addresses and scheme as the last request make the same list, when
  // every proxySetHeaders value is a constant (a template may read anything of the request) and
  // it is no upgrade: a copy of it (the caller adds to it).
  plan.constantSet ??= plan.set.every((r) => r.value.constant !== undefined);
  const memo = upgrade === undefined && src.length <= LAST_REQUEST_FIELDS_MAX && plan.constantSet;
  // (the connection only matters to the forwarding headers: its view is not made otherwise)
  const c = memo && plan.forwarded.size > 0 ? req.connection : undefined;
  const remote = c === undefined ? "" : c.remoteAddress;
  const localPort = c === undefined ? 0 : c.localPort;
  if (memo) {
    const last = plan.last;
    if (
      last !== undefined &&
      last.remote === remote &&
      last.localPort === localPort &&
      last.scheme === req.scheme &&
      last.host === req.host &&
      last.h2 === (req.httpVersion === "2") &&
      sameStrings(src, last.src)
    ) {
      return last.out.slice();
    }
  }
  const out = buildRequestFields(req, plan, upgrade, src);
  if (memo) {
    plan.last = {
      src: src.slice(),
      host: req.host,
      h2: req.httpVersion === "2",
      remote,
      localPort,
      scheme: req.scheme,
      out: out.slice(),
    };
  }
  return out;
}

function buildRequestFields(
  req: WebRequest,
  plan: RequestHeaderPlan,
  upgrade: string | undefined,
  src: readonly string[],
): string[] {
  const out: string[] = ["host", clientHost(req)];
  let named: Set<string> | undefined;
  for (let i = 0; i < src.length; i += 2) {
    if (src[i] === "connection") {
      named ??= new Set();
      for (const t of connectionTokens(src[i + 1])!) named.add(t);
    }
  }
  const fwd = plan.forwarded;
  const setNames = plan.setNames;
  let xff: string | undefined;
  let forwarded: string | undefined;
  // HTTP/2 may split Cookie into several fields; HTTP/1.1 wants one (RFC 9113 §8.2.3).
  const h2 = req.httpVersion === "2";
  let cookie: string | undefined;
  for (let i = 0; i < src.length; i += 2) {
    const name = src[i]!;
    const value = src[i + 1]!;
    if (name === "host" || name === "content-length" || hopByHop.has(name)) continue;
    if (h2 && name === "cookie") {
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    if (named?.has(name)) continue;
    if (setNames.has(name)) continue;
    if (fwd.size > 0) {
      if (name === "x-forwarded-for" && fwd.has(name)) {
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      }
      if (name === "forwarded" && fwd.has(name)) {
        forwarded = forwarded === undefined ? value : `${forwarded}, ${value}`;
        continue;
      }
      if (
        (name === "x-forwarded-proto" ||
          name === "x-forwarded-host" ||
          name === "x-forwarded-port" ||
          name === "x-real-ip") &&
        fwd.has(name)
      ) {
        continue;
      }
    }
    out.push(name, value);
  }
  if (cookie !== undefined && !setNames.has("cookie")) out.push("cookie", cookie);
  if (fwd.size > 0) {
    const addr = req.connection.remoteAddress;
    if (fwd.has("x-forwarded-for")) {
      const a = addr || "unix";
      out.push("x-forwarded-for", xff === undefined ? a : `${xff}, ${a}`);
    }
    if (fwd.has("x-forwarded-proto")) out.push("x-forwarded-proto", req.scheme);
    if (fwd.has("x-forwarded-host")) out.push("x-forwarded-host", clientHost(req));
    if (fwd.has("x-forwarded-port")) {
      out.push(
        "x-forwarded-port",
        String(req.connection.localPort || (req.scheme === "https" ? 443 : 80)),
      );
    }
    if (fwd.has("x-real-ip") && addr !== "") out.push("x-real-ip", addr);
    if (fwd.has("forwarded")) {
      let el = `for=${forwardedNode(addr)};proto=${req.scheme}`;
      const h = clientHost(req);
      if (h !== "") el += `;host=${quoted(h)}`;
      out.push("forwarded", forwarded === undefined ? el : `${forwarded}, ${el}`);
    }
  }
  if (plan.set.length > 0) {
    for (const rule of plan.set) {
      const v = rule.value.constant ?? rule.value({ req });
      if (rule.name === "host") {
        out[1] = v === "" ? clientHost(req) : v;
        continue;
      }
      if (v !== "") out.push(rule.name, v);
    }
  }
  if (upgrade !== undefined) out.push("connection", "upgrade", "upgrade", upgrade);
  return out;
}

/** Response fields the client never gets from an upstream unless `proxyPassHeaders` names them. */
const hiddenByDefault = new Set(["server", "date", "x-pad"]);

export interface ResponseHeaderPlan {
  /** `proxyHideHeaders`. */
  hide: ReadonlySet<string>;
  /** `proxyPassHeaders`. */
  pass: ReadonlySet<string>;
  redirect: readonly CompiledReplace[];
  cookieDomain: readonly CompiledReplace[];
  cookiePath: readonly CompiledReplace[];
  /** The plan's last upstream field list and what it made (see {@link fromFieldList}). */
  last?: LastFields | undefined;
}

/** An upstream field list and what the plan made of it, when nothing of it was rewritten. */
interface LastFields {
  src: string[];
  list: string[];
  length: number | undefined;
  contentType: string | undefined;
  accelBuffering: string | undefined;
  accelRedirect: string | undefined;
}

/** Upstream lists longer than this are not remembered. */
const LAST_FIELDS_MAX = 64;

export interface CompiledReplace {
  rule: ReplaceRule;
  regex: RegExp | undefined;
  to: Template;
  /** Plain prefixes compare case-insensitively (Location, as nginx) or not (cookie paths). */
  caseless: boolean;
}

/** What the proxy reads from the upstream's head besides the fields it passes on. */
export interface UpstreamHead {
  fields: Fields;
  /** Content-Length as sent (validated by the parser), or undefined. */
  length: number | undefined;
  contentType: string | undefined;
  /** X-Accel-Buffering (lowercased), X-Accel-Redirect. */
  accelBuffering: string | undefined;
  accelRedirect: string | undefined;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The client's fields from the upstream's, as the plan says: from its field list when it has one. */
export function clientResponseFields(
  res: {
    readonly headers: Record<string, string | string[] | undefined>;
    readonly fields?: readonly string[] | undefined;
  },
  plan: ResponseHeaderPlan,
  req: WebRequest,
): UpstreamHead {
  const fields = res.fields;
  return fields !== undefined
    ? fromFieldList(fields, plan, req)
    : fromHeaderObject(res.headers, plan, req);
}

/** Whether the client may get the upstream's field `name` (`named`: fields its Connection names). */
function passes(
  name: string,
  plan: ResponseHeaderPlan,
  named: ReadonlySet<string> | undefined,
): boolean {
  if (name === "content-length" || hopByHop.has(name) || named?.has(name)) return false;
  if ((hiddenByDefault.has(name) || name.startsWith("x-accel-")) && !plan.pass.has(name))
    return false;
  return !(plan.hide.size > 0 && plan.hide.has(name));
}

/**
 * The client's fields from an upstream's field list. The same list as the plan's last one (an
 * upstream answers the same fields response after response, the same strings when its head is
 * the parser's memo) makes the same fields, unless one of them is rewritten per request
 * (Location and Refresh with proxyRedirect, Set-Cookie with cookie rules: those lists are never
 * remembered): the last result, its list copied, without the per-field filtering.
 */
function fromFieldList(
  src: readonly string[],
  plan: ResponseHeaderPlan,
  req: WebRequest,
): UpstreamHead {
  const last = plan.last;
  if (last !== undefined && sameStrings(src, last.src)) {
    return {
      fields: new Fields(last.list.slice()),
      length: last.length,
      contentType: last.contentType,
      accelBuffering: last.accelBuffering,
      accelRedirect: last.accelRedirect,
    };
  }
  let connection: string | undefined;
  let lengthText: string | undefined;
  let contentType: string | undefined;
  let accelBuffering: string | undefined;
  let accelRedirect: string | undefined;
  for (let i = 0; i < src.length; i += 2) {
    const name = src[i]!;
    const value = src[i + 1]!;
    switch (name) {
      case "connection":
        connection = connection === undefined ? value : `${connection}, ${value}`;
        break;
      case "content-length":
        lengthText ??= value;
        break;
      case "content-type":
        contentType ??= value;
        break;
      case "x-accel-buffering":
        accelBuffering ??= value;
        break;
      case "x-accel-redirect":
        accelRedirect ??= value;
        break;
    }
  }
  const named = connectionTokens(connection);
  const list: string[] = [];
  let rewritten = false;
  for (let i = 0; i < src.length; i += 2) {
    const name = src[i]!;
    if (!passes(name, plan, named)) continue;
    if (!rewritten && rewrites(name, plan)) rewritten = true;
    list.push(name, rewrite(name, src[i + 1]!, plan, req));
  }
  const n = lengthText === undefined ? undefined : Number(lengthText);
  const length = n !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  const lowerBuffering = accelBuffering?.toLowerCase();
  plan.last =
    rewritten || src.length > LAST_FIELDS_MAX
      ? undefined
      : {
          src: src.slice(),
          list: list.slice(),
          length,
          contentType,
          accelBuffering: lowerBuffering,
          accelRedirect,
        };
  return {
    fields: new Fields(list),
    length,
    contentType,
    accelBuffering: lowerBuffering,
    accelRedirect,
  };
}

/** Whether {@link rewrite} may change this field's value (per request: templates read `req`). */
function rewrites(name: string, plan: ResponseHeaderPlan): boolean {
  if (name === "location" || name === "refresh") return plan.redirect.length > 0;
  if (name === "set-cookie") return plan.cookieDomain.length > 0 || plan.cookiePath.length > 0;
  return false;
}

function fromHeaderObject(
  headers: Record<string, string | string[] | undefined>,
  plan: ResponseHeaderPlan,
  req: WebRequest,
): UpstreamHead {
  const list: string[] = [];
  const named = connectionTokens(first(headers.connection));
  const lengthText = first(headers["content-length"]);
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || !passes(name, plan, named)) continue;
    if (typeof value === "string") {
      list.push(name, rewrite(name, value, plan, req));
    } else {
      for (const v of value) list.push(name, rewrite(name, v, plan, req));
    }
  }
  const length = lengthText === undefined ? undefined : Number(lengthText);
  return {
    fields: new Fields(list),
    length:
      length !== undefined && Number.isSafeInteger(length) && length >= 0 ? length : undefined,
    contentType: first(headers["content-type"]),
    accelBuffering: first(headers["x-accel-buffering"])?.toLowerCase(),
    accelRedirect: first(headers["x-accel-redirect"]),
  };
}

function rewrite(name: string, value: string, plan: ResponseHeaderPlan, req: WebRequest): string {
  if (name === "location" && plan.redirect.length > 0)
    return replaceLocation(value, plan.redirect, req);
  if (name === "refresh" && plan.redirect.length > 0) {
    const m = /(;\s*url=)(.*)$/i.exec(value);
    if (!m) return value;
    return value.slice(0, m.index) + m[1] + replaceLocation(m[2]!, plan.redirect, req);
  }
  if (name === "set-cookie" && (plan.cookieDomain.length > 0 || plan.cookiePath.length > 0)) {
    return rewriteCookie(value, plan, req);
  }
  return value;
}

/** proxy_redirect: the first rule that matches replaces the start of the value (or the regex match). */
export function replaceLocation(
  value: string,
  rules: readonly CompiledReplace[],
  req: WebRequest,
): string {
  for (const r of rules) {
    if (r.regex) {
      const m = r.regex.exec(value);
      if (!m) continue;
      return (
        value.slice(0, m.index) + r.to({ req, captures: m }) + value.slice(m.index + m[0].length)
      );
    }
    const from = r.rule.from;
    const hit = r.caseless
      ? value.length >= from.length &&
        value.slice(0, from.length).toLowerCase() === from.toLowerCase()
      : value.startsWith(from);
    if (hit) return r.to({ req }) + value.slice(from.length);
  }
  return value;
}

/** proxy_cookie_domain / proxy_cookie_path on one Set-Cookie value. */
function rewriteCookie(value: string, plan: ResponseHeaderPlan, req: WebRequest): string {
  const parts = value.split(";");
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!;
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const attr = part.slice(0, eq).trim().toLowerCase();
    const v = part.slice(eq + 1).trim();
    const lead = part.slice(0, part.length - part.trimStart().length);
    if (attr === "domain" && plan.cookieDomain.length > 0) {
      const r = replaceDomain(v, plan.cookieDomain, req);
      if (r !== undefined) parts[i] = `${lead}${part.slice(lead.length, eq + 1).trim()}${r}`;
    } else if (attr === "path" && plan.cookiePath.length > 0) {
      const r = replaceLocation(v, plan.cookiePath, req);
      if (r !== v) parts[i] = `${lead}${part.slice(lead.length, eq + 1).trim()}${r}`;
    }
  }
  return parts.join(";");
}

function replaceDomain(
  value: string,
  rules: readonly CompiledReplace[],
  req: WebRequest,
): string | undefined {
  const bare = value.startsWith(".") ? value.slice(1) : value;
  for (const r of rules) {
    if (r.regex) {
      const m = r.regex.exec(value);
      if (!m) continue;
      return (
        value.slice(0, m.index) + r.to({ req, captures: m }) + value.slice(m.index + m[0].length)
      );
    }
    const from = r.rule.from.startsWith(".") ? r.rule.from.slice(1) : r.rule.from;
    if (bare.toLowerCase() === from.toLowerCase()) return r.to({ req });
  }
  return undefined;
}
