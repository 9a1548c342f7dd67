/**
 * Fields of the forward proxy module (src/webserver/forward/): a server or location that
 * forwards absolute-form `http:` requests and tunnels `CONNECT`, for the clients it lets in, to
 * the destinations it allows. Squid is the yardstick; each field's doc names the Squid directive
 * it stands for. docs/forward-proxy.md is the guide, with the security model.
 *
 * Inherited like every block field: a block that sets one replaces the inherited value whole.
 */
import { isIP } from "node:net";
import {
  boolean,
  byShape,
  duration,
  field,
  integer,
  list,
  optional,
  record,
  refine,
  size,
  string,
} from "../../types.ts";
import { addressList } from "./access.ts";

/** An inclusive port range; a single port is `[p, p]`. */
export type PortRange = readonly [number, number];

const port = integer({ min: 1, max: 65535 });

function parsePorts(text: string): PortRange | string {
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(text);
  if (!m) return `expected a port (443) or a range ("1025-65535"), found ${JSON.stringify(text)}`;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo < 1 || hi > 65535 || lo > hi) {
    return `a port range is 1 to 65535, low to high: ${JSON.stringify(text)}`;
  }
  return [lo, hi];
}

/** A port or a range of ports: `443`, `"443"`, `"1025-65535"`. */
export const portRange = byShape(
  {
    number: refine(port, (p) => [p, p] as PortRange),
    string: refine(string({ metavar: "PORT" }), (text, problem) => {
      const r = parsePorts(text);
      return typeof r === "string" ? problem(r) : r;
    }),
  },
  { name: "port or range", expected: 'a port (443) or a range ("1025-65535")', metavar: "PORT" },
);

/**
 * A destination network: an IP (`10.1.2.3`, `fd00::1`), a CIDR network (`10.0.0.0/8`), or
 * `all` (every address: `0.0.0.0/0` and `::/0`). Normalised to CIDR text.
 */
export const networkList = refine(
  list(string({ metavar: "CIDR" })),
  (entries, problem) => {
    const out: string[] = [];
    for (const raw of entries) {
      const text = raw.trim();
      if (text === "all") {
        out.push("0.0.0.0/0", "::/0");
        continue;
      }
      const slash = text.indexOf("/");
      const addr = slash < 0 ? text : text.slice(0, slash);
      const family = isIP(addr);
      if (family === 0) {
        return problem(
          `expected an IP address, a network ("10.0.0.0/8", "fd00::/8") or "all", found ${JSON.stringify(raw)}`,
        );
      }
      const max = family === 4 ? 32 : 128;
      const bits = slash < 0 ? String(max) : text.slice(slash + 1);
      if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) {
        return problem(`the prefix length of ${JSON.stringify(raw)} must be 0 to ${max}`);
      }
      out.push(`${addr}/${Number(bits)}`);
    }
    return out;
  },
  { name: "list of networks" },
);

const label = /^(?:\*|[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)$/;

/**
 * A domain pattern: `example.com` (that name only), `.example.com` (the name and every name
 * under it, Squid's dstdomain form), `*.example.com` (names under it, not the name itself), or
 * `*` (every name). Lowercased, without a trailing dot.
 */
export const domainList = refine(
  list(string({ metavar: "DOMAIN" })),
  (entries, problem) => {
    const out: string[] = [];
    for (const raw of entries) {
      let text = raw.trim().toLowerCase();
      if (text.endsWith(".")) text = text.slice(0, -1);
      if (text === "*") {
        out.push(text);
        continue;
      }
      const body = text.startsWith(".")
        ? text.slice(1)
        : text.startsWith("*.")
          ? text.slice(2)
          : text;
      const labels = body.split(".");
      if (body === "" || labels.some((l) => l === "*" || !label.test(l))) {
        return problem(
          `expected a domain ("example.com"), the domain and its subdomains (".example.com"), subdomains only ("*.example.com") or "*", found ${JSON.stringify(raw)}`,
        );
      }
      out.push(text);
    }
    return out;
  },
  { name: "list of domains" },
);

/** `forwardAuth`: the realm, or off. */
export type ForwardAuth = { realm: string } | false;

const realm = byShape(
  {
    string: refine(string(), (text, problem) =>
      text === "off"
        ? (false as const)
        : /["\\\r\n]/.test(text)
          ? problem('a realm may not contain ", \\, CR or LF')
          : ({ realm: text } as ForwardAuth),
    ),
    boolean: refine(boolean(), (v) => (v ? ({ realm: "proxy" } as ForwardAuth) : (false as const))),
  },
  { name: "realm", expected: 'a realm such as "proxy", true (realm "proxy") or false (off)' },
);

/** The parent proxy, normalised. */
export interface ParentProxy {
  host: string;
  port: number;
  /** `Basic ...` for the parent's Proxy-Authorization, when the URL carries a user. */
  authorization: string | undefined;
  /** As written, without the password: for logs. */
  display: string;
}

const parent = refine(string({ metavar: "URL" }), (text, problem) => {
  const url = /^[a-z]+:\/\//i.test(text) ? text : `http://${text}`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return problem(
      `expected "host:port" or "http://[user:password@]host:port", found ${JSON.stringify(text)}`,
    );
  }
  if (u.protocol !== "http:")
    return problem(
      `the parent proxy is spoken to in plain HTTP ("http://..."), found ${u.protocol}`,
    );
  if ((u.pathname !== "/" && u.pathname !== "") || u.search !== "" || u.hash !== "") {
    return problem("a parent proxy is host:port, without a path");
  }
  const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
  const p = u.port === "" ? 3128 : Number(u.port);
  const user = decodeURIComponent(u.username);
  const authorization =
    user === ""
      ? undefined
      : `Basic ${Buffer.from(`${user}:${decodeURIComponent(u.password)}`).toString("base64")}`;
  const display = `${u.hostname}:${p}`;
  return { host, port: p, authorization, display } as ParentProxy;
});

/** Squid's `Safe_ports`: where plain-HTTP requests may go by default. */
export const defaultForwardPorts: readonly PortRange[] = [
  [80, 80],
  [21, 21],
  [443, 443],
  [70, 70],
  [210, 210],
  [1025, 65535],
  [280, 280],
  [488, 488],
  [591, 591],
  [777, 777],
];

export const forwardFields = {
  forwardProxy: field({
    type: optional(boolean()),
    doc: 'Act as a forward proxy here: absolute-form requests (`GET http://example.com/ HTTP/1.1`) for `http:` URLs are forwarded to their origin, and `CONNECT host:port` opens a tunnel (HTTPS and anything else), for the clients `forwardClients` lets in, to the destinations the rules allow. An origin-form request (`GET /`) gets 400. Give a forward proxy its own listener (`servers: [{ listen: ["127.0.0.1:3128"], forwardProxy: true }]`): servers are chosen by Host, and an absolute-form target\'s host is the Host. Quick start: `brigade web --forward-proxy --listen 127.0.0.1:3128`. Default false.',
    nginx: "– (Squid: http_port)",
  }),
  forwardClients: field({
    type: optional(addressList),
    doc: 'Who may use the proxy: client addresses and networks (`["10.0.0.0/8", "2001:db8::/32"]`). Default: loopback only (`127.0.0.0/8`, `::1`). Set, the list replaces the default (name loopback too to keep it). Others get 403. `all` without authentication (`forwardAuth`) is refused: that is an open proxy.',
    nginx: "– (Squid: acl src + http_access)",
  }),
  forwardPorts: field({
    type: optional(list(portRange)),
    doc: 'The ports absolute-form `http:` requests may go to (Squid\'s `Safe_ports`): protects mail, database and other services that would read an HTTP request as their own protocol. Default `[80, 21, 443, 70, 210, "1025-65535", 280, 488, 591, 777]`.',
    nginx: "– (Squid: acl Safe_ports)",
  }),
  forwardConnectPorts: field({
    type: optional(list(portRange)),
    doc: "The ports `CONNECT` may tunnel to (Squid's `SSL_ports`). Default `[443]`; others get 403.",
    nginx: "– (Squid: acl SSL_ports + http_access deny CONNECT !SSL_ports)",
  }),
  forwardAllowDestinations: field({
    type: optional(networkList),
    doc: 'Destination networks opened although the default deny-list holds them: `["10.1.0.0/16"]` to reach a private network, `["127.0.0.0/8"]` for loopback. The default deny-list (against SSRF) is loopback, link-local (cloud metadata at 169.254.169.254 among it), private (RFC 1918, fc00::/7), shared (100.64.0.0/10), unspecified, multicast, broadcast, reserved and documentation ranges; IPv4 addresses inside IPv6 (mapped, compatible, NAT64, 6to4) are checked as the IPv4 address they hold. `forwardDenyDestinations` wins over this list. Checked on the address actually connected to, after resolving the name once.',
    nginx: "– (Squid: acl dst + http_access allow)",
  }),
  forwardDenyDestinations: field({
    type: optional(networkList),
    doc: "Destination networks always refused (403), besides the default deny-list; wins over `forwardAllowDestinations`.",
    nginx: "– (Squid: acl dst + http_access deny)",
  }),
  forwardAllowDomains: field({
    type: optional(domainList),
    doc: 'When set, only these destination names may be reached (403 for the rest): `["example.com", ".example.org", "*.cdn.example"]` (`.example.org` is the domain and every name under it; `*.` only the names under it). An IP address as the target matches no domain pattern but `*`. Network rules still apply to what the names resolve to.',
    nginx: "– (Squid: acl dstdomain + http_access allow)",
  }),
  forwardDenyDomains: field({
    type: optional(domainList),
    doc: "Destination names refused (403), same patterns as `forwardAllowDomains`; checked first.",
    nginx: "– (Squid: acl dstdomain + http_access deny)",
  }),
  forwardAuth: field({
    type: optional(realm),
    doc: 'Require `Proxy-Authorization: Basic` credentials (407 with `Proxy-Authenticate` otherwise), checked against `forwardAuthUserFile` and `forwardAuthUsers`: the realm (`"office proxy"`), `true` (realm "proxy") or `false`. Default: on, with realm "proxy", when either source is set. Failed attempts are logged with the user and client, never the password. The credentials are never forwarded.',
    nginx: "– (Squid: auth_param basic + acl proxy_auth)",
  }),
  forwardAuthUserFile: field({
    type: optional(string({ metavar: "FILE" })),
    doc: "An htpasswd file of proxy users (bcrypt `$2y$`, SHA-256/512-crypt, APR1-MD5, `{SHA}`, `{SSHA}`, `{PLAIN}`; as `authBasicUserFile`), re-read when it changes. Relative to the config file's directory.",
    nginx: "– (Squid: basic_ncsa_auth FILE)",
  }),
  forwardAuthUsers: field({
    type: optional(
      record(string(), {
        name: "users",
        keyName: "<user>",
        key: (k) =>
          k === "" || k.includes(":") ? "a user name is non-empty, without ':'" : undefined,
      }),
    ),
    doc: 'Proxy users in the config: `{ alice: "$2y$05$..." }`, each value a hash as in an htpasswd file (make one with `htpasswd -nbB alice secret`). A user in both places is checked against the file.',
  }),
  forwardParent: field({
    type: optional(parent),
    doc: 'Send everything through this parent proxy (Squid\'s `cache_peer ... parent` with `never_direct`): `"10.0.0.1:3128"` or `"http://user:password@proxy.example:3128"` (its own credentials, sent as `Proxy-Authorization`). The client rules, ports, domains and networks of IP-literal targets are still checked here; names are resolved by the parent, so the network rules for names are the parent\'s to enforce.',
    nginx: "– (Squid: cache_peer parent + never_direct)",
  }),
  forwardVia: field({
    type: optional(boolean()),
    doc: "Add `Via: 1.1 <host>:<port> (brigade)` to forwarded requests and their responses (RFC 9110 §7.6.3), which also detects forwarding loops (508). Default true.",
    nginx: "– (Squid: via)",
  }),
  forwardXForwardedFor: field({
    type: optional(boolean()),
    doc: "Add the client's address to `X-Forwarded-For` on forwarded requests. Default false: origins do not learn who the clients are (Squid's default `forwarded_for on` tells them).",
    nginx: "– (Squid: forwarded_for)",
  }),
  forwardConnectTimeout: field({
    type: optional(duration()),
    doc: 'How long connecting to an origin (or the parent) may take: then 504. Default "30s".',
    nginx: "– (Squid: connect_timeout)",
  }),
  forwardReadTimeout: field({
    type: optional(duration()),
    doc: 'How long an origin may take to start its response, and pause between two reads of it: then 504 (or, mid-body, the connection is cut). Default "60s".',
    nginx: "– (Squid: read_timeout)",
  }),
  forwardTunnelIdleTimeout: field({
    type: optional(duration()),
    doc: 'A CONNECT tunnel through which nothing passed either way for this long is closed. Default "5m".',
    nginx: "– (Squid: read_timeout for tunnels)",
  }),
  forwardTunnelMaxBytes: field({
    type: optional(size()),
    doc: "The most bytes one CONNECT tunnel may carry, both ways together; then it is closed. Default 0: no limit.",
  }),
  forwardTunnelsPerClient: field({
    type: optional(integer({ min: 0 })),
    doc: "The most CONNECT tunnels one client address may hold open at once, across all workers; one more gets 429. Default 0: no limit.",
    nginx: "– (Squid: acl maxconn)",
  }),
  forwardDnsCache: field({
    type: optional(duration()),
    doc: 'How long a resolved name is reused (the checks apply to every connection all the same: a cached address was checked, and is what is connected to). Default "10s"; 0 resolves for every request.',
    nginx: "– (Squid: positive_dns_ttl)",
  }),
};
