/**
 * Fields of the reverse-proxy module (src/webserver/proxy/), valid in server and location blocks:
 * nginx's ngx_http_proxy_module, with buffering on by default in both directions (the reason the
 * web tier exists: a slow client never holds an app worker).
 *
 * `proxy` itself is not inherited (like nginx's `proxy_pass`): a nested location without one is
 * served by its own content handler (static files, say). Every other field is inherited; none
 * has a schema default, so that inheritance can see "unset": the default is in the doc and is
 * applied by the module.
 *
 * The upstream groups a `proxy` may name are `web.upstreams` (src/config/settings/upstream.ts).
 *
 * @example
 * locations: [
 *   { match: "/api/", proxy: "http://app/v1/", proxyReadTimeout: "120s" },   // /api/x -> /v1/x
 *   { match: "/events", proxy: "app", proxyBuffering: false },
 *   { match: "/old/", proxy: "http://127.0.0.1:9000", proxyRedirect: "default" },
 * ]
 */
import {
  boolean,
  byShape,
  duration,
  field,
  integer,
  list,
  object,
  oneOf,
  optional,
  parsePeerAddress,
  record,
  refine,
  size,
  string,
} from "../../types.ts";

/** A `proxy` target, parsed. */
export type ProxyTarget =
  | {
      /** A name: `web.upstreams.<name>` if there is such a group, else a host on port 80. */
      readonly kind: "name";
      readonly name: string;
      /** The URI part (`/v1/`), or undefined when the target has none (nginx's two forms). */
      readonly uri: string | undefined;
    }
  | {
      readonly kind: "address";
      /** A peer address as `web.upstreams` peers write them: `127.0.0.1:8000`, `unix:/run/a.sock`. */
      readonly address: string;
      /** The Host an upstream sees by default for `$proxy_host` (`127.0.0.1:8000`, `localhost`). */
      readonly host: string;
      readonly uri: string | undefined;
    };

const groupName = /^[A-Za-z][\w.-]*$/;

/**
 * Parse a `proxy` target: an upstream group name (`app`), `http://NAME_OR_HOST[:PORT][/URI]`
 * (IPv6 in brackets), `http://unix:/path/to.sock:[/URI]` (nginx's form), `unix:/path/to.sock`,
 * or `HOST:PORT`. A string is the problem.
 */
export function parseProxyTarget(text: string): ProxyTarget | string {
  const t = text.trim();
  if (t.startsWith("https://")) {
    return "https to upstreams is not supported yet: use http:// (a local or private link)";
  }
  if (t.startsWith("unix:")) {
    return parsePeerAddress(t)
      ? { kind: "address", address: t, host: "localhost", uri: undefined }
      : `not a unix socket address: ${JSON.stringify(text)}`;
  }
  if (!t.startsWith("http://")) {
    if (groupName.test(t) && !t.includes(":")) return { kind: "name", name: t, uri: undefined };
    const a = parsePeerAddress(t);
    if (a?.kind === "tcp" && t.includes(":"))
      return { kind: "address", address: t, host: t, uri: undefined };
    return `expected an upstream group name, "http://host:port[/uri]", "host:port" or "unix:/path", found ${JSON.stringify(text)}`;
  }
  const rest = t.slice(7);
  if (rest.startsWith("unix:")) {
    // http://unix:/run/app.sock:/uri — the path ends at the last ":" followed by "/" or the end.
    const m = /^unix:(\/[^:]*)(?::(\/.*)?)?$/.exec(rest);
    if (!m) return `expected "http://unix:/path/to.sock:/uri", found ${JSON.stringify(text)}`;
    return { kind: "address", address: `unix:${m[1]}`, host: "localhost", uri: m[2] };
  }
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const uri = slash < 0 ? undefined : rest.slice(slash);
  if (uri !== undefined && /[\s#]/.test(uri))
    return `the URI part may not hold spaces or "#": ${JSON.stringify(text)}`;
  if (authority.includes("@"))
    return "credentials in the proxy URL are not supported (set an Authorization header)";
  if (groupName.test(authority) && !authority.includes(":"))
    return { kind: "name", name: authority, uri };
  const a = parsePeerAddress(authority);
  if (a === undefined)
    return `not a host and port: ${JSON.stringify(authority)} (in ${JSON.stringify(text)})`;
  return { kind: "address", address: authority, host: authority, uri };
}

const target = refine(string(), (text, problem) => {
  const r = parseProxyTarget(text);
  return typeof r === "string" ? problem(r) : text;
});

/** A list of targets: several are a round-robin group (addresses only, one URI part). */
export const proxyTargetList = refine(list(target), (targets, problem) => {
  if (targets.length === 0) return targets;
  const parsed = targets.map((t) => parseProxyTarget(t) as ProxyTarget);
  if (targets.length > 1 && parsed.some((p) => p.kind !== "address")) {
    return problem(
      "a list of several targets holds addresses only (name a group in `web.upstreams` instead)",
    );
  }
  if (new Set(parsed.map((p) => p.uri ?? "")).size > 1) {
    return problem("every address of the list must have the same URI part");
  }
  return targets;
});

const proxyTargets = byShape(
  { string: target, list: proxyTargetList },
  {
    name: "proxy target",
    expected:
      '"app" (a group of web.upstreams), "http://127.0.0.1:8000[/uri]", "unix:/path" or a list of addresses',
    metavar: "URL",
  },
);

const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const badName = (name: string): string | undefined =>
  token.test(name) ? undefined : `not a valid header name: ${JSON.stringify(name)}`;
const headerValue = refine(string({ allowEmpty: true }), (v, problem) =>
  /[\r\n\0]/.test(v) ? problem("a header value may not contain CR, LF or NUL") : v,
);
const headerName = refine(string(), (v, problem) => {
  const bad = badName(v);
  return bad ? problem(bad) : v.toLowerCase();
});

/** The forwarding headers the proxy can add. */
export const forwardedHeaderNames = [
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-real-ip",
  "forwarded",
] as const;
export type ForwardedHeaderName = (typeof forwardedHeaderNames)[number];
export const defaultForwardedHeaders: readonly ForwardedHeaderName[] = [
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-real-ip",
];

/** One rewriting rule for Location/Refresh or a cookie attribute. */
export interface ReplaceRule {
  /** Text to find at the start of the value, or a regex source when `regex` (written `~re`, `~*re`). */
  from: string;
  to: string;
  regex: boolean;
  caseless: boolean;
}

function replaceRules(what: string) {
  return refine(
    list(
      object(
        {
          from: field({
            type: string(),
            doc: `The ${what} to replace: text matched at the start (case-insensitive for domains), or \`~regex\` / \`~*regex\` (captures usable as $1.. in \`to\`).`,
          }),
          to: field({
            type: string({ allowEmpty: true }),
            doc: "The replacement (variables allowed).",
          }),
        },
        { name: "replace rule" },
      ),
    ),
    (rules, problem) => {
      const out: ReplaceRule[] = [];
      for (const r of rules) {
        const caseless = r.from.startsWith("~*");
        const regex = caseless || r.from.startsWith("~");
        const from = regex ? r.from.slice(caseless ? 2 : 1) : r.from;
        if (regex) {
          try {
            new RegExp(from);
          } catch (e) {
            return problem(`${JSON.stringify(r.from)}: ${(e as Error).message}`);
          }
        }
        out.push({ from, to: r.to, regex, caseless });
      }
      return out;
    },
  );
}

const redirectRules = byShape(
  {
    boolean: boolean(),
    string: refine(string(), (s, problem) =>
      s === "default" || s === "off"
        ? s
        : problem('expected "default", "off", false or a list of { from, to }'),
    ),
    list: replaceRules("Location prefix"),
  },
  {
    name: "proxy redirect",
    expected: '"default", false, or a list of { from, to }',
  },
);

export const proxyFields = {
  proxy: field({
    type: optional(proxyTargets),
    doc: 'Proxy requests to an upstream: the name of a group of `web.upstreams` (`"app"`, or `"http://app/v1/"` with a URI part), an address (`"http://127.0.0.1:8000"`, `"http://[::1]:8000/"`, `"http://localhost:8000"`, `"unix:/run/app.sock"`, `"http://unix:/run/app.sock:/prefix/"`), or a list of addresses (a round-robin group). Without a URI part the request URI goes as the client sent it (the normalised one after a rewrite); with one, the part of the path that matched the location is replaced by it (`/api/` with `"http://app/v1/"`: `/api/x` goes as `/v1/x`). Regex and named locations take no URI part. Not inherited by nested locations.',
    nginx: "proxy_pass",
  }),
  proxySetHeaders: field({
    type: optional(record(headerValue, { name: "request header rules", key: badName })),
    doc: "Request headers to set on the way to the upstream, `{ name: value }` with variables (`$proxy_host`, `$http_x_*`, `$remote_addr`, `$request_id`, ...); an empty value removes the header. Host is the client's Host by default (`{ host: \"$proxy_host\" }` sends the upstream's address instead). A block that sets this replaces the inherited rules as a whole.",
    nginx: "proxy_set_header",
  }),
  proxyForwardedHeaders: field({
    type: optional(list(oneOf(forwardedHeaderNames))),
    doc: "The forwarding headers added to requests: `x-forwarded-for` (the client address appended to what the client sent: nginx's `$proxy_add_x_forwarded_for`), `x-forwarded-proto`, `x-forwarded-host`, `x-forwarded-port` and `x-real-ip` (set, replacing any the client sent), and `forwarded` (RFC 7239, appended). Default: all but `forwarded`. `[]` adds none.",
    nginx: "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for (and the others)",
  }),
  proxyHideHeaders: field({
    type: optional(list(headerName)),
    doc: "More upstream response headers not passed to the client (besides the hop-by-hop ones, and `Server`, `Date`, `X-Pad`, `X-Accel-*`, which are never passed unless `proxyPassHeaders` names them).",
    nginx: "proxy_hide_header",
  }),
  proxyPassHeaders: field({
    type: optional(list(headerName)),
    doc: "Upstream response headers hidden by default (`server`, `date`, `x-pad`, `x-accel-*`) to pass to the client anyway.",
    nginx: "proxy_pass_header",
  }),
  proxyRedirect: field({
    type: optional(redirectRules),
    doc: "Rewriting of `Location` and `Refresh` in upstream responses: `\"default\"` (the default) replaces the proxy URL (`http://127.0.0.1:8000/v1/`) with the location's prefix (`/api/`), so an app's absolute redirects to itself stay on this server; a list of `{ from, to }` replaces prefixes or `~regex` matches in order, first match wins; `false` passes them unchanged.",
    nginx: "proxy_redirect",
  }),
  proxyCookieDomain: field({
    type: optional(replaceRules("cookie Domain")),
    doc: 'Rewriting of the `Domain` attribute of upstream `Set-Cookie` headers: `[{ from: "app.internal", to: "$host" }]`. Off by default.',
    nginx: "proxy_cookie_domain",
  }),
  proxyCookiePath: field({
    type: optional(replaceRules("cookie Path")),
    doc: 'Rewriting of the `Path` attribute of upstream `Set-Cookie` headers: `[{ from: "/v1/", to: "/api/" }]`. Off by default.',
    nginx: "proxy_cookie_path",
  }),
  proxyRequestBuffering: field({
    type: optional(boolean()),
    doc: "Receive the whole request body from the client (in memory up to `clientBodyBufferSize`, then in a temp file; over `clientMaxBodySize` 413) before the upstream is contacted, so a slow upload never holds an app worker; a retry replays it from that buffer. `false` streams the body to the upstream as it arrives (then a request whose body was sent is not retried). Default true.",
    nginx: "proxy_request_buffering",
  }),
  clientBodyBufferSize: field({
    type: optional(size()),
    doc: 'Request bodies up to this size are buffered in memory, larger ones in a temp file under `proxyTempPath`. Default "16k".',
    nginx: "client_body_buffer_size",
  }),
  proxyBuffering: field({
    type: optional(boolean()),
    doc: "Read the upstream's response as fast as the upstream sends it (in memory up to `proxyBufferSize`, then in a temp file up to `proxyMaxTempFileSize`) and feed it to the client at the client's pace, so the upstream connection and app worker are free at once. `false` passes the response through as it comes, at the client's pace. Responses with `X-Accel-Buffering: no` and `text/event-stream` responses always pass through. Default true.",
    nginx: "proxy_buffering",
  }),
  proxyBufferSize: field({
    type: optional(size()),
    doc: 'How much of one response is held in memory while the client reads it; the rest goes to a temp file. Default "64k".',
    nginx: "proxy_buffers",
  }),
  proxyMaxTempFileSize: field({
    type: optional(size()),
    doc: 'The most of one response kept in a temp file; past it the upstream is read only as fast as the client reads. 0: no temp files. Default "1g".',
    nginx: "proxy_max_temp_file_size",
  }),
  proxyTempPath: field({
    type: optional(string({ metavar: "DIR" })),
    doc: "Where request and response temp files go (created if missing; files are unlinked as soon as they are opened). Default: the system temp directory.",
    nginx: "proxy_temp_path / client_body_temp_path",
  }),
  proxyConnectTimeout: field({
    type: optional(duration()),
    doc: "Time to connect to a peer, overriding the group's `timeouts.connect` (default 5 s).",
    nginx: "proxy_connect_timeout",
  }),
  proxySendTimeout: field({
    type: optional(duration()),
    doc: "Longest pause while sending the request to the peer, overriding the group's `timeouts.send` (default 60 s).",
    nginx: "proxy_send_timeout",
  }),
  proxyReadTimeout: field({
    type: optional(duration()),
    doc: "Longest wait for the response head, and longest pause between two reads of an ordinary response body, overriding the group's `timeouts.read` (default 60 s). Event streams and tunnels use `proxyStreamTimeout` instead.",
    nginx: "proxy_read_timeout",
  }),
  proxyStreamTimeout: field({
    type: optional(duration()),
    doc: 'How long a WebSocket (or other upgraded) tunnel, a `text/event-stream` response or an `X-Accel-Buffering: no` response may stay silent before it is closed, so long-lived streams are not cut by the read timeout meant for ordinary requests. 0: never. Default "1h".',
  }),
  proxyInterceptErrors: field({
    type: optional(
      byShape(
        { boolean: boolean(), list: list(integer({ min: 300, max: 599 })) },
        { name: "statuses", expected: "true, false or a list of statuses (300 to 599)" },
      ),
    ),
    doc: "Answer upstream responses with these statuses (`true`: every status from 400) with this server's own error page (the location's `errorPages`, else the built-in page) instead of the upstream's body. Default false.",
    nginx: "proxy_intercept_errors",
  }),
  proxyAccelRedirect: field({
    type: optional(boolean()),
    doc: "Honour `X-Accel-Redirect: /uri` (or `@name`) from the upstream: the response is replaced by an internal redirect to that URI (a GET), so an app can have this server send a file it authorised, from an `internal` location. Default true.",
    nginx: "X-Accel-Redirect (proxy_ignore_headers)",
  }),
};
