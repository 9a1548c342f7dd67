/**
 * Fields of the access module (src/webserver/access/): allow/deny by client address, basic auth
 * against an htpasswd file, subrequest authorization, and how they combine (`satisfy`). nginx's
 * access, auth_basic and auth_request modules. Inherited: a block that sets a field replaces the
 * inherited value of that field as a whole (nginx's rule for `allow`/`deny` lists too).
 */
import { isIP } from "node:net";
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
  record,
  refine,
  string,
} from "../../types.ts";

/**
 * Check one address entry: an IP (`10.0.0.1`, `::1`), a network in CIDR notation (`10.0.0.0/8`,
 * `fd00::/8`), `unix:` (clients on a unix socket), or `all`. Returns the normalised entry
 * (`all` -> `*`, `unix:` -> `unix`, as gateway/forwarded.ts's createTrust reads them), or a
 * message.
 */
export function checkAddressEntry(raw: string): { entry: string } | { problem: string } {
  const text = raw.trim();
  if (text === "all") return { entry: "*" };
  if (text === "unix:" || text === "unix") return { entry: "unix" };
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) {
    return {
      problem: `expected an IP address, a network ("10.0.0.0/8", "fd00::/8"), "unix:" or "all", found ${JSON.stringify(raw)}`,
    };
  }
  if (slash >= 0) {
    const bits = text.slice(slash + 1);
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) {
      return { problem: `the prefix length of ${JSON.stringify(raw)} must be 0 to ${max}` };
    }
  }
  return { entry: text };
}

/** A list of address entries (one string is a list of one). */
export const addressList = refine(
  list(string()),
  (entries, problem) => {
    const out: string[] = [];
    for (const e of entries) {
      const r = checkAddressEntry(e);
      if ("problem" in r) return problem(r.problem);
      out.push(r.entry);
    }
    return out;
  },
  { name: "list of addresses or networks" },
);

/** One allow/deny rule, normalised. */
export interface AccessRule {
  allow: boolean;
  /** Normalised entries (see checkAddressEntry). */
  addresses: string[];
  /** The status a matching deny answers: 403, or 444 to close the connection unanswered. */
  status: number;
}

const denyStatus = integer({ min: 400, max: 599 });

const accessRule = byShape(
  {
    string: refine(string(), (text, problem) => {
      const m = /^\s*(allow|deny)\s+(.+?)\s*$/.exec(text);
      if (!m)
        return problem(
          `expected "allow <address>" or "deny <address>", found ${JSON.stringify(text)}`,
        );
      const addresses: string[] = [];
      for (const part of m[2]!.split(/\s+/)) {
        const r = checkAddressEntry(part);
        if ("problem" in r) return problem(r.problem);
        addresses.push(r.entry);
      }
      return { allow: m[1] === "allow", addresses, status: 403 } as AccessRule;
    }),
    object: refine(
      object(
        {
          allow: field({
            type: optional(addressList),
            doc: "Let these addresses or networks in.",
          }),
          deny: field({ type: optional(addressList), doc: "Keep these out." }),
          status: field({
            type: optional(denyStatus),
            doc: "For `deny`: the status answered (default 403); 444 closes the connection without an answer.",
          }),
        },
        { name: "access rule" },
      ),
      (v, problem) => {
        if ((v.allow === undefined) === (v.deny === undefined)) {
          return problem("an access rule has exactly one of `allow` and `deny`");
        }
        if (v.allow !== undefined && v.status !== undefined) {
          return problem("`status` goes with `deny`");
        }
        return {
          allow: v.allow !== undefined,
          addresses: v.allow ?? v.deny ?? [],
          status: v.status ?? 403,
        } as AccessRule;
      },
    ),
  },
  {
    name: "access rule",
    expected: '"allow 10.0.0.0/8", "deny all", or { allow | deny, status }',
  },
);

/** `authBasic`: a realm, or off. */
export type AuthBasic = { realm: string } | false;

/** `authRequest`, normalised. */
export interface AuthRequestConfig {
  /** `http(s)://host[:port]/path`, or `http://unix:/path/to.sock:/uri` (nginx's spelling). */
  url: string;
  /** The subrequest's method: `GET` (nginx's; the default) or the original request's. */
  method: "GET" | "original";
  /** Seconds to wait for the answer; then 500. */
  timeout: number;
  /** Headers of a 2xx answer copied into the request (for the upstream, and `$http_<name>`). */
  copyHeaders: string[];
  /** Headers added to the subrequest (templates allowed). */
  setHeaders: Record<string, string>;
}

const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function badAuthUrl(url: string): string | undefined {
  if (/^https?:\/\/unix:\/[^:]+:\/.*$/.test(url)) return undefined;
  try {
    const u = new URL(url);
    if (u.protocol === "http:" || u.protocol === "https:") return undefined;
  } catch {
    // below
  }
  return `expected an "http://" or "https://" URL, or "http://unix:/path.sock:/uri", found ${JSON.stringify(url)}`;
}

const authUrl = refine(string({ metavar: "URL" }), (url, problem) => {
  const bad = badAuthUrl(url);
  return bad ? problem(bad) : url;
});

const authRequestDefaults = { method: "GET" as const, timeout: 5, copyHeaders: [], setHeaders: {} };

const authRequest = byShape(
  {
    boolean: refine(boolean(), (v, problem) =>
      v === false
        ? (false as const)
        : problem("`true` is not a URL; give the URL, or false for off"),
    ),
    string: refine(string({ metavar: "URL" }), (url, problem) => {
      if (url === "off") return false as const;
      const bad = badAuthUrl(url);
      return bad ? problem(bad) : ({ url, ...authRequestDefaults } as AuthRequestConfig);
    }),
    object: refine(
      object(
        {
          url: field({ type: authUrl, doc: "Where to ask." }),
          method: field({
            type: optional(oneOf(["GET", "original"])),
            doc: '`"GET"` (nginx\'s subrequests are GETs; the default) or `"original"` (the method of the request being authorized).',
          }),
          timeout: field({ type: optional(duration()), doc: 'Default "5s"; then 500.' }),
          copyHeaders: field({
            type: optional(list(string())),
            doc: "Response headers of a 2xx answer to copy into the request, replacing any the client sent, so the upstream can trust them (and templates read them as `$http_<name>`). A copied header the answer lacks is removed from the request.",
          }),
          setHeaders: field({
            type: optional(record(string({ allowEmpty: true }), { name: "headers" })),
            doc: "Extra headers on the subrequest, values with `$variables`.",
          }),
        },
        { name: "auth request" },
      ),
      (v, problem) => {
        const bad = [...(v.copyHeaders ?? []), ...Object.keys(v.setHeaders ?? {})].find(
          (h) => !headerName.test(h),
        );
        if (bad !== undefined) return problem(`not a valid header name: ${JSON.stringify(bad)}`);
        return {
          url: v.url,
          method: v.method ?? "GET",
          timeout: v.timeout ?? 5,
          copyHeaders: (v.copyHeaders ?? []).map((h) => h.toLowerCase()),
          setHeaders: v.setHeaders ?? {},
        } as AuthRequestConfig;
      },
    ),
  },
  {
    name: "auth request",
    expected: "a URL, { url, method, timeout, copyHeaders, setHeaders }, or false (off)",
    metavar: "URL",
  },
);

export const accessFields = {
  access: field({
    type: optional(list(accessRule)),
    doc: 'Allow or deny by client address, checked in order, the first match deciding: `["allow 10.0.0.0/8", "allow 2001:db8::/32", "deny all"]`. An address matching no rule is allowed. IPv4 clients on an IPv6 listener (`::ffff:10.1.2.3`) match IPv4 rules. The client address is the one `realIpFrom` establishes. A deny answers 403, or `{ deny: "all", status: 444 }` to close the connection unanswered.',
    nginx: "allow, deny",
  }),
  authBasic: field({
    type: optional(
      byShape(
        {
          string: refine(string(), (realm, problem) =>
            realm === "off"
              ? (false as const)
              : /["\\\r\n]/.test(realm)
                ? problem('a realm may not contain ", \\, CR or LF')
                : { realm },
          ),
          boolean: refine(boolean(), (v, problem) =>
            v === false ? (false as const) : problem("give the realm, or false for off"),
          ),
        },
        { name: "realm", expected: 'a realm such as "Restricted", or false (off)' },
      ),
    ),
    doc: 'Ask for a user and password (HTTP basic authentication) with this realm, checked against `authBasicUserFile`. `false` (or `"off"`) turns off an inherited one.',
    nginx: "auth_basic",
  }),
  authBasicUserFile: field({
    type: optional(string({ metavar: "FILE" })),
    doc: "The htpasswd file: `user:hash` lines, hashes made by Apache's `htpasswd` (bcrypt `$2y$`, SHA-256/512-crypt `$5$`/`$6$`, APR1-MD5 `$apr1$`, `{SHA}`), or nginx's `{SSHA}` and `{PLAIN}`. Old DES `crypt` hashes are refused (they use only 8 characters of a password). Re-read when it changes (checked at most once a second) and on reload. Relative to the config file's directory.",
    nginx: "auth_basic_user_file",
  }),
  authRequest: field({
    type: optional(authRequest),
    doc: "Ask another server whether to let each request in (nginx's `auth_request`, Traefik's forwardAuth): a GET to this URL with the request's headers, plus `X-Original-URI`, `X-Original-Method`, `X-Forwarded-For`/`-Proto`/`-Host`/`-Uri`/`-Method`. A 2xx answer lets the request in; 401 and 403 are passed on (with the answer's `WWW-Authenticate`); anything else, or no answer in time, is a 500. `false` turns off an inherited one.",
    nginx: "auth_request",
  }),
  satisfy: field({
    type: optional(oneOf(["all", "any"])),
    doc: '`"all"` (the default): a request must pass `access`, `authBasic` and `authRequest`, each that is set. `"any"`: passing one is enough (an address from the office, or a password from elsewhere).',
    nginx: "satisfy",
  }),
};
