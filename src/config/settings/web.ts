/**
 * The `web` section: the web server (`brigade web`), which faces the network.
 *
 * The section holds the process settings, the engine's timeouts and limits, the quick-start
 * settings (`listen`, `root`, `accessLog`: what `brigade web --root ./public --listen :8080`
 * needs, and the values servers inherit when they set none, like nginx's `http` block), and
 * `servers`: a list of server blocks, each with its locations.
 *
 * Server and location blocks hold the core's fields (web/core.ts) and every web module's fields
 * (web/<module>.ts), mounted here in module order. A module's table must also be the `fields` of
 * its WebModule (src/webserver/modules.ts); test/webserver/config.test.ts checks the two agree.
 * A section setting named like a block field (`root`, `accessLog`, `clientMaxBodySize`) is the
 * value servers inherit when they set none (nginx's `http` block): a module that wants a
 * quick-start flag (`--proxy`) declares one here with its field's name and type.
 */
import { setting } from "../setting.ts";
import {
  boolean,
  duration,
  integer,
  lazy,
  list,
  listen,
  object,
  oneOf,
  optional,
  size,
  type ValueType,
} from "../types.ts";
import { processSettings } from "./process.ts";
import { upstreams } from "./upstream.ts";
import { accessFields, addressList } from "./web/access.ts";
import { accessLogFields } from "./web/accessLog.ts";
import { blockFields } from "./web/block.ts";
import { cacheFields } from "./web/cache.ts";
import { compressFields } from "./web/compress.ts";
import { commonCoreFields, locationCoreFields, serverCoreFields } from "./web/core.ts";
import { forwardFields } from "./web/forward.ts";
import { headersFields } from "./web/headers.ts";
import { limitsFields } from "./web/limits.ts";
import { proxyFields, proxyTargetList } from "./web/proxy.ts";
import { realipFields } from "./web/realip.ts";
import { rewriteFields } from "./web/rewrite.ts";
import { staticFields } from "./web/static.ts";

/** Every module's location fields (also valid in server blocks), in module order. */
export const moduleFields = {
  ...realipFields,
  ...rewriteFields,
  ...blockFields,
  ...limitsFields,
  ...accessFields,
  ...staticFields,
  ...proxyFields,
  ...cacheFields,
  ...forwardFields,
  ...headersFields,
  ...compressFields,
  ...accessLogFields,
};

/** Every module's server-only fields. */
export const moduleServerFields = {};

const locationFields = {
  ...locationCoreFields,
  ...commonCoreFields,
  ...moduleFields,
  locations: {
    type: optional(
      lazy(
        { name: "list of locations (nested)", expected: "a list of locations", kind: "list" },
        // biome-ignore lint/suspicious/noExplicitAny: the location type refers to itself.
        (): ValueType<any, any> => list(locationType),
      ),
    ),
    doc: "Locations nested in this one (same fields). nginx's rules: a nested prefix must lie inside its parent's prefix; exact and named locations hold none.",
    nginx: "location (nested)",
  },
};

/** A location block. */
export const locationType = object(locationFields, { name: "location" });

const serverFields = {
  ...serverCoreFields,
  ...commonCoreFields,
  ...moduleServerFields,
  ...moduleFields,
  locations: {
    type: optional(list(locationType)),
    doc: "The locations: each `{ match, ...fields }`, chosen by nginx's rules (see `match`). A request that matches none is served by the server block's own fields.",
    nginx: "location",
  },
};

/** A server block. */
export const serverType = object(serverFields, { name: "server" });

export type ServerBlock = typeof serverType extends ValueType<unknown, infer O> ? O : never;
export type LocationBlock = typeof locationType extends ValueType<unknown, infer O> ? O : never;

export const web = {
  listen: setting({
    type: list(listen()),
    default: ["127.0.0.1:8080"],
    doc: 'The addresses of servers that set no `listen` (and of the one server made up when `servers` is empty), each "host:port", ":port", "[::1]:port", "port" or "unix:/path". Repeat the flag for several; in an env var, separate them with commas.',
    nginx: "listen",
  }),
  root: setting({
    type: staticFields.root.type,
    default: undefined,
    doc: "Serve files from this directory: the `root` of servers and locations that set none (nginx's `root` in the `http` block). With no `servers`, `brigade web --root ./public` serves it on `web.listen`.",
    nginx: "root (http block)",
  }),
  proxy: setting({
    type: proxyTargetList,
    default: [],
    doc: "The quick start's upstream: with no `servers`, `brigade web --proxy http://127.0.0.1:8000` proxies every request there (repeat `--proxy` for a round-robin group of several). With `--root` too, files under the root are served first and everything else is proxied (nginx's `try_files $uri $uri/ @proxy`). In a config file, use `web.upstreams` and a location's `proxy` instead.",
    nginx: "proxy_pass",
  }),
  upstreams: setting({
    type: upstreams,
    default: {},
    doc: 'Named upstream groups (nginx\'s `upstream` blocks) that a location\'s `proxy` refers to by name: `upstreams: { app: { peers: ["127.0.0.1:8000", "127.0.0.1:8001"] } }` and `proxy: "app"`. Their peers, balancing policy, health checks, retries, keep-alive pools and timeouts; see docs/upstream.md.',
    nginx: "upstream",
  }),
  cache: setting({
    type: cacheFields.cache.type,
    default: undefined,
    defaultText: "off",
    doc: "Cache responses (an RFC 9111 shared cache, in memory): the `cache` of servers and locations that set none. `brigade web --proxy http://127.0.0.1:8000 --cache`.",
    nginx: "proxy_cache",
  }),
  cacheDir: setting({
    type: cacheFields.cacheDir.type,
    default: undefined,
    doc: "Add a disk tier to the cache in this directory, shared by all workers and kept across restarts: the `cacheDir` of servers and locations that set none (`--cache-dir DIR`, which also turns `cache` on).",
    nginx: "proxy_cache_path",
  }),
  autoindex: setting({
    type: staticFields.autoindex.type,
    default: undefined,
    defaultText: "false",
    doc: "List directories that have no index file (`brigade web --root . --autoindex`): the `autoindex` of servers and locations that set none.",
    nginx: "autoindex (http block)",
  }),
  tryFiles: setting({
    type: staticFields.tryFiles.type,
    default: undefined,
    defaultText: "(none)",
    doc: "The `tryFiles` of servers and locations that set none; for a single-page app: `brigade web --root dist --try-files '$uri' --try-files /index.html`.",
    nginx: "try_files (http block)",
  }),
  gzip: setting({
    type: compressFields.gzip.type,
    default: undefined,
    defaultText: "false",
    doc: "Compress responses with gzip on the fly (`--gzip`): the `gzip` of servers and locations that set none.",
    nginx: "gzip (http block)",
  }),
  brotli: setting({
    type: compressFields.brotli.type,
    default: undefined,
    defaultText: "false",
    doc: "Compress responses with brotli on the fly (`--brotli`): the `brotli` of servers and locations that set none.",
    nginx: "brotli (http block)",
  }),
  forwardProxy: setting({
    type: forwardFields.forwardProxy.type,
    default: undefined,
    defaultText: "false",
    doc: "Be a forward proxy (`brigade web --forward-proxy --listen 127.0.0.1:3128`): the `forwardProxy` of servers and locations that set none. Serves loopback clients only unless `--allow-client` says otherwise; loopback, private and link-local destinations stay refused unless `--allow-destination` opens them. See docs/forward-proxy.md.",
    nginx: "– (Squid: http_port)",
  }),
  forwardAllowDestinations: setting({
    type: forwardFields.forwardAllowDestinations.type,
    flag: "allow-destination",
    default: undefined,
    defaultText: "(none)",
    doc: "Open a destination network the forward proxy's default deny-list refuses (`--allow-destination 127.0.0.0/8` for loopback, `--allow-destination 10.1.0.0/16` for a private network): the `forwardAllowDestinations` of servers and locations that set none.",
  }),
  forwardClients: setting({
    type: forwardFields.forwardClients.type,
    flag: "allow-client",
    default: undefined,
    defaultText: "loopback",
    doc: "Let these client networks use the forward proxy (`--allow-client 10.0.0.0/8`; name loopback too to keep it): the `forwardClients` of servers and locations that set none.",
  }),
  forwardConnectPorts: setting({
    type: forwardFields.forwardConnectPorts.type,
    flag: "connect-port",
    default: undefined,
    defaultText: "443",
    doc: "Ports CONNECT may tunnel to (`--connect-port 443 --connect-port 8443`): the `forwardConnectPorts` of servers and locations that set none.",
  }),
  forwardAuthUserFile: setting({
    type: forwardFields.forwardAuthUserFile.type,
    default: undefined,
    doc: "Require proxy users from this htpasswd file (`--forward-auth-user-file users.htpasswd`): the `forwardAuthUserFile` of servers and locations that set none.",
  }),
  forwardParent: setting({
    type: forwardFields.forwardParent.type,
    default: undefined,
    doc: "Go through this parent proxy (`--forward-parent 10.0.0.1:3128`): the `forwardParent` of servers and locations that set none.",
  }),
  accessLog: setting({
    type: accessLogFields.accessLog.type,
    default: undefined,
    defaultText: "off",
    doc: 'The access log of servers and locations that set none: a file, "-" for standard output, or "off" (the default; in a config file also `{ path, format }`, see the servers\' `accessLog`).',
    nginx: "access_log (http block)",
  }),
  clientMaxBodySize: setting({
    type: size(),
    default: "1m",
    doc: "The largest request body accepted where no server or location sets `clientMaxBodySize`; a larger one gets 413. 0: no limit.",
    nginx: "client_max_body_size",
  }),
  servers: setting({
    type: list(serverType),
    default: [],
    defaultText: "[] (one server on `web.listen`)",
    doc: "The server blocks (virtual hosts). A request goes to a server listening on the address it came in on, by its Host (TLS: also SNI), else to that address's default server. Empty: one server on `web.listen` with `web.root`.",
    nginx: "server",
  }),
  unknownHost: setting({
    type: oneOf(["default", "misdirected", "close"]),
    default: "default",
    doc: "What a request whose Host names no server on its address gets: `default` is served by the address's default server (nginx's behaviour); `misdirected` is answered 421; `close` closes the connection unanswered (nginx's `return 444` in a catch-all server). Requests without a Host (HTTP/1.0) go to the default server either way.",
  }),
  serverHeader: setting({
    type: oneOf(["name", "version", "off"]),
    default: "name",
    doc: "The `Server` response header: `name` (`brigade`), `version` (`brigade/<version>`), or `off` (none, unless a response brings its own).",
    nginx: "server_tokens",
  }),
  clientHeaderTimeout: setting({
    type: duration(),
    default: 60,
    doc: "How long a client may take to send a request's head (line and header fields); then the connection gets 408 and is closed.",
    nginx: "client_header_timeout",
  }),
  clientBodyTimeout: setting({
    type: duration(),
    default: 60,
    doc: "How long a client may go without sending a byte of a request body being read; then 408 and the connection is closed.",
    nginx: "client_body_timeout",
  }),
  clientBodyMinRate: setting({
    type: size(),
    default: 0,
    doc: "The slowest a request body may arrive, in bytes per second, once `clientBodyMinRateGrace` has passed (Apache's mod_reqtimeout `MinRate`): a body trickling in a byte at a time, each just inside `clientBodyTimeout`, gets 408. Time the server itself is not reading (the upstream is slow to take the body) does not count. 0 (the default): off; \"500\" is Apache's choice.",
  }),
  clientBodyMinRateGrace: setting({
    type: duration(),
    default: 10,
    doc: "How long a request body may take before `clientBodyMinRate` applies: the body gets this long plus one second per `clientBodyMinRate` bytes received.",
  }),
  maxConnectionsPerAddress: setting({
    type: integer({ min: 0 }),
    default: 0,
    doc: "The most connections one client address may hold open at once, across all workers (a slowloris from one address cannot take the server's connections); one more is closed at once. Counted from accept to close, by the peer address (before `realIpFrom`: behind a proxy, exempt the proxy). 0 (the default): no limit.",
  }),
  maxConnectionsExempt: setting({
    type: addressList,
    default: [],
    doc: 'Addresses and networks `maxConnectionsPerAddress` does not apply to (your own proxies, a monitoring host): `["10.0.0.0/8", "::1"]`.',
  }),
  keepaliveTimeout: setting({
    type: duration(),
    default: 75,
    doc: "How long an idle keep-alive connection (HTTP/1.1 between requests, an HTTP/2 session with no stream) is kept open. 0 disables keep-alive.",
    nginx: "keepalive_timeout",
  }),
  keepaliveRequests: setting({
    type: integer({ min: 1 }),
    default: 1000,
    doc: "Requests served on one HTTP/1.1 connection before it is closed (bounds per-connection memory growth).",
    nginx: "keepalive_requests",
  }),
  sendTimeout: setting({
    type: duration(),
    default: 60,
    doc: "How long a response may wait for the client to read anything; a client that stops reading is then dropped.",
    nginx: "send_timeout",
  }),
  engine: setting({
    type: oneOf(["node", "brigade"]),
    default: "brigade",
    doc: "The HTTP/1.x engine: `brigade` (Brigade's own: a strict RFC 9112 parser and response writer on the raw sockets, without node:http's per-request objects and streams; about twice node:http's throughput here, and it refuses every request whose framing could be read two ways) or `node` (node:http and its llhttp parser, kept as a fallback). HTTP/2 is node:http2 either way.",
  }),
  maxRequestLine: setting({
    type: size(),
    default: "8k",
    doc: "The longest request line (method, target, version) accepted; longer gets 414.",
    nginx: "large_client_header_buffers (size)",
  }),
  maxHeaderSize: setting({
    type: size(),
    default: "32k",
    doc: "The largest request head (request line and header fields together) accepted; larger gets 431.",
    nginx: "large_client_header_buffers (number × size)",
  }),
  maxHeaders: setting({
    type: integer({ min: 1, max: 10000 }),
    default: 100,
    doc: "The most header fields a request may carry; more gets 431.",
  }),
  mergeSlashes: setting({
    type: boolean(),
    default: true,
    doc: 'Merge repeated slashes in the request path ("//a///b" is "/a/b") before locations are matched.',
    nginx: "merge_slashes",
  }),
  ...processSettings({
    name: "web server",
    workers: "auto",
    workersDoc:
      'Each worker is event-driven and holds thousands of connections, so one per core (`"auto"`, the default) is usually right.',
    nginxWorkers: "worker_processes",
  }),
};
