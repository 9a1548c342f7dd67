/**
 * Variables and templates: `$name` and `${name}` in header values, `return` bodies and URLs,
 * rewrite replacements and log formats, with nginx's names and meanings. A template is compiled
 * once (at config time, where an unknown name is a config error with a did-you-mean) into a
 * function of the request (and, for headers and logs, the response and its completion).
 *
 * A `$` not followed by a name is itself. Values are inserted as they are, except in log formats,
 * which escape them (`escape`).
 */
import { hostname } from "node:os";
import { didYouMean } from "../config/types.ts";
import type { WebRequest, WebResponse } from "./exchange.ts";
import type { Completion } from "./module.ts";

export interface VarContext {
  req: WebRequest;
  res?: WebResponse | undefined;
  done?: Completion | undefined;
  /** The match of the regex being applied (a rewrite rule's), for `$1`..`$9` and named groups. */
  captures?: RegExpExecArray | null | undefined;
}

type Getter = (c: VarContext) => string;

const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number, w = 2): string => String(n).padStart(w, "0");

let localSecond = -1;
let localText = "";
/** nginx's `$time_local`: `01/Dec/2026:09:02:51 +0000`, cached per second. */
export function timeLocal(ms = Date.now()): string {
  const second = Math.floor(ms / 1000);
  if (second !== localSecond) {
    const d = new Date(second * 1000);
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    const a = Math.abs(off);
    localText = `${pad(d.getDate())}/${months[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${sign}${pad(Math.floor(a / 60))}${pad(a % 60)}`;
    localSecond = second;
  }
  return localText;
}

/** nginx's `$time_iso8601`: local time with offset, `2026-12-01T09:02:51+00:00`. */
export function timeIso(ms = Date.now()): string {
  const d = new Date(ms);
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const a = Math.abs(off);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

const machine = hostname();

function protocol(req: WebRequest): string {
  return req.httpVersion === "2" ? "HTTP/2.0" : `HTTP/${req.httpVersion}`;
}

function capture(c: VarContext, name: string): string {
  const m = c.captures;
  if (m) {
    if (name.length === 1 && name >= "0" && name <= "9") return m[Number(name)] ?? "";
    const g = m.groups?.[name];
    if (g !== undefined) return g;
  }
  if ((c.req as { hasVars?: boolean }).hasVars === false) return "";
  return c.req.vars.get(name) ?? "";
}

function cookie(req: WebRequest, name: string): string {
  const header = req.fields.joined("cookie");
  if (header === undefined) return "";
  for (const part of header.split(/;\s*/)) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return "";
}

function arg(query: string, name: string): string {
  if (query === "") return "";
  for (const part of query.split("&")) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    if (key === name) return eq < 0 ? "" : part.slice(eq + 1);
  }
  return "";
}

const serverName = (c: VarContext): string => (c.req as { serverName?: string }).serverName ?? "";

/** The built-in variables (nginx's, where nginx has them). */
const builtins: Record<string, Getter> = {
  args: (c) => c.req.query,
  query_string: (c) => c.req.query,
  is_args: (c) => (c.req.query === "" ? "" : "?"),
  uri: (c) => c.req.path,
  document_uri: (c) => c.req.path,
  request_uri: (c) => c.req.target,
  request_method: (c) => c.req.method,
  request: (c) => {
    const method = (c.req as { originalMethod?: string }).originalMethod ?? c.req.method;
    return method === "" ? "" : `${method} ${c.req.target} ${protocol(c.req)}`;
  },
  server_protocol: (c) => protocol(c.req),
  scheme: (c) => c.req.scheme,
  https: (c) => (c.req.scheme === "https" ? "on" : ""),
  host: (c) => c.req.host || serverName(c),
  hostname: () => machine,
  server_name: serverName,
  server_addr: (c) => c.req.connection.localAddress,
  server_port: (c) => String(c.req.connection.localPort),
  // realip sets vars.remote_addr when a trusted proxy names the client.
  remote_addr: (c) =>
    ((c.req as { hasVars?: boolean }).hasVars !== false && c.req.vars.get("remote_addr")) ||
    c.req.connection.remoteAddress,
  remote_port: (c) => String(c.req.connection.remotePort),
  remote_user: (c) => capture(c, "remote_user"),
  connection: (c) => String(c.req.connection.id),
  connection_requests: (c) => String(c.req.connection.requests + 1),
  request_id: (c) => c.req.id,
  content_length: (c) => c.req.fields.get("content-length") ?? "",
  content_type: (c) => c.req.fields.get("content-type") ?? "",
  ssl_protocol: (c) => c.req.connection.tls?.protocol ?? "",
  ssl_cipher: (c) => c.req.connection.tls?.cipher ?? "",
  ssl_server_name: (c) => c.req.connection.tls?.servername ?? "",
  msec: () => (Date.now() / 1000).toFixed(3),
  time_local: () => timeLocal(),
  time_iso8601: () => timeIso(),
  pid: () => String(process.pid),
  status: (c) => String(c.done?.status ?? c.res?.status ?? ""),
  body_bytes_sent: (c) => String(c.done?.bodyBytesSent ?? 0),
  bytes_sent: (c) => String(c.done?.bytesSent ?? 0),
  request_length: (c) => String(c.done?.bodyBytesReceived ?? 0),
  request_time: (c) => ((c.done?.durationMs ?? Date.now() - c.req.startTime) / 1000).toFixed(3),
};

/** Prefixes: `$http_user_agent`, `$sent_http_content_type`, `$arg_page`, `$cookie_sid`. */
const prefixed: [string, (rest: string) => Getter][] = [
  [
    "http_",
    (rest) => {
      const name = rest.replace(/_/g, "-");
      return (c) => c.req.fields.joined(name) ?? "";
    },
  ],
  [
    "sent_http_",
    (rest) => {
      const name = rest.replace(/_/g, "-");
      return (c) => c.res?.fields.joined(name) ?? "";
    },
  ],
  ["arg_", (rest) => (c) => arg(c.req.query, rest)],
  ["cookie_", (rest) => (c) => cookie(c.req, rest)],
];

/** The names a template may use beside the built-ins: module variables and regex groups. */
export interface TemplateNames {
  /** `WebRequest.vars` names that modules declare (`upstream_addr`). */
  vars: ReadonlySet<string>;
  /** Filled with every name of `vars` a compiled template uses (so a module may skip the rest). */
  used?: Set<string>;
}

export type Template = ((c: VarContext) => string) & {
  /** The text when the template has no variables. */
  readonly constant: string | undefined;
  /** Whether it uses `$1`..`$9` (a rewrite's replacement needs the match). */
  readonly usesCaptures: boolean;
};

// `$1abc` is capture 1 then "abc" (nginx reads one digit).
const namePart = /\$(?:\{(\w+)\}|(\d)|([A-Za-z_]\w*))/g;

/** Every `$name` in `text`. */
export function templateNames(text: string): string[] {
  return [...text.matchAll(namePart)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/**
 * Compile `text`; throws an Error naming an unknown variable (with a did-you-mean). `escape` is
 * applied to each variable's value (log formats).
 */
export function compileTemplate(
  text: string,
  names: TemplateNames,
  escapeValue?: (value: string) => string,
): Template {
  const literals: string[] = [];
  const getters: Getter[] = [];
  let last = 0;
  let usesCaptures = false;
  for (const m of text.matchAll(namePart)) {
    const name = m[1] ?? m[2] ?? m[3]!;
    literals.push(text.slice(last, m.index));
    last = m.index + m[0].length;
    const getter = resolve(name, names);
    if (getter === undefined) {
      const guess = didYouMean(name, [...Object.keys(builtins), ...names.vars]);
      throw new Error(`unknown variable "$${name}"${guess ? `; did you mean "$${guess}"?` : ""}`);
    }
    if (/^\d$/.test(name)) usesCaptures = true;
    getters.push(escapeValue ? (c) => escapeValue(getter(c)) : getter);
  }
  literals.push(text.slice(last));
  const constant = getters.length === 0 ? text : undefined;
  const render =
    constant !== undefined
      ? () => constant
      : (c: VarContext): string => {
          let out = literals[0]!;
          for (let i = 0; i < getters.length; i++) out += getters[i]!(c) + literals[i + 1]!;
          return out;
        };
  return Object.assign(render, { constant, usesCaptures });
}

function resolve(name: string, names: TemplateNames): Getter | undefined {
  const b = builtins[name];
  if (b) return b;
  if (/^\d$/.test(name)) return (c) => capture(c, name);
  for (const [prefix, make] of prefixed) {
    if (name.startsWith(prefix) && name.length > prefix.length)
      return make(name.slice(prefix.length));
  }
  if (names.vars.has(name)) {
    names.used?.add(name);
    return (c) => capture(c, name);
  }
  return undefined;
}

/** nginx's default log escaping: `"`, `\` and bytes outside printable ASCII as `\xHH`. */
export function escapeLog(value: string): string {
  let plain = true;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return value;
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    out +=
      byte === 0x22 || byte === 0x5c || byte < 0x20 || byte > 0x7e
        ? `\\x${byte.toString(16).toUpperCase().padStart(2, "0")}`
        : String.fromCharCode(byte);
  }
  return out;
}

/** Escaping for a value inside a JSON string (without the quotes). */
export function escapeJson(value: string): string {
  return JSON.stringify(value).slice(1, -1);
}
