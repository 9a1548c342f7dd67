/**
 * The web server's own fields in server and location blocks (not a module's): where a server
 * listens and for which names, TLS, locations, body size limit, error pages.
 */
import {
  boolean,
  byShape,
  field,
  integer,
  list,
  listen,
  object,
  optional,
  refine,
  size,
  string,
} from "../../types.ts";
import {
  checkErrorPageUri,
  type ErrorPage,
  parseErrorPageShorthand,
  parseLocationMatch,
  parseServerName,
} from "./syntax.ts";

/** One listen entry, normalised. */
export interface ListenEntry {
  address: string;
  tls: boolean;
  /** HTTP/2 by ALPN on a TLS listener. */
  http2: boolean;
  defaultServer: boolean;
}

export const listenEntry = byShape(
  {
    string: refine(listen(), (address) => ({
      address,
      tls: false,
      http2: false,
      defaultServer: false,
    })),
    object: refine(
      object(
        {
          address: field({
            type: listen(),
            doc: "The address: host:port, :port, [::1]:port or unix:/path.",
          }),
          tls: field({
            type: optional(boolean()),
            doc: "TLS on this listener (nginx `ssl`); the server needs `tls.cert` and `tls.key`.",
          }),
          http2: field({
            type: optional(boolean()),
            doc: "Offer HTTP/2 by ALPN beside HTTP/1.1 (TLS listeners only). Default true with `tls`.",
          }),
          defaultServer: field({
            type: optional(boolean()),
            doc: "This server answers requests whose Host matches no server on this address (nginx `default_server`). Default: the first server listening there.",
          }),
        },
        { name: "listen" },
      ),
      (v, problem) =>
        v.http2 === true && v.tls !== true
          ? problem(
              "`http2` needs `tls: true` (HTTP/2 is offered by ALPN during the TLS handshake)",
            )
          : ({
              address: v.address,
              tls: v.tls ?? false,
              http2: v.http2 ?? v.tls ?? false,
              defaultServer: v.defaultServer ?? false,
            } as ListenEntry),
    ),
  },
  {
    name: "listen entry",
    expected: 'a listen address (":8080") or { address, tls, http2, defaultServer }',
    metavar: "ADDRESS",
  },
);

const serverName = refine(string({ allowEmpty: true }), (name, problem) => {
  const r = parseServerName(name);
  return typeof r === "string" ? problem(r) : name;
});

const errorPage = byShape(
  {
    string: refine(string(), (text, problem) => {
      const r = parseErrorPageShorthand(text);
      if (typeof r === "string") return problem(r);
      const bad = checkErrorPageUri(r.uri) ?? badCodes(r.codes);
      return bad ? problem(bad) : r;
    }),
    object: refine(
      object(
        {
          codes: field({
            type: list(integer({ min: 300, max: 599 })),
            doc: "The statuses this page is for.",
          }),
          uri: field({
            type: string(),
            doc: '"/path" (internal redirect), "@name", or an "http(s)://" URL (302).',
          }),
          status: field({
            type: optional(
              byShape(
                {
                  number: integer({ min: 100, max: 599 }),
                  string: refine(string(), (s, problem) =>
                    s === "response" ? s : problem('expected a status or "response"'),
                  ),
                },
                {
                  name: "status",
                  expected: 'a status, or "response" (the status of the page\'s own response)',
                },
              ),
            ),
            doc: "Answer with this status instead of the error's (nginx `=200`); `\"response\"`: the page's own (nginx `=`).",
          }),
        },
        { name: "error page" },
      ),
      (v, problem) => {
        const bad = checkErrorPageUri(v.uri);
        if (bad) return problem(bad);
        const out: ErrorPage = { codes: v.codes, uri: v.uri };
        if (v.status !== undefined) out.status = v.status as number | "response";
        return out;
      },
    ),
  },
  {
    name: "error page",
    expected:
      '"404 /404.html", "500 502 /50x.html", "404 =200 /index.html", "404 = @app" or { codes, uri, status }',
  },
);

function badCodes(codes: number[]): string | undefined {
  const bad = codes.find((c) => c < 300 || c > 599);
  return bad === undefined ? undefined : `error page codes are 300 to 599, found ${bad}`;
}

/** Fields of both server and location blocks, inherited. */
export const commonCoreFields = {
  clientMaxBodySize: field({
    type: optional(size()),
    doc: "The largest request body accepted; a larger one is answered 413. 0: no limit. Default: `web.clientMaxBodySize`.",
    nginx: "client_max_body_size",
  }),
  errorPages: field({
    type: optional(list(errorPage)),
    doc: 'Pages for errors the server answers itself (not for responses a content handler sends as they are): `"404 /404.html"`, `"500 502 503 504 /50x.html"`, `"404 =200 /index.html"` (answer 200), `"404 = @app"` (a named location, its status), `"403 https://example.com/denied"` (a 302 redirect). An error while serving the page gets the built-in page.',
    nginx: "error_page",
  }),
};

/** Fields of location blocks only. */
export const locationCoreFields = {
  match: field({
    type: refine(string(), (m, problem) => {
      const r = parseLocationMatch(m);
      return typeof r === "string" ? problem(r) : m.trim();
    }),
    doc: 'What the location matches, as nginx writes it: `"/prefix"` (longest prefix wins), `"= /exact"`, `"^~ /prefix"` (a prefix that, when longest, skips the regexes), `"~ regex"` / `"~* regex"` (case-insensitive; first match in order of appearance wins over a prefix), or `"@name"` (a named location, reached only by `tryFiles`, `errorPages` or a reroute).',
    nginx: "location",
  }),
  internal: field({
    type: optional(boolean()),
    doc: "Only reachable by internal redirects (error pages, rewrites, `tryFiles`): a client asking for it directly gets 404.",
    nginx: "internal",
  }),
};

export const tlsType = object(
  {
    cert: field({
      type: string({ metavar: "FILE" }),
      doc: "The certificate chain (PEM), leaf first.",
    }),
    key: field({ type: string({ metavar: "FILE" }), doc: "The private key (PEM)." }),
    redirect: field({
      type: optional(boolean()),
      doc: "Answer requests that reach this server over plain HTTP with a redirect to https (301; 308 for methods other than GET and HEAD).",
    }),
  },
  { name: "tls" },
);

/** Fields of server blocks only (besides `locations`, mounted by web.ts). */
export const serverCoreFields = {
  listen: field({
    type: optional(list(listenEntry)),
    doc: 'Where this server listens: addresses (":8080") or `{ address, tls, http2, defaultServer }`. Default: `web.listen`.',
    nginx: "listen",
  }),
  serverName: field({
    type: optional(list(serverName)),
    doc: 'The names this server answers for: exact (`"example.com"`), wildcards (`"*.example.com"`, `".example.com"` for both, `"www.example.*"`), regexes (`"~^(?<user>.+)\\\\.example\\\\.net$"`, captures become variables), `""` for requests without Host. Exact wins, then the longest leading wildcard, the longest trailing wildcard, then the first matching regex.',
    nginx: "server_name",
  }),
  tls: field({
    type: optional(tlsType),
    doc: "This server's certificate and key, chosen by SNI on TLS listeners; `redirect: true` sends plain-HTTP requests to https.",
    nginx: "ssl_certificate / ssl_certificate_key",
  }),
};
