/**
 * forward: the forward proxy (Squid's job), an access and a content handler. In a server or location with
 * `forwardProxy: true`, an absolute-form request for an `http:` URL is forwarded to its origin
 * and the response relayed (keep-alive to the client, pooled connections to origins), and a
 * `CONNECT host:port` opens a tunnel. docs/forward-proxy.md is the guide and the security model.
 *
 * Every request goes through the same checks, in this order, each refusal a clear answer with
 * the rule named in its body and a `Proxy-Status` field (RFC 9209). Steps 1 to 6 need no DNS and
 * run in the access phase, before the content phase and whatever wraps it (the cache: a hit is
 * served only to a client that passed them); 7 to 9 in the content phase:
 *
 *   1. the client: `forwardClients` (default loopback only)                         403
 *   2. the target: absolute-form `http:` URL, or CONNECT's `host:port`              400
 *   3. credentials: `Proxy-Authorization: Basic` when `forwardAuth` is on            407
 *   4. a forwarding loop (our own `Via` entry on the request)                        508
 *   5. the port: `forwardPorts` (http), `forwardConnectPorts` (CONNECT, default 443) 403
 *   6. the name: `forwardDenyDomains`, then `forwardAllowDomains` if set             403
 *   7. the addresses: resolved once; each checked against the destination networks
 *      (deny-list with SSRF-safe defaults, `forwardAllowDestinations` reopening);
 *      the first allowed one is what is connected to                                 403
 *   8. CONNECT only: tunnels per client (`forwardTunnelsPerClient`)                  429
 *   9. connect: refused or unreachable 502, timed out 504
 *
 * With a parent proxy (`forwardParent`) names are not resolved here (the parent does it), so
 * step 7 applies to IP-literal targets only.
 *
 * Variables set, for the access log: `forward_target` (host:port asked for), `forward_addr`
 * (the address connected to), `forward_bytes_up` / `forward_bytes_down` (a tunnel's bytes, client
 * to destination and back), `forward_end` (why a tunnel ended), `forward_error` (the
 * Proxy-Status error of a refusal or failure), `remote_user` (the proxy user).
 *
 * Worker services used: `sharedState` (tunnel counts across workers; without it, this process's
 * own) and `forwardLookup` (a resolver in place of the system's; tests).
 */
import { hostname } from "node:os";
import {
  defaultForwardPorts,
  type ForwardAuth,
  forwardFields,
} from "../../config/settings/web/forward.ts";
import type { ObjectOut } from "../../config/types.ts";
import { basicChallenge, parseBasic } from "../../core/credentials/basic.ts";
import { BcryptQueueFull, BcryptVerifier } from "../../core/credentials/bcrypt.ts";
import { type Entry, entryOf, Htpasswd, PasswordTable } from "../../core/credentials/htpasswd.ts";
import { createTrust } from "../../gateway/forwarded.ts";
import { type CountItem, LocalSharedState, type SharedState } from "../../process/sharedState.ts";
import { UpstreamError, type UpstreamResponse } from "../../upstream/index.ts";
import { Fields, type WebRequest, type WebResponse } from "../exchange.ts";
import type { LocationScope, ModuleHandlers, WebModule } from "../module.ts";
import { reasonPhrase } from "../statusPages.ts";
import { TUNNELS_SERVICE, type TunnelRegistry } from "../tunnels.ts";
import { failedToConnect, incomingResponse, OriginPools, outgoingFields } from "./http.ts";
import { DestinationRules, describeRefusal } from "./networks.ts";
import { LOOKUP_SERVICE, type Lookup, ResolveError, Resolver, systemLookup } from "./resolve.ts";
import { domainMatcher, parseAbsolute, parseConnect, portMatcher, type Target } from "./target.ts";
import { DownRelay, dialFirst, parentConnect, runTunnel } from "./tunnel.ts";

type Settings = ObjectOut<typeof forwardFields>;

/** RFC 9209's error types, those we answer with. */
type ProxyError =
  | "http_request_denied"
  | "http_request_error"
  | "destination_ip_prohibited"
  | "destination_not_found"
  | "dns_error"
  | "connection_refused"
  | "connection_timeout"
  | "connection_terminated"
  | "connection_read_timeout"
  | "connection_limit_reached"
  | "proxy_loop_detected"
  | "proxy_internal_error"
  | "http_protocol_error"
  | "destination_unavailable";

const defaultClients = ["127.0.0.0/8", "::1", "unix"];
const SHARED_STATE_SERVICE = "sharedState";
/** The var the access phase sets once a request passed every check. */
const ADMITTED = "forward_admitted";
const pseudonym = hostname() || "brigade";

let processLocal: LocalSharedState | undefined;

/** A Proxy-Status `details` value: printable ASCII, quoted (RFC 8941 sf-string). */
function sfString(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]/g, "?").replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The proxy's own answer: a status, a plain-text sentence saying why, `Proxy-Status`. */
function answer(
  req: WebRequest,
  status: number,
  error: ProxyError,
  detail: string,
  extra?: Record<string, string>,
): WebResponse {
  req.vars.set("forward_error", error);
  const fields = Fields.from({
    "content-type": "text/plain; charset=utf-8",
    "cache-control": "no-store",
    "proxy-status": `brigade; error=${error}; details=${sfString(detail)}`,
    ...extra,
  });
  return {
    status,
    fields,
    body: { kind: "bytes", data: `${status} ${reasonPhrase(status)}: ${detail}\n` },
  };
}

/** Users from a file and a config list; the file's entry wins. */
class ProxyUsers {
  private readonly file: Htpasswd | undefined;
  private readonly list: PasswordTable | undefined;
  constructor(file: Htpasswd | undefined, list: PasswordTable | undefined) {
    this.file = file;
    this.list = list;
  }
  check(user: string, password: string): ReturnType<PasswordTable["check"]> {
    if (this.file && (this.file.has(user) || !this.list?.has(user))) {
      return this.file.check(user, password);
    }
    return this.list!.check(user, password);
  }
}

function sharedOf<T>(scope: LocationScope<Settings>, key: string, make: () => T): T {
  let v = scope.shared.get(key) as T | undefined;
  if (v === undefined) {
    v = make();
    scope.shared.set(key, v);
  }
  return v;
}

function authOf(
  s: Settings,
  scope: LocationScope<Settings>,
): { realm: string; users: ProxyUsers } | undefined {
  const sources = s.forwardAuthUserFile !== undefined || s.forwardAuthUsers !== undefined;
  const auth: ForwardAuth = s.forwardAuth ?? (sources ? { realm: "proxy" } : false);
  if (auth === false) return undefined;
  if (!sources) {
    throw new Error("forwardAuth needs forwardAuthUserFile or forwardAuthUsers (who may log in)");
  }
  const bcrypt = sharedOf(scope, "bcrypt", () => {
    const v = new BcryptVerifier();
    scope.onClose(() => v.close());
    return v;
  });
  let file: Htpasswd | undefined;
  if (s.forwardAuthUserFile !== undefined) {
    const path = scope.resolvePath(s.forwardAuthUserFile);
    try {
      file = sharedOf(scope, `htpasswd:${path}`, () => new Htpasswd(path, scope.logger, bcrypt));
    } catch (e) {
      throw new Error(`forwardAuthUserFile: ${(e as Error).message}`);
    }
  }
  let list: PasswordTable | undefined;
  if (s.forwardAuthUsers !== undefined) {
    const users = new Map<string, Entry>();
    for (const [user, hash] of Object.entries(s.forwardAuthUsers)) {
      const e = entryOf(hash);
      if (typeof e === "string") throw new Error(`forwardAuthUsers.${user}: ${e}`);
      users.set(user, e);
    }
    list = new PasswordTable(bcrypt, users);
  }
  return { realm: auth.realm, users: new ProxyUsers(file, list) };
}

/** The client address as the access modules see it (realip's, else the peer's). */
function clientOf(req: WebRequest): string {
  return req.vars.get("remote_addr") ?? req.connection.remoteAddress;
}

/** An UpstreamError (or a resolver failure) as the answer it deserves. */
function failure(req: WebRequest, error: unknown, what: string): WebResponse {
  if (error instanceof ResolveError) {
    const notFound = error.code === "ENOTFOUND" || error.code === "ENODATA";
    return answer(req, 502, notFound ? "destination_not_found" : "dns_error", error.message);
  }
  if (error instanceof UpstreamError) {
    if (error.kind === "aborted")
      return answer(req, 499, "connection_terminated", "the client went away");
    if (error.kind === "timeout") {
      return answer(
        req,
        504,
        error.phase === "connect" ? "connection_timeout" : "connection_read_timeout",
        `${what}: ${error.message}`,
      );
    }
    if (error.kind === "refused")
      return answer(req, 502, "connection_refused", `${what}: ${error.message}`);
    if (error.kind === "badResponse")
      return answer(req, 502, "http_protocol_error", `${what}: ${error.message}`);
    return answer(req, 502, "connection_terminated", `${what}: ${error.message}`);
  }
  return answer(
    req,
    502,
    "proxy_internal_error",
    `${what}: ${(error as Error)?.message ?? String(error)}`,
  );
}

export const forwardModule: WebModule<Settings> = {
  name: "forward",
  doc: "The forward proxy: absolute-form http requests forwarded, CONNECT tunnels, for allowed clients to allowed destinations.",
  fields: forwardFields,
  variables: [
    "forward_target",
    "forward_addr",
    "forward_bytes_up",
    "forward_bytes_down",
    "forward_end",
    "forward_error",
    "remote_user",
  ],
  setup(scope): ModuleHandlers | undefined {
    const s = scope.settings;
    if (s.forwardProxy !== true) return undefined;

    const clientList = s.forwardClients ?? defaultClients;
    const clients = createTrust(clientList);
    const auth = authOf(s, scope);
    if (auth === undefined && clientList.some((e) => e === "*" || /\/0$/.test(e))) {
      throw new Error(
        "forwardClients lets every address in, and forwardAuth is off: that is an open proxy. List the client networks, or require credentials (forwardAuthUserFile / forwardAuthUsers)",
      );
    }
    const challenge: Record<string, string> =
      auth === undefined ? {} : { "proxy-authenticate": basicChallenge(auth.realm) };
    const httpPorts = portMatcher(s.forwardPorts ?? defaultForwardPorts);
    const connectPorts = portMatcher(s.forwardConnectPorts ?? [[443, 443]]);
    const connectPortsText = (s.forwardConnectPorts ?? [[443, 443]])
      .map(([a, b]) => (a === b ? String(a) : `${a}-${b}`))
      .join(", ");
    const denyDomains = s.forwardDenyDomains ?? [];
    const allowDomains = s.forwardAllowDomains;
    const denyDomain = domainMatcher(denyDomains);
    const allowDomain = allowDomains === undefined ? undefined : domainMatcher(allowDomains);
    const rules = new DestinationRules(
      s.forwardAllowDestinations ?? [],
      s.forwardDenyDestinations ?? [],
    );
    const parent = s.forwardParent;
    const connectMs = (s.forwardConnectTimeout ?? 30) * 1000;
    const readMs = (s.forwardReadTimeout ?? 60) * 1000;
    const tunnelLimits = {
      idleMs: (s.forwardTunnelIdleTimeout ?? 300) * 1000,
      maxBytes: s.forwardTunnelMaxBytes ?? 0,
    };
    const perClient = s.forwardTunnelsPerClient ?? 0;
    const viaOn = s.forwardVia ?? true;
    const xff = s.forwardXForwardedFor ?? false;
    const dnsMs = (s.forwardDnsCache ?? 10) * 1000;
    const log = scope.logger;

    // Shared by the locations of one pipeline with the same settings.
    const lookup = (scope.services.get(LOOKUP_SERVICE) as Lookup | undefined) ?? systemLookup;
    const resolver = sharedOf(scope, `resolver:${dnsMs}`, () => new Resolver(lookup, dnsMs));
    const pools = sharedOf(scope, `pools:${connectMs}:${readMs}`, () => {
      const p = new OriginPools({
        idle: 256,
        idleTimeout: 4000,
        maxRequests: 1000,
        connectTimeout: connectMs,
        sendTimeout: 60_000,
        readTimeout: readMs,
      });
      scope.onClose(() => p.close());
      return p;
    });
    // Open tunnels, for the worker's graceful stop (src/webserver/tunnels.ts).
    const registry = scope.services.get(TUNNELS_SERVICE) as TunnelRegistry | undefined;
    const tunnels = sharedOf(scope, "tunnels", () => {
      const set = new Set<() => void>();
      scope.onClose(() => {
        for (const stop of set) stop();
      });
      return set;
    });
    const state =
      (scope.services.get(SHARED_STATE_SERVICE) as SharedState | undefined) ??
      // biome-ignore lint/suspicious/noAssignInExpressions: one per process, made on first use.
      (processLocal ??= new LocalSharedState());
    const tunnelRule = { zone: `forward-tunnels:${scope.location.path}`, max: perClient };

    const viaOf = (req: WebRequest): string => `${pseudonym}:${req.connection.localPort}`;

    /** Step 3: credentials (only when `forwardAuth` is on). */
    const authenticate = async (
      req: WebRequest,
      client: string,
    ): Promise<WebResponse | undefined> => {
      if (auth !== undefined) {
        const header = req.fields.get("proxy-authorization");
        const cred = parseBasic(header);
        if (cred === undefined) {
          if (header !== undefined)
            log.info("malformed proxy credentials", { client, target: req.target });
          return answer(
            req,
            407,
            "http_request_denied",
            "proxy authentication required",
            challenge,
          );
        }
        let result: Awaited<ReturnType<ProxyUsers["check"]>>;
        try {
          result = await auth.users.check(cred.user, cred.password);
        } catch (error) {
          if (error instanceof BcryptQueueFull) {
            return answer(req, 503, "proxy_internal_error", "too many password checks waiting");
          }
          throw error;
        }
        if (result !== "ok") {
          // Never the password; the user and client are what shows a brute force.
          log.warn("proxy authentication failed", {
            user: cred.user,
            reason: result,
            client,
            target: req.target,
          });
          return answer(req, 407, "http_request_denied", "proxy authentication failed", challenge);
        }
        req.vars.set("remote_user", cred.user);
      }
      return undefined;
    };

    /** Step 4: a loop (our own Via entry on the request). */
    const looped = (req: WebRequest, client: string): WebResponse | undefined => {
      const via = req.fields.joined("via");
      if (viaOn && via !== undefined) {
        const mine = viaOf(req);
        for (const entry of via.split(",")) {
          const by = entry.trim().split(/\s+/)[1];
          if (by === mine) {
            log.warn("forwarding loop", {
              client,
              target: req.target,
              via,
            });
            return answer(
              req,
              508,
              "proxy_loop_detected",
              `the request already came through this proxy (${mine})`,
            );
          }
        }
      }
      return undefined;
    };

    /** Steps 6 and 7: the name, then the addresses. The allowed addresses, or the refusal. */
    /** Step 6: the name against the domain lists. */
    const domains = (req: WebRequest, target: Target): WebResponse | undefined => {
      const isName = target.family === 0;
      const denied = isName ? denyDomain(target.host) : denyDomains.includes("*") ? "*" : undefined;
      if (denied !== undefined) {
        return answer(
          req,
          403,
          "destination_ip_prohibited",
          `${target.host} is denied by forwardDenyDomains ("${denied}")`,
        );
      }
      if (allowDomain !== undefined) {
        const ok = isName
          ? allowDomain(target.host)
          : allowDomains?.includes("*")
            ? "*"
            : undefined;
        if (ok === undefined) {
          return answer(
            req,
            403,
            "destination_ip_prohibited",
            `${target.host} is not in forwardAllowDomains`,
          );
        }
      }
      return undefined;
    };

    /** Step 7: the addresses to connect to (resolved once), or the refusal. */
    const destination = (
      req: WebRequest,
      target: Target,
    ): string[] | WebResponse | Promise<string[] | WebResponse> => {
      const isName = target.family === 0;
      if (isName && parent !== undefined) return [];
      if (!isName) return networks(req, target, [target.host]);
      return resolver.resolve(target.host).then(
        (addresses) => networks(req, target, addresses),
        (error: unknown) => failure(req, error, `resolving ${target.host}`),
      );
    };

    /** Step 7's check: the addresses that may be connected to, or the refusal. */
    const networks = (
      req: WebRequest,
      target: Target,
      addresses: string[],
    ): string[] | WebResponse => {
      const isName = target.family === 0;
      const allowed: string[] = [];
      let refusal: string | undefined;
      for (const a of addresses) {
        const r = rules.check(a);
        if (r === undefined) allowed.push(a);
        else refusal ??= describeRefusal(a, r);
      }
      if (allowed.length === 0) {
        const detail = isName
          ? `${target.host} resolves to ${addresses.join(", ")}: ${refusal}`
          : refusal!;
        log.info("forward proxy destination refused", {
          client: clientOf(req),
          target: target.hostPort,
          reason: detail,
        });
        return answer(req, 403, "destination_ip_prohibited", detail);
      }
      return allowed;
    };

    /** Step 5 for http, and the methods a proxy answers itself. */
    const httpChecks = (req: WebRequest, target: Target): WebResponse | undefined => {
      if (!httpPorts(target.port)) {
        return answer(
          req,
          403,
          "http_request_denied",
          `port ${target.port} is not in forwardPorts`,
        );
      }
      if (req.method === "TRACE") {
        return answer(req, 405, "http_request_denied", "TRACE is not forwarded", {
          allow: "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH",
        });
      }
      // RFC 9110 §7.6.2: the last hop answers OPTIONS with Max-Forwards: 0 itself.
      if (req.method === "OPTIONS" && req.fields.get("max-forwards")?.trim() === "0") {
        return {
          status: 200,
          fields: Fields.from({ allow: "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, CONNECT" }),
          body: { kind: "empty" },
        };
      }
      return domains(req, target);
    };

    const forwardHttp = async (
      req: WebRequest,
      target: Target,
      client: string,
    ): Promise<WebResponse> => {
      let maxForwards: number | undefined;
      if (req.method === "OPTIONS" && req.fields.has("max-forwards")) {
        const n = Number(req.fields.get("max-forwards"));
        if (Number.isInteger(n) && n > 0) maxForwards = n - 1;
      }
      const d = destination(req, target);
      const dest = d instanceof Promise ? await d : d;
      if (!Array.isArray(dest)) return dest;
      const via = viaOn ? `1.1 ${viaOf(req)} (brigade)` : undefined;
      const headers = outgoingFields(req, target, {
        via,
        xForwardedFor: xff,
        client,
        parentAuthorization: parent?.authorization,
        maxForwards,
      });
      const body = req.body.empty ? undefined : req.body.stream();
      const replayable = body === undefined;
      let res: UpstreamResponse | undefined;
      let lastError: unknown;
      if (parent !== undefined) {
        let parentAddrs: string[];
        try {
          parentAddrs = await resolver.resolve(parent.host);
        } catch (error) {
          return failure(req, error, "the parent proxy");
        }
        const path = `http://${target.authority}${target.pathAndQuery}`;
        for (const [i, address] of parentAddrs.entries()) {
          try {
            req.vars.set("forward_addr", `${address}:${parent.port}`);
            res = await pools
              .get(parent.host, address, parent.port)
              .request({ method: req.method, path, headers, body, signal: req.signal });
            break;
          } catch (error) {
            lastError = error;
            if (!(replayable && failedToConnect(error) && i < parentAddrs.length - 1)) break;
          }
        }
        if (res !== undefined && res.status === 407) {
          res.body.on("error", () => {});
          res.body.destroy();
          log.error("the parent proxy refused our credentials", { parent: parent.display });
          return answer(
            req,
            502,
            "http_request_denied",
            `the parent proxy ${parent.display} asks for credentials (forwardParent)`,
          );
        }
        if (res === undefined) return failure(req, lastError, `the parent proxy ${parent.display}`);
      } else {
        for (const [i, address] of dest.entries()) {
          try {
            req.vars.set(
              "forward_addr",
              address.includes(":") ? `[${address}]:${target.port}` : `${address}:${target.port}`,
            );
            res = await pools.get(target.host, address, target.port).request({
              method: req.method,
              path: target.pathAndQuery,
              headers,
              body,
              signal: req.signal,
            });
            break;
          } catch (error) {
            lastError = error;
            if (!(replayable && failedToConnect(error) && i < dest.length - 1)) break;
          }
        }
        if (res === undefined) return failure(req, lastError, target.hostPort);
      }
      try {
        return await incomingResponse(req.method, res, via);
      } catch (error) {
        return failure(req, error, `reading the response of ${target.hostPort}`);
      }
    };

    /** Step 5 for CONNECT. */
    const connectChecks = (req: WebRequest, target: Target): WebResponse | undefined => {
      if (!req.canTakeover) {
        return answer(req, 501, "http_request_error", "CONNECT is served over HTTP/1.1 only");
      }
      if (!connectPorts(target.port)) {
        return answer(
          req,
          403,
          "http_request_denied",
          `CONNECT to port ${target.port} is refused (forwardConnectPorts: ${connectPortsText})`,
        );
      }
      return domains(req, target);
    };

    const connect = async (
      req: WebRequest,
      target: Target,
      client: string,
    ): Promise<WebResponse> => {
      const d = destination(req, target);
      const dest = d instanceof Promise ? await d : d;
      if (!Array.isArray(dest)) return dest;
      const items: CountItem[] =
        perClient > 0 ? [{ rule: tunnelRule, key: client || "unix:" }] : [];
      if (items.length > 0) {
        const v = await state.acquire(items);
        if (!v.ok) {
          log.warn("too many tunnels from one client", { client, max: perClient });
          return answer(
            req,
            429,
            "connection_limit_reached",
            `this client already holds ${perClient} tunnels (forwardTunnelsPerClient)`,
          );
        }
      }
      const release = (): void => {
        if (items.length > 0) state.release(items);
      };
      let upstream: Awaited<ReturnType<typeof dialFirst>>;
      let relay: DownRelay | undefined;
      let upHead: Buffer = Buffer.alloc(0);
      try {
        if (parent !== undefined) {
          const addrs = await resolver.resolve(parent.host);
          upstream = await dialFirst(addrs, parent.port, connectMs);
          upHead = await parentConnect(
            upstream.socket,
            target.hostPort,
            parent.authorization,
            readMs,
            parent.display,
          );
          req.vars.set("forward_addr", `${upstream.address}:${parent.port}`);
        } else {
          relay = new DownRelay();
          upstream = await dialFirst(dest, target.port, connectMs, relay);
          req.vars.set(
            "forward_addr",
            upstream.address.includes(":")
              ? `[${upstream.address}]:${target.port}`
              : `${upstream.address}:${target.port}`,
          );
        }
      } catch (error) {
        release();
        return failure(req, error, parent ? `the parent proxy ${parent.display}` : target.hostPort);
      }
      const socket = upstream.socket;
      // Until the tunnel runs: an error must not go unheard, and a client that leaves before
      // the engine hands its connection over must not leave the destination open.
      const idle = (): void => {};
      socket.on("error", idle);
      let started = false;
      const abandon = (): void => {
        if (started) return;
        socket.destroy();
        release();
      };
      if (req.signal.aborted) {
        abandon();
        return answer(req, 499, "connection_terminated", "the client went away");
      }
      req.signal.addEventListener("abort", abandon, { once: true });
      return {
        status: 200,
        reason: "Connection established",
        fields: Fields.from({ server: "" }),
        body: {
          kind: "takeover",
          onSocket: async (conn, head) => {
            started = true;
            req.signal.removeEventListener("abort", abandon);
            socket.off("error", idle);
            let stop: (() => void) | undefined;
            let untrack: (() => void) | undefined;
            const stats = await runTunnel(
              conn,
              socket,
              head,
              upHead,
              tunnelLimits,
              (fn) => {
                stop = fn;
                tunnels.add(fn);
                untrack = registry?.add(fn);
              },
              relay,
            );
            if (stop) tunnels.delete(stop);
            untrack?.();
            release();
            req.vars.set("forward_bytes_up", String(stats.up));
            req.vars.set("forward_bytes_down", String(stats.down));
            req.vars.set("forward_end", stats.end);
          },
        },
      };
    };

    /** What the access phase found, for the content phase. */
    const admitted = new WeakMap<WebRequest, { target: Target; client: string }>();

    /**
     * Steps 1 to 6, in the access phase: before the content phase and whatever wraps it (a
     * cache hit is served to an allowed, authenticated client only).
     */
    const access = (
      req: WebRequest,
    ): WebResponse | undefined | Promise<WebResponse | undefined> => {
      const client = clientOf(req);
      if (!clients(client === "" ? undefined : client)) {
        log.info("forward proxy client refused", { client: client || "unix:", target: req.target });
        return answer(
          req,
          403,
          "http_request_denied",
          `the client ${client || "unix:"} is not allowed to use this proxy (forwardClients)`,
        );
      }
      const isConnect = req.method === "CONNECT";
      if (!isConnect && req.target.startsWith("/")) {
        return answer(
          req,
          400,
          "http_request_error",
          "this is a forward proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port",
        );
      }
      const target = isConnect ? parseConnect(req.target) : parseAbsolute(req.target);
      if (typeof target === "string") return answer(req, 400, "http_request_error", target);
      req.vars.set("forward_target", target.hostPort);
      const rest = (): WebResponse | undefined => {
        const refused =
          looped(req, client) ?? (isConnect ? connectChecks(req, target) : httpChecks(req, target));
        if (refused === undefined) {
          admitted.set(req, { target, client });
          // For a request derived from this one (the cache's fill has its own object, the vars
          // go with it): not a variable anyone else sets.
          req.vars.set(ADMITTED, "1");
        }
        return refused;
      };
      if (auth === undefined) return rest();
      return authenticate(req, client).then((refused) => refused ?? rest());
    };

    return {
      access,
      content(req): WebResponse | Promise<WebResponse> {
        let a = admitted.get(req);
        if (a === undefined && req.vars.get(ADMITTED) === "1") {
          const target =
            req.method === "CONNECT" ? parseConnect(req.target) : parseAbsolute(req.target);
          if (typeof target !== "string") a = { target, client: clientOf(req) };
        }
        if (a === undefined) {
          // Not through this location's access phase (cannot happen in the pipeline's order;
          // never forward unchecked).
          return answer(req, 500, "proxy_internal_error", "the request was not checked");
        }
        return req.method === "CONNECT"
          ? connect(req, a.target, a.client)
          : forwardHttp(req, a.target, a.client);
      },
    };
  },
};
