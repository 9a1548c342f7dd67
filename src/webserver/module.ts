/**
 * What a web server module is (nginx's module contract, for us).
 *
 * A module declares its settings (fields of server and location blocks) and, for each location
 * of the config, returns the handlers it registers into the fixed phases of the pipeline
 * (ARCHITECTURE.md):
 *
 *   1. accept/parse    (the engine, not a module)
 *   2. route           (the core): the virtual host, then
 *      server rewrite  `serverRewrite` handlers of the server's implicit root location, in module
 *                      order (nginx's server rewrite phase: runs before the location is chosen),
 *                      then the location
 *   3. rewrite         `rewrite` handlers, in module order: redirects, rewrites, `return`
 *   4. access          `access` handlers, in module order: allow/deny, auth, limits
 *   5. content         exactly one `content` handler per location (proxy, forward proxy, ...),
 *                      else the first `defaultContent` in module order (static), else a 404;
 *                      possibly wrapped by `wrapContent` layers (the cache wraps the proxy)
 *   6. filters         `filter` handlers, in module order: header rules, compression, ...
 *   7. log             `log` handlers: access log, metrics
 *
 * The module order is written down in one place, `src/webserver/modules.ts` (nginx's
 * auto/modules). A module never imports another module: what they share goes through
 * `WebRequest.vars`, the response, or a service in {@link LocationScope.services}.
 *
 * A handler returns `undefined` to let the request go on to the next handler, a
 * {@link WebResponse} to answer (the rest of the rewrite/access/content phases are skipped;
 * filters and log still run), or a {@link Reroute} to restart routing with a new URI (nginx's
 * internal redirect: `rewrite ... last`, `try_files` fallback, `error_page`, named locations
 * `@name`). A thrown {@link HttpError} answers with its status; any other throw is a 500, logged.
 *
 * A Reroute returned by a `rewrite` handler is nginx's `rewrite ... last`: the location is chosen
 * again for the new URI, then its rewrite phase runs. A Reroute from anywhere else (content,
 * `serverRewrite`, an error page) is an internal redirect: it starts over at the server rewrite
 * phase. `@name` goes straight to that named location's rewrite phase. More than 10 reroutes for
 * one request is a 500 (nginx's "rewrite or internal redirection cycle").
 *
 * Errors and error pages: throw `new HttpError(status)` (with `fields` such as `Location` or
 * `Allow`) to let the server answer: the location's `errorPages` apply, else the server's default
 * page. Return a `WebResponse` with that status instead to send exactly what you built (a proxied
 * upstream error, a `return 404 "text"`).
 *
 * A module's settings are declared in `src/config/settings/web/<module>.ts` (the config layer
 * cannot import the web server, and every setting is declared in the schema) and mounted into the
 * server and location blocks by `src/config/settings/web.ts`; the module points `fields` (and
 * `serverFields`) at that same table. See docs/webserver.md, "Writing a module".
 */
import type { Field } from "../config/types.ts";
import type { Logger } from "../core/logger.ts";
import type { WebRequest, WebResponse } from "./exchange.ts";
import type { Template } from "./variables.ts";

/** Restart routing with `uri` (a path with an optional `?query`, or `@name` for a named location). */
export interface Reroute {
  readonly reroute: string;
  /** Change the method (nginx turns error_page redirects of non-GET/HEAD into GET). */
  readonly method?: "GET";
}

export type PhaseResult = undefined | WebResponse | Reroute;

/** A rewrite or access handler. */
export type PhaseHandler = (req: WebRequest) => PhaseResult | Promise<PhaseResult>;

/** The content handler of a location: must answer (or reroute). */
export type ContentHandler = (
  req: WebRequest,
) => WebResponse | Reroute | Promise<WebResponse | Reroute>;

/** Transforms the response on its way out (after content, before the engine writes it). */
export type ResponseFilter = (
  req: WebRequest,
  res: WebResponse,
) => WebResponse | Promise<WebResponse>;

/** What the engine reports once a response is written (or abandoned). */
export interface Completion {
  /** The status sent (0 if nothing could be sent). */
  readonly status: number;
  /** Bytes written to the client for this request, head included (nginx `$bytes_sent`). */
  readonly bytesSent: number;
  /** Body bytes written (nginx `$body_bytes_sent`). */
  readonly bodyBytesSent: number;
  /** Body bytes read from the client. */
  readonly bodyBytesReceived: number;
  /** Milliseconds from the request head to the last byte written (nginx `$request_time`). */
  readonly durationMs: number;
  /** Set when the exchange ended early: `client closed`, `send timeout`, an error message. */
  readonly error: string | undefined;
}

/** Runs after the response; must not throw or block. */
export type LogHandler = (req: WebRequest, res: WebResponse, done: Completion) => void;

/** The handlers one module registers for one location. */
export interface ModuleHandlers {
  /**
   * nginx's server rewrite phase: read only from the server's implicit root location (match
   * ""), run before the location is chosen and again after each internal redirect.
   */
  serverRewrite?: PhaseHandler;
  rewrite?: PhaseHandler;
  access?: PhaseHandler;
  /** Claims the content phase: two modules claiming one location is a config error. */
  content?: ContentHandler;
  /**
   * Content for a location no module claims with `content` (nginx's static module is such a
   * default: it serves whatever location has no other content handler, with an inherited
   * `root`). The first in module order wins.
   */
  defaultContent?: ContentHandler;
  /** Wraps whatever content handler the location has (outermost first in module order). */
  wrapContent?: (inner: ContentHandler) => ContentHandler;
  filter?: ResponseFilter;
  log?: LogHandler;
}

/** Where in the config a location is, for error messages and logs. */
export interface LocationInfo {
  /** The config key path: `web.servers[0].locations[2]`. */
  readonly path: string;
  /** The location's match as written (`"= /"`, `"^~ /static/"`, `"~* \\.png$"`, `"@app"`), or "" for a server's implicit root. */
  readonly match: string;
}

/** What a module gets to compile its part of one location. */
export interface LocationScope<S = Record<string, unknown>> {
  /**
   * This module's settings, effective for the location: each field as set on the location, else
   * on the nearest enclosing location that sets it, else on the server; undefined when unset
   * anywhere (the module applies its own default). Validated and normalised by the schema.
   */
  readonly settings: S;
  /**
   * This module's settings as written on this very block, without inheritance (the server block
   * for its implicit root location). For directives nginx does not inherit, such as `rewrite`
   * and `return`.
   */
  readonly own: Readonly<Partial<S>>;
  readonly location: LocationInfo;
  /** The server block's `serverName` list, for messages. */
  readonly serverNames: readonly string[];
  readonly logger: Logger;
  /** Resolve a path from the config relative to the config file's directory (or the cwd). */
  resolvePath(path: string): string;
  /**
   * Compile a setting's text with `$variables` (variables.ts: nginx's names, `$http_*`, captures,
   * and the `variables` modules declare) into a function of the request. Throws an Error naming
   * an unknown variable, with a did-you-mean: let it propagate from `setup`.
   */
  template(text: string, options?: { escape?: (value: string) => string }): Template;
  /**
   * Whether some template of the configuration (a log format, a header, an error page, any
   * module's) uses the module variable `$name`, so that a module may skip computing the vars
   * nobody reads. Complete once the whole pipeline is compiled: ask when serving, not in
   * `setup`. Absent: assume every variable is used.
   */
  variableUsed?(name: string): boolean;
  /** Worker-wide services (shared state, upstream groups, ...), by name; see each provider. */
  readonly services: ReadonlyMap<string, unknown>;
  /** Called when the worker stops (or the pipeline is replaced): release what setup opened. */
  onClose(fn: () => void | Promise<void>): void;
  /** Called on USR1 (log rotation): reopen files. */
  onReopen(fn: () => void): void;
  /**
   * False when the pipeline is compiled only to check the config (`brigade check`, and in the
   * master before a start or a reload): validate everything, but open, create or write nothing.
   */
  readonly serving: boolean;
  /**
   * State this module shares between its locations within one pipeline (one map per module per
   * pipeline): open log files by path, zones, groups.
   */
  readonly shared: Map<string, unknown>;
}

/** A field a module adds to server and location blocks. */
// biome-ignore lint/suspicious/noExplicitAny: fields of every value type.
export type ModuleField = Field<any, any>;

export interface WebModule<S = Record<string, unknown>> {
  /** Unique and short: `static`, `proxy`, `access`, `rewrite`, `headers`, `log`. */
  readonly name: string;
  /** One sentence for docs. */
  readonly doc: string;
  /**
   * Fields valid in server and location blocks (nginx context `server, location`), inherited as
   * {@link LocationScope.settings} describes. Give no `default` here (inheritance needs to see
   * "unset"): document the default in the field's doc and apply it in `setup`.
   */
  readonly fields?: Record<string, ModuleField>;
  /** Fields valid in server blocks only (nginx context `server`). */
  readonly serverFields?: Record<string, ModuleField>;
  /**
   * Names of the `WebRequest.vars` this module sets (`upstream_addr`, `remote_user`), so that
   * templates (`$upstream_addr` in a log format or a header value) may use them: any other
   * unknown `$name` is a config error.
   */
  readonly variables?: readonly string[];
  /**
   * Compile the handlers for one location (called for every location, and for each server's
   * implicit root location). Runs in each worker, and in the master for `brigade check` and
   * before a reload, so it must not listen, connect or write; throw an Error whose message names
   * the setting to refuse a combination the schema cannot express. Return undefined when the
   * module has nothing to do in this location.
   */
  setup(scope: LocationScope<S>): ModuleHandlers | undefined | Promise<ModuleHandlers | undefined>;
}
