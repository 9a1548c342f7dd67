/**
 * The request pipeline: the web server's config compiled into servers, locations and the
 * handlers each module registered, and the one function that takes a request through the fixed
 * phases (ARCHITECTURE.md; the order of modules within a phase is src/webserver/modules.ts):
 *
 *   1. accept/parse    the engine (engine/): limits, malformed input
 *   2. route           the server by listen address and Host (TLS: SNI), then
 *      server rewrite  the server block's `serverRewrite` handlers (its `rewrite` / `return`),
 *                      then the location (routing/locations.ts: nginx's precedence)
 *   3. rewrite         the location's `rewrite` handlers
 *   4. access          the location's `access` handlers
 *   5. content         the location's one content handler (wrapped by `wrapContent` layers),
 *                      else the first `defaultContent`, else 404
 *   6. filters         the location's `filter` handlers, on every response
 *   7. log             the location's `log` handlers, once the engine has written the response
 *
 * A Reroute from the rewrite phase chooses the location again (`rewrite ... last`); from any other
 * phase it is an internal redirect, which starts over at the server rewrite phase; `@name` enters
 * that named location's rewrite phase. An `HttpError` from any phase is answered with the
 * location's error page for its status (an internal redirect, a named location or a redirect;
 * once per request, as nginx without `recursive_error_pages`), else the built-in page.
 *
 * Compiling collects every problem (bad nesting, conflicting listeners, unreadable certificates,
 * module setup errors) into one ConfigError. It runs in the master too (`brigade check`, before
 * start and before a reload) with `serving: false`, so a bad config never reaches the workers.
 */
import { readFileSync } from "node:fs";
import { isIPv6 } from "node:net";
import { isAbsolute, resolve } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import { ConfigError, type Problem } from "../config/problems.ts";
import type { Config } from "../config/schema.ts";
import type { ListenEntry } from "../config/settings/web/core.ts";
import { commonCoreFields } from "../config/settings/web/core.ts";
import {
  compileRegex,
  type ErrorPage,
  type LocationMatch,
  parseLocationMatch,
  parseServerName,
} from "../config/settings/web/syntax.ts";
import {
  type LocationBlock,
  moduleFields,
  moduleServerFields,
  type ServerBlock,
} from "../config/settings/web.ts";
import { formatPath, type Path } from "../config/types.ts";
import type { Logger } from "../core/logger.ts";
import { formatListen, type ListenSpec, parseListen } from "../process/listen.ts";
import { type EngineRequest, RefusedRequest } from "./engine/request.ts";
import type { EngineHandler, EngineOptions, ListenerPlan, Outcome } from "./engine/types.ts";
import { Fields, HttpError, type WebConnection, type WebResponse } from "./exchange.ts";
import type {
  Completion,
  ContentHandler,
  LocationInfo,
  LocationScope,
  LogHandler,
  ModuleHandlers,
  PhaseHandler,
  PhaseResult,
  Reroute,
  ResponseFilter,
  WebModule,
} from "./module.ts";
import { modules as defaultModules } from "./modules.ts";
import { resolveDots } from "./path.ts";
import { type LocationNode, LocationTree } from "./routing/locations.ts";
import { type NameEntry, VhostTable } from "./routing/vhosts.ts";
import { defaultPage } from "./statusPages.ts";
import { compileTemplate, type Template, type TemplateNames } from "./variables.ts";

type WebConfig = Config["web"];

/** Fields a server block may inherit from the web section of the same name. */
const blockFields = { ...commonCoreFields, ...moduleServerFields, ...moduleFields };

/** Internal redirects and rewrites allowed per request (nginx's NGX_HTTP_MAX_URI_CHANGES). */
const MAX_REROUTES = 10;

const version = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
    return String(pkg.version);
  } catch {
    return "0";
  }
})();

export interface PipelineInput {
  web: WebConfig;
  /** Relative paths in the config resolve against this (the config file's directory, or cwd). */
  baseDir: string;
  /** False in the master: compile and validate only; open, create or write nothing. */
  serving: boolean;
  logger: Logger;
  /** Names the config in problems: the file's display path, or "config". */
  source: string;
  /** The modules, in order (default: src/webserver/modules.ts). */
  modules?: readonly WebModule[];
  /** Worker-wide services modules find in `scope.services` (`sharedState`, `stats`: the worker's). */
  services?: ReadonlyMap<string, unknown>;
}

interface Loc {
  readonly info: LocationInfo;
  readonly internal: boolean;
  readonly maxBody: number;
  readonly errorPages: ReadonlyMap<number, ErrorPage & { render: Template }>;
  readonly serverRewrite: PhaseHandler[];
  readonly rewrite: PhaseHandler[];
  readonly access: PhaseHandler[];
  readonly content: ContentHandler | undefined;
  readonly filters: ResponseFilter[];
  readonly logs: LogHandler[];
}

interface Srv {
  readonly index: number;
  readonly path: string;
  readonly firstName: string;
  readonly root: Loc;
  readonly tree: LocationTree<Loc>;
  readonly named: ReadonlyMap<string, Loc>;
  readonly tls: { context: SecureContext; cert: Buffer; key: Buffer } | undefined;
  readonly redirectHttps: boolean;
  /** This server's first TLS listener (for the https redirect): its key and configured port. */
  readonly https: { key: string; port: number } | undefined;
}

/** A socket to bind, and how the engine serves it. */
export interface PipelineListener {
  readonly spec: ListenSpec;
  readonly plan: ListenerPlan;
}

interface ListenerGroup {
  key: string;
  spec: ListenSpec;
  tls: boolean;
  http2: boolean;
  tlsWhere: string;
  entries: { srv: number; entry: ListenEntry; path: Path }[];
}

const notFound: ContentHandler = () => {
  throw new HttpError(404);
};

function isReroute(r: unknown): r is Reroute {
  return typeof r === "object" && r !== null && "reroute" in r;
}

function thenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown })?.then === "function";
}

/** The phases of one request, as a generator that yields only what it must wait for. */
type Steps = Generator<Promise<unknown>, Outcome | Promise<Outcome>, unknown>;

/**
 * Run `steps` synchronously as far as they go: a request whose modules all answer at once (a
 * cached static file, a `return`) costs no promise and no microtask; the first promise a module
 * returns turns the rest asynchronous (an `async` function would make every request so).
 */
function drive(
  steps: Steps,
  result: IteratorResult<Promise<unknown>, Outcome | Promise<Outcome>>,
): Outcome | Promise<Outcome> {
  if (result.done) return result.value;
  return result.value.then(
    (value) => drive(steps, steps.next(value)),
    (error: unknown) => drive(steps, steps.throw(error)),
  );
}

/** Wildcard keys cover addresses of their port: `0.0.0.0:80` serves `127.0.0.1:80`'s servers. */
function wildcardOf(spec: ListenSpec): string | undefined {
  if (spec.kind !== "tcp") return undefined;
  if (spec.host === "0.0.0.0" || spec.host === "::") return undefined;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(spec.host)) return `0.0.0.0:${spec.port}`;
  if (isIPv6(spec.host)) return `[::]:${spec.port}`;
  return undefined;
}

export class Pipeline implements EngineHandler {
  /** The sockets to bind, in order, and the engine's plan for each. */
  readonly listeners: readonly PipelineListener[];
  readonly engineOptions: Omit<EngineOptions, "logger">;
  private readonly tables: ReadonlyMap<string, VhostTable<Srv>>;
  /** Listener keys that also serve address-specific tables. */
  private readonly coveringKeys: ReadonlySet<string>;
  private readonly unknownHost: WebConfig["unknownHost"];
  private readonly signature: string;
  private readonly mergeSlashes: boolean;
  private readonly logger: Logger;
  private readonly closers: (() => void | Promise<void>)[];
  private readonly reopeners: (() => void)[];
  private readonly boundPorts = new Map<string, number>();

  /** Use `Pipeline.compile`. */
  constructor(parts: {
    listeners: PipelineListener[];
    tables: Map<string, VhostTable<Srv>>;
    coveringKeys: Set<string>;
    web: WebConfig;
    logger: Logger;
    closers: (() => void | Promise<void>)[];
    reopeners: (() => void)[];
  }) {
    const web = parts.web;
    this.listeners = parts.listeners;
    this.tables = parts.tables;
    this.coveringKeys = parts.coveringKeys;
    this.unknownHost = web.unknownHost;
    this.mergeSlashes = web.mergeSlashes;
    this.logger = parts.logger;
    this.closers = parts.closers;
    this.reopeners = parts.reopeners;
    const serverHeader =
      web.serverHeader === "off"
        ? undefined
        : web.serverHeader === "version"
          ? `brigade/${version}`
          : "brigade";
    this.signature = serverHeader ?? "";
    this.engineOptions = {
      engine: web.engine,
      headerTimeout: web.clientHeaderTimeout * 1000,
      bodyTimeout: web.clientBodyTimeout * 1000,
      bodyMinRate: web.clientBodyMinRate,
      bodyMinRateGrace: web.clientBodyMinRateGrace * 1000,
      keepaliveTimeout: web.keepaliveTimeout * 1000,
      keepaliveRequests: web.keepaliveRequests,
      sendTimeout: web.sendTimeout * 1000,
      maxRequestLine: web.maxRequestLine,
      maxHeaderSize: web.maxHeaderSize,
      maxHeaders: web.maxHeaders,
      serverHeader,
      mergeSlashes: web.mergeSlashes,
    };
  }

  /** Compile the web section; throws ConfigError listing every problem found. */
  static async compile(input: PipelineInput): Promise<Pipeline> {
    return new Compiler(input).run();
  }

  /**
   * The port a listener is bound to, once known (a configured port 0 is chosen by the OS): for
   * redirects that name the port.
   */
  bound(key: string, port: number): void {
    this.boundPorts.set(key, port);
  }

  /** Release what modules opened (log files); the pipeline must not be used after. */
  async close(): Promise<void> {
    for (const fn of this.closers) {
      try {
        await fn();
      } catch (error) {
        this.logger.error("closing a module failed", { error });
      }
    }
  }

  /** USR1: modules reopen their files. */
  reopen(): void {
    for (const fn of this.reopeners) {
      try {
        fn();
      } catch (error) {
        this.logger.error("reopening failed", { error });
      }
    }
  }

  /** `of.connection` is asked for only when needed (a request's makes its view on first use). */
  private tableFor(listener: string, of: { readonly connection: WebConnection }): VhostTable<Srv> {
    if (this.coveringKeys.size > 0 && this.coveringKeys.has(listener)) {
      const c = of.connection;
      const local = c.localAddress.includes(":")
        ? `[${c.localAddress}]:${c.localPort}`
        : `${c.localAddress}:${c.localPort}`;
      const specific = this.tables.get(local);
      if (specific) return specific;
    }
    const t = this.tables.get(listener);
    if (t) return t;
    // Only reachable with a connection from a listener this pipeline did not plan.
    return this.tables.values().next().value!;
  }

  rejected(connection: WebConnection, status: number, reason: string): void {
    const srv = this.tableFor(connection.listener, { connection }).defaultServer;
    if (srv.root.logs.length === 0) return;
    const req = new RefusedRequest(connection, connection.tls ? "https" : "http");
    const res: WebResponse = { status, fields: new Fields(), body: { kind: "empty" } };
    const done: Completion = {
      status,
      bytesSent: 0,
      bodyBytesSent: 0,
      bodyBytesReceived: 0,
      durationMs: 0,
      error: reason,
    };
    this.log(srv.root, req, res, done);
  }

  handle(req: EngineRequest): Outcome | Promise<Outcome> {
    const table = this.tableFor(req.listenerKey, req);
    const found = table.find(req.host);
    const srv = found?.server ?? table.defaultServer;
    req.serverName = srv.firstName;
    if (found?.captures) setCaptures(req, found.captures);
    try {
      if (req.invalid) throw req.invalid;
      if (found === undefined && req.host !== "") {
        if (this.unknownHost === "close") {
          return this.outcome(srv.root, req, drop(), true);
        }
        if (this.unknownHost === "misdirected") throw new HttpError(421, "unknown host");
      }
      const sni = req.scheme === "https" ? req.connection.tls?.servername : undefined;
      if (found !== undefined && sni !== undefined && sni.toLowerCase() !== req.host) {
        const bySni = table.find(sni.toLowerCase())?.server ?? table.defaultServer;
        // A connection made for another server's certificate (HTTP/2 coalescing gone wrong).
        if (bySni !== srv && bySni.tls?.cert !== srv.tls?.cert) {
          throw new HttpError(421, "the Host belongs to another certificate");
        }
      }
      if (srv.redirectHttps && req.scheme === "http") {
        const p = srv.https ? (this.boundPorts.get(srv.https.key) ?? srv.https.port) : 443;
        const port = p === 443 ? "" : `:${p}`;
        const host = (req.host || srv.firstName).replace(/:\d+$/, "");
        const status = req.method === "GET" || req.method === "HEAD" ? 301 : 308;
        // The target as sent, without the scheme and authority of an absolute form.
        const rest = req.target.startsWith("/")
          ? req.target
          : /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*(.*)$/.exec(req.target)?.[1] || "/";
        throw new HttpError(status, "https redirect", {
          fields: Fields.from([["location", `https://${host}${port}${rest}`]]),
        });
      }
    } catch (error) {
      const err = error instanceof HttpError ? error : new HttpError(500);
      return this.finish(srv.root, req, this.errorResponse(err), err.close);
    }
    const steps = this.run(req, srv);
    return drive(steps, steps.next());
  }

  /** The phases, from server rewrite to filters (`yield` waits for a module's promise). */
  private *run(req: EngineRequest, srv: Srv): Steps {
    let loc = srv.root;
    let step: "server" | "find" | "rewrite" = "server";
    let reroutes = 0;
    let internal = false;
    let errorPaged = false;
    let override: number | "response" | undefined;
    let response: WebResponse | undefined;
    let close = false;

    // Apply a Reroute; returns the step to go on with.
    const apply = (r: Reroute, from: "rewrite" | "other"): "server" | "find" | "rewrite" => {
      if (++reroutes > MAX_REROUTES) {
        throw new Error(`rewrite or internal redirection cycle while going to "${r.reroute}"`);
      }
      internal = true;
      if (r.method) req.method = r.method;
      const uri = r.reroute;
      if (uri.startsWith("@")) {
        const named = srv.named.get(uri.slice(1));
        if (named === undefined) throw new Error(`no location "${uri}" in ${srv.path}`);
        loc = named;
        req.bodyLimit = loc.maxBody;
        return "rewrite";
      }
      const q = uri.indexOf("?");
      const path = resolveDots(q < 0 ? uri : uri.slice(0, q), this.mergeSlashes);
      if (path === undefined || !uri.startsWith("/")) {
        throw new Error(`cannot reroute to ${JSON.stringify(uri)}`);
      }
      req.path = path;
      if (q >= 0) req.query = uri.slice(q + 1);
      return from === "rewrite" ? "find" : "server";
    };

    for (;;) {
      try {
        if (step === "server") {
          step = "find";
          for (let i = 0, phase = srv.root.serverRewrite; i < phase.length; i++) {
            const h = phase[i]!;
            const p = h(req);
            const r = (thenable(p) ? yield p : p) as PhaseResult;
            if (r === undefined) continue;
            if (isReroute(r)) {
              step = apply(r, "rewrite");
              break;
            }
            response = r;
            break;
          }
          if (response) break;
        }
        if (step === "find") {
          const f = srv.tree.find(req.path);
          loc = f?.value ?? srv.root;
          if (f?.captures) setCaptures(req, f.captures);
          if (loc.internal && !internal) throw new HttpError(404, "internal location");
          req.bodyLimit = loc.maxBody;
          const length = req.declaredLength;
          if (loc.maxBody > 0 && length !== undefined && length > loc.maxBody) {
            throw new HttpError(413, "request body larger than the limit", { close: true });
          }
        }
        step = "rewrite";
        let next: "server" | "find" | "rewrite" | undefined;
        for (let i = 0, phase = loc.rewrite; i < phase.length; i++) {
          const h = phase[i]!;
          const p = h(req);
          const r = (thenable(p) ? yield p : p) as PhaseResult;
          if (r === undefined) continue;
          if (isReroute(r)) next = apply(r, "rewrite");
          else response = r;
          break;
        }
        if (response) break;
        if (next !== undefined) {
          step = next;
          continue;
        }
        for (let i = 0, phase = loc.access; i < phase.length; i++) {
          const h = phase[i]!;
          const p = h(req);
          const r = (thenable(p) ? yield p : p) as PhaseResult;
          if (r === undefined) continue;
          if (isReroute(r)) next = apply(r, "other");
          else response = r;
          break;
        }
        if (response) break;
        if (next !== undefined) {
          step = next;
          continue;
        }
        const p = (loc.content ?? notFound)(req);
        const r = (thenable(p) ? yield p : p) as Awaited<typeof p>;
        if (isReroute(r)) {
          step = apply(r, "other");
          continue;
        }
        response = r;
        break;
      } catch (error) {
        const err = this.asHttpError(error, req, loc);
        const page = errorPaged ? undefined : loc.errorPages.get(err.status);
        close ||= err.close;
        if (page !== undefined) {
          errorPaged = true;
          override = page.status ?? err.status;
          const uri = page.render({ req });
          if (uri.startsWith("/") || uri.startsWith("@")) {
            try {
              const method = req.method === "GET" || req.method === "HEAD" ? undefined : "GET";
              step = apply(method ? { reroute: uri, method } : { reroute: uri }, "other");
              continue;
            } catch (e) {
              this.logger.error("error page failed", { error: e, location: loc.info.path });
              override = undefined;
            }
          } else {
            const redirect = [301, 302, 303, 307, 308].includes(page.status as number)
              ? (page.status as number)
              : 302;
            override = undefined;
            response = this.errorResponse(
              new HttpError(redirect, "error page", {
                fields: Fields.from([["location", uri]]),
              }),
            );
            break;
          }
        }
        response = this.errorResponse(err);
        override = undefined;
        break;
      }
    }
    // A copy: the response may be a module's cached object.
    if (override !== undefined && override !== "response")
      response = { ...response, status: override };
    return this.finish(loc, req, response, close);
  }

  private asHttpError(error: unknown, req: EngineRequest, loc: Loc): HttpError {
    if (error instanceof HttpError) {
      if (error.status >= 500) {
        this.logger.error(error.message, { path: req.path, location: loc.info.path });
      }
      return error;
    }
    this.logger.error("request failed", { error, path: req.path, location: loc.info.path });
    return new HttpError(500, "internal error", { cause: error });
  }

  /** The built-in response for an error: its page (unless 2xx/304), its fields. */
  private errorResponse(err: HttpError): WebResponse {
    const fields = err.fields ? err.fields.clone() : new Fields();
    const page = defaultPage(err.status, this.signature);
    if (page === "") return { status: err.status, fields, body: { kind: "empty" } };
    fields.set("content-type", "text/html");
    return { status: err.status, fields, body: { kind: "bytes", data: page } };
  }

  /** Filters, then the outcome (without a promise when no filter makes one). */
  private finish(
    loc: Loc,
    req: EngineRequest,
    response: WebResponse,
    close: boolean,
  ): Outcome | Promise<Outcome> {
    let res = response;
    const filters = loc.filters;
    for (let i = 0; i < filters.length; i++) {
      let r: WebResponse | Promise<WebResponse>;
      try {
        r = filters[i]!(req, res);
      } catch (error) {
        return this.filterFailed(loc, req, error, close);
      }
      if (thenable(r)) return this.finishAsync(loc, req, r, i + 1, close);
      res = r;
    }
    return this.outcome(loc, req, res, close);
  }

  private async finishAsync(
    loc: Loc,
    req: EngineRequest,
    pending: Promise<WebResponse>,
    next: number,
    close: boolean,
  ): Promise<Outcome> {
    try {
      let res = await pending;
      for (let i = next; i < loc.filters.length; i++) {
        const r = loc.filters[i]!(req, res);
        res = thenable(r) ? await r : r;
      }
      return this.outcome(loc, req, res, close);
    } catch (error) {
      return this.filterFailed(loc, req, error, close);
    }
  }

  private filterFailed(loc: Loc, req: EngineRequest, error: unknown, close: boolean): Outcome {
    this.logger.error("response filter failed", { error, path: req.path });
    return this.outcome(loc, req, this.errorResponse(new HttpError(500)), close);
  }

  private outcome(loc: Loc, req: EngineRequest, res: WebResponse, close: boolean): Outcome {
    return {
      response: res,
      close,
      // No log handler (no access log): no closure to make per request.
      complete: loc.logs.length === 0 ? noLog : (done) => this.log(loc, req, res, done),
    };
  }

  private log(loc: Loc, req: EngineRequest, res: WebResponse, done: Completion): void {
    for (const h of loc.logs) {
      try {
        h(req, res, done);
      } catch (error) {
        this.logger.error("log handler failed", { error });
      }
    }
  }

  /** Test helper: the location a path goes to on the default server of the first listener. */
  locate(host: string, path: string, listener?: string): string | undefined {
    const table = listener ? this.tables.get(listener) : this.tables.values().next().value;
    if (!table) return undefined;
    const srv = table.find(host)?.server ?? table.defaultServer;
    return (srv.tree.find(path)?.value ?? srv.root).info.match;
  }
}

function noLog(): void {}

function drop(): WebResponse {
  return { status: 444, fields: new Fields(), body: { kind: "empty" } };
}

/** Regex captures become `$1`..`$9` and named vars (replacing the previous match's). */
function setCaptures(req: EngineRequest, m: RegExpExecArray): void {
  const vars = req.vars;
  for (let i = 1; i <= 9; i++) {
    const v = m[i];
    if (v === undefined) vars.delete(String(i));
    else vars.set(String(i), v);
  }
  if (m.groups) for (const [k, v] of Object.entries(m.groups)) vars.set(k, v ?? "");
}

/** Collects problems while compiling; one instance per compile. */
class Compiler {
  private readonly input: PipelineInput;
  private readonly problems: Problem[] = [];
  private readonly modules: readonly WebModule[];
  private readonly shared = new Map<string, Map<string, unknown>>();
  private readonly closers: (() => void | Promise<void>)[] = [];
  private readonly reopeners: (() => void)[] = [];
  private readonly services: Map<string, unknown>;
  private readonly moduleKeys: Map<WebModule, string[]>;
  private readonly templateNames: TemplateNames;

  constructor(input: PipelineInput) {
    this.input = input;
    this.services = new Map(input.services ?? []);
    this.modules = input.modules ?? defaultModules;
    this.templateNames = {
      vars: new Set([...this.modules.flatMap((m) => m.variables ?? []), ...groupNames(input.web)]),
      used: new Set(),
    };
    this.moduleKeys = new Map(
      this.modules.map((m) => [
        m,
        [...Object.keys(m.fields ?? {}), ...Object.keys(m.serverFields ?? {})],
      ]),
    );
    for (const m of this.modules) this.shared.set(m.name, new Map());
  }

  private problem(path: Path, message: string): void {
    this.problems.push({ source: this.input.source, path, message });
  }

  resolvePath = (p: string): string => (isAbsolute(p) ? p : resolve(this.input.baseDir, p));

  async run(): Promise<Pipeline> {
    const web = this.input.web;
    // The quick start: no servers, one made of the web section's own settings.
    const synthetic = web.servers.length === 0;
    const blocks: { block: ServerBlock; path: Path }[] = synthetic
      ? [{ block: this.quickStart(web), path: ["web"] }]
      : web.servers.map((block, i) => ({ block, path: ["web", "servers", i] }));
    // The upstream groups, for the proxy (and whatever else names a group).
    this.services.set("upstreams", web.upstreams);
    // nginx's http block: a web-section setting named like a block field (`root`, `accessLog`,
    // `clientMaxBodySize`, and any a module adds the same way) is what servers inherit.
    const httpLevel: Record<string, unknown> = {};
    const section = web as unknown as Record<string, unknown>;
    for (const key of Object.keys(blockFields)) {
      if (section[key] !== undefined) httpLevel[key] = section[key];
    }

    const groups = new Map<string, ListenerGroup>();
    const servers: Srv[] = [];
    const names: NameEntry<Srv>[][] = [];
    for (const [i, { block, path }] of blocks.entries()) {
      const entries: ListenEntry[] =
        block.listen ??
        web.listen.map((address) => ({ address, tls: false, http2: false, defaultServer: false }));
      const srv = await this.server(block, path, i, httpLevel, entries);
      servers.push(srv);
      names.push(this.serverNames(block, srv));
      entries.forEach((entry, j) => {
        const where: Path = block.listen ? [...path, "listen", j] : ["web", "listen", j];
        let spec: ListenSpec;
        try {
          spec = parseListen(entry.address);
        } catch (e) {
          this.problem(where, (e as Error).message);
          return;
        }
        const key = formatListen(spec);
        let g = groups.get(key);
        if (g === undefined) {
          g = { key, spec, tls: entry.tls, http2: false, tlsWhere: formatPath(where), entries: [] };
          groups.set(key, g);
        } else if (g.tls !== entry.tls) {
          this.problem(
            where,
            `${key} is ${g.tls ? "a TLS" : "a plain-HTTP"} listener (${g.tlsWhere}); every server listening there must say the same \`tls\``,
          );
        }
        if (g.entries.some((e) => e.srv === i)) {
          this.problem(where, `this server already listens on ${key}`);
        }
        g.http2 ||= entry.http2;
        g.entries.push({ srv: i, entry, path: where });
      });
    }

    // Address-specific listeners under a wildcard of the same port share its socket.
    for (const g of groups.values()) {
      const w = wildcardOf(g.spec);
      const cover = w === undefined ? undefined : groups.get(w);
      if (cover && cover.tls !== g.tls) {
        this.problem(
          g.entries[0]!.path,
          `${g.key} shares a socket with ${cover.key} (${cover.tlsWhere}), which ${cover.tls ? "is" : "is not"} TLS; they must agree`,
        );
      }
    }

    const tables = new Map<string, VhostTable<Srv>>();
    const listeners: PipelineListener[] = [];
    const coveringKeys = new Set<string>();
    for (const g of groups.values()) {
      const defaults = g.entries.filter((e) => e.entry.defaultServer);
      if (defaults.length > 1) {
        this.problem(
          defaults[1]!.path,
          `a second default server for ${g.key} (the first is ${formatPath(defaults[0]!.path)})`,
        );
      }
      const def = servers[(defaults[0] ?? g.entries[0]!).srv]!;
      const entries = g.entries.flatMap((e) => names[e.srv]!);
      this.duplicateNames(g, names);
      const table = new VhostTable(entries, def);
      tables.set(g.key, table);
      const w = wildcardOf(g.spec);
      if (w !== undefined && groups.has(w)) {
        coveringKeys.add(w);
        continue;
      }
      let tls: ListenerPlan["tls"];
      if (g.tls) {
        for (const e of g.entries) {
          if (servers[e.srv]!.tls === undefined) {
            this.problem(
              blocks[e.srv]!.path,
              `listens with TLS on ${g.key} but has no \`tls\` certificate and key`,
            );
          }
        }
        // Every server of the socket (wildcard and address-specific) is a candidate for SNI.
        const sniEntries = [...groups.values()]
          .filter((o) => o === g || wildcardOf(o.spec) === g.key)
          .flatMap((o) => o.entries.flatMap((e) => names[e.srv]!));
        const sniTable = new VhostTable(sniEntries, def);
        if (def.tls) {
          const defTls = def.tls;
          tls = {
            cert: defTls.cert,
            key: defTls.key,
            http2: g.http2,
            contextFor: (name) => (sniTable.find(name.toLowerCase())?.server ?? def).tls?.context,
          };
        }
      }
      listeners.push({ spec: g.spec, plan: { key: g.key, tls } });
    }

    if (this.problems.length > 0) throw new ConfigError(this.problems);
    return new Pipeline({
      listeners,
      tables,
      coveringKeys,
      web,
      logger: this.input.logger,
      closers: this.closers,
      reopeners: this.reopeners,
    });
  }

  /**
   * The server block of the quick start (no `servers`): empty (the web section's `root` and the
   * rest are inherited), or with `web.proxy`, a proxy to those addresses; with a `root` too, and a
   * module that tries files, files first and the rest proxied (nginx's
   * `try_files $uri $uri/ @proxy`).
   */
  private quickStart(web: WebConfig): ServerBlock {
    if (web.proxy.length === 0) return {} as ServerBlock;
    const tries = [...this.moduleKeys.values()].some((keys) => keys.includes("tryFiles"));
    if (web.root !== undefined && tries) {
      return {
        tryFiles: ["$uri", "$uri/", "@proxy"],
        locations: [{ match: "@proxy", proxy: web.proxy }],
      } as unknown as ServerBlock;
    }
    return { proxy: web.proxy } as ServerBlock;
  }

  /** Two servers on one address with the same exact name: nginx warns and ignores; we refuse. */
  private duplicateNames(g: ListenerGroup, names: NameEntry<Srv>[][]): void {
    const seen = new Map<string, number>();
    for (const e of g.entries) {
      for (const n of names[e.srv]!) {
        if (n.match.kind !== "exact") continue;
        const first = seen.get(n.match.name);
        if (first !== undefined && first !== e.srv) {
          this.problem(
            [...e.path.slice(0, -2), "serverName"],
            `server name "${n.match.name}" on ${g.key} is also servers[${first}]'s`,
          );
        }
        seen.set(n.match.name, e.srv);
      }
    }
  }

  private serverNames(block: ServerBlock, srv: Srv): NameEntry<Srv>[] {
    const out: NameEntry<Srv>[] = [];
    for (const name of block.serverName ?? []) {
      const match = parseServerName(name);
      if (typeof match === "string") continue; // the schema refused it already
      const regex = match.kind === "regex" ? compileRegex(match.source, true) : undefined;
      out.push({ match, regex: typeof regex === "string" ? undefined : regex, server: srv });
    }
    return out;
  }

  private async server(
    block: ServerBlock,
    path: Path,
    index: number,
    httpLevel: Record<string, unknown>,
    entries: ListenEntry[],
  ): Promise<Srv> {
    const own = block as unknown as Record<string, unknown>;
    const effective = inherit(httpLevel, own);
    let tls: Srv["tls"];
    if (block.tls) {
      try {
        const cert = readFileSync(this.resolvePath(block.tls.cert));
        const key = readFileSync(this.resolvePath(block.tls.key));
        tls = { cert, key, context: createSecureContext({ cert, key }) };
      } catch (e) {
        this.problem(
          [...path, "tls"],
          `cannot use the certificate and key: ${(e as Error).message}`,
        );
      }
    }
    const names = block.serverName ?? [];
    const firstName = names.find((n) => !n.startsWith("~") && !n.includes("*")) ?? "";
    const httpsEntry = entries.find((e) => e.tls);
    let https: Srv["https"];
    if (httpsEntry) {
      try {
        const spec = parseListen(httpsEntry.address);
        if (spec.kind === "tcp") https = { key: formatListen(spec), port: spec.port };
      } catch {
        // refused with the listeners
      }
    }
    if (block.tls?.redirect && httpsEntry === undefined) {
      this.problem(
        [...path, "tls", "redirect"],
        "redirects to https, but the server has no TLS listener",
      );
    }
    const serverNames = names;
    const rootInfo: LocationInfo = { path: formatPath(path), match: "" };
    const root = await this.location(own, effective, rootInfo, serverNames, true);
    const named = new Map<string, Loc>();
    const nodes = await this.locations(
      block.locations ?? [],
      [...path, "locations"],
      effective,
      serverNames,
      named,
      undefined,
    );
    return {
      index,
      path: formatPath(path),
      firstName,
      root,
      tree: new LocationTree(nodes),
      named,
      tls,
      redirectHttps: block.tls?.redirect === true,
      https,
    };
  }

  private async locations(
    blocks: readonly LocationBlock[],
    path: Path,
    parentEffective: Record<string, unknown>,
    serverNames: readonly string[],
    named: Map<string, Loc>,
    parent: LocationMatch | undefined,
  ): Promise<LocationNode<Loc>[]> {
    const out: LocationNode<Loc>[] = [];
    const seen = new Map<string, number>();
    for (const [i, block] of blocks.entries()) {
      const where: Path = [...path, i];
      const match = parseLocationMatch(block.match);
      if (typeof match === "string") continue; // refused by the schema
      const id = matchId(match);
      const dup = seen.get(id);
      if (dup !== undefined) {
        this.problem(
          [...where, "match"],
          `duplicate location "${block.match}" (also ${formatPath([...path, dup])})`,
        );
      }
      seen.set(id, i);
      if (parent !== undefined) {
        if (match.kind === "named") {
          this.problem(
            [...where, "match"],
            "a named location can only be in a server block, not nested",
          );
        } else if (match.kind !== "regex") {
          const parentName =
            parent.kind === "regex" ? parent.source : parent.kind === "named" ? "" : parent.uri;
          if (!match.uri.startsWith(parentName)) {
            this.problem(
              [...where, "match"],
              `location "${block.match}" is outside its parent location (nested prefixes must start with "${parentName}")`,
            );
          }
        }
      }
      const own = block as unknown as Record<string, unknown>;
      const effective = inherit(parentEffective, own);
      const info: LocationInfo = { path: formatPath(where), match: block.match };
      const loc = await this.location(own, effective, info, serverNames, false);
      const nested = block.locations ?? [];
      if (nested.length > 0 && (match.kind === "exact" || match.kind === "named")) {
        this.problem(
          [...where, "locations"],
          `an ${match.kind} location cannot hold nested locations`,
        );
      }
      const children = await this.locations(
        nested,
        [...where, "locations"],
        effective,
        serverNames,
        named,
        match,
      );
      if (match.kind === "named") {
        named.set(match.name, loc);
        continue;
      }
      const regex = match.kind === "regex" ? compileRegex(match.source, match.caseless) : undefined;
      out.push({
        match,
        regex: typeof regex === "string" ? undefined : regex,
        value: loc,
        children: new LocationTree(children),
      });
    }
    return out;
  }

  /** Set up every module for one location (or a server's root) and assemble its phases. */
  private async location(
    own: Record<string, unknown>,
    effective: Record<string, unknown>,
    info: LocationInfo,
    serverNames: readonly string[],
    isRoot: boolean,
  ): Promise<Loc> {
    const where: Path = pathOf(info.path);
    let errorPages = new Map<number, ErrorPage & { render: Template }>();
    try {
      errorPages = errorPageMap(effective.errorPages as ErrorPage[] | undefined, (t) =>
        compileTemplate(t, this.templateNames),
      );
    } catch (e) {
      this.problem([...where, "errorPages"], (e as Error).message);
    }
    const loc = {
      info,
      internal: own.internal === true,
      maxBody: (effective.clientMaxBodySize as number | undefined) ?? 0,
      errorPages,
      serverRewrite: [] as PhaseHandler[],
      rewrite: [] as PhaseHandler[],
      access: [] as PhaseHandler[],
      content: undefined as ContentHandler | undefined,
      filters: [] as ResponseFilter[],
      logs: [] as LogHandler[],
    };
    let content: { module: string; handler: ContentHandler } | undefined;
    let fallback: ContentHandler | undefined;
    const wrappers: ((inner: ContentHandler) => ContentHandler)[] = [];
    for (const module of this.modules) {
      const keys = this.moduleKeys.get(module)!;
      const settings: Record<string, unknown> = {};
      const mine: Record<string, unknown> = {};
      for (const k of keys) {
        if (effective[k] !== undefined) settings[k] = effective[k];
        if (own[k] !== undefined) mine[k] = own[k];
      }
      const scope: LocationScope = {
        settings,
        own: mine,
        location: info,
        serverNames,
        logger: this.input.logger.child({ module: module.name }),
        resolvePath: this.resolvePath,
        template: (text, options) => compileTemplate(text, this.templateNames, options?.escape),
        variableUsed: (name) => this.templateNames.used?.has(name) ?? true,
        services: this.services,
        onClose: (fn) => this.closers.push(fn),
        onReopen: (fn) => this.reopeners.push(fn),
        serving: this.input.serving,
        shared: this.shared.get(module.name)!,
      };
      let h: ModuleHandlers | undefined;
      try {
        h = await module.setup(scope);
      } catch (e) {
        this.problem(where, `${module.name}: ${(e as Error).message}`);
        continue;
      }
      if (!h) continue;
      if (h.serverRewrite && isRoot) loc.serverRewrite.push(h.serverRewrite);
      if (h.rewrite) loc.rewrite.push(h.rewrite);
      if (h.access) loc.access.push(h.access);
      if (h.content) {
        if (content) {
          this.problem(
            where,
            `both ${content.module} and ${module.name} would answer this location (one content handler per location)`,
          );
        } else content = { module: module.name, handler: h.content };
      }
      if (h.defaultContent && fallback === undefined) fallback = h.defaultContent;
      if (h.wrapContent) wrappers.push(h.wrapContent);
      if (h.filter) loc.filters.push(h.filter);
      if (h.log) loc.logs.push(h.log);
    }
    let handler = content?.handler ?? fallback;
    if (handler) {
      // Outermost first in module order: wrap from the last.
      for (let i = wrappers.length - 1; i >= 0; i--) handler = wrappers[i]!(handler);
    }
    loc.content = handler;
    return loc;
  }
}

/**
 * The named groups of every regex in the config (locations, server names, rewrite rules and any
 * module's): each is a variable templates may use.
 */
function groupNames(value: unknown, out = new Set<string>()): Set<string> {
  if (typeof value === "string") {
    for (const m of value.matchAll(/\(\?P?<([A-Za-z_]\w*)>/g)) out.add(m[1]!);
  } else if (Array.isArray(value)) {
    for (const v of value) groupNames(v, out);
  } else if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) groupNames(v, out);
  }
  return out;
}

/** A location's settings: its own, else the enclosing block's. */
function inherit(
  parent: Record<string, unknown>,
  own: Record<string, unknown>,
): Record<string, unknown> {
  const out = { ...parent };
  for (const [k, v] of Object.entries(own)) {
    if (v !== undefined && k !== "locations" && k !== "match") out[k] = v;
  }
  return out;
}

function errorPageMap(
  pages: ErrorPage[] | undefined,
  template: (text: string) => Template,
): Map<number, ErrorPage & { render: Template }> {
  const m = new Map<number, ErrorPage & { render: Template }>();
  for (const p of pages ?? []) {
    const page = { ...p, render: template(p.uri) };
    for (const c of p.codes) if (!m.has(c)) m.set(c, page);
  }
  return m;
}

function matchId(m: LocationMatch): string {
  switch (m.kind) {
    case "exact":
      return `=${m.uri}`;
    case "prefix":
      return `^${m.uri}`;
    case "regex":
      return `~${m.caseless ? "*" : ""}${m.source}`;
    case "named":
      return `@${m.name}`;
  }
}

/** Back from `formatPath` to a key path (problems carry paths). */
function pathOf(text: string): Path {
  const out: (string | number)[] = [];
  for (const m of text.matchAll(/([A-Za-z_$][\w$]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(`"${m[3]}"`));
  }
  return out;
}
