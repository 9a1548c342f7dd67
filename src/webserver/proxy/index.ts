/**
 * The reverse proxy (nginx's ngx_http_proxy_module): the `proxy` content handler, to an upstream
 * group of `web.upstreams` or an address, on the upstream engine (src/upstream/: selection,
 * health, retries, keep-alive pools).
 *
 * A request goes: URI mapped (uri.ts), header fields built (headers.ts), the body buffered whole
 * (buffer.ts; memory, then a temp file) unless `proxyRequestBuffering: false`, then sent through
 * the group (retried on the next peer as the group's `retry` allows, the body replayed from the
 * buffer). The response head comes back as the client's fields; the body is read as fast as the
 * upstream sends it into a spool (memory, then a temp file) and fed to the client at its pace,
 * unless `proxyBuffering: false`, `X-Accel-Buffering: no` or an event stream, which pass through.
 * `Upgrade` requests are tunnelled (tunnel.ts). Failures are answered 502 (refused, reset, bad
 * response, nothing live), 503 (every peer busy) or 504 (timeout) through the location's error
 * pages, logged once with the peer and the cause (the pipeline logs the HttpError's message).
 *
 * Variables for the access log and headers: `$upstream_addr`, `$upstream_status`,
 * `$upstream_response_time`, `$upstream_header_time`, `$upstream_response_length`,
 * `$proxy_host`, `$proxy_port`, `$proxy_add_x_forwarded_for`.
 */
import { tmpdir } from "node:os";
import type { Readable } from "node:stream";
import type { UpstreamGroupConfig } from "../../config/settings/upstream.ts";
import {
  defaultForwardedHeaders,
  type ForwardedHeaderName,
  type ProxyTarget,
  parseProxyTarget,
  proxyFields,
  type ReplaceRule,
} from "../../config/settings/web/proxy.ts";
import { didYouMean } from "../../config/types.ts";
import {
  type AttemptRecord,
  classifyError,
  createUpstreamGroup,
  discardResponse,
  type GroupRequest,
  type GroupResponse,
  groupResponse,
  normalizeGroup,
  releaseWithBody,
  type UpgradeResponse,
  type UpstreamError,
  type UpstreamGroup,
  type UpstreamResponse,
  withRetries,
} from "../../upstream/index.ts";
import { Fields, HttpError, type WebRequest, type WebResponse } from "../exchange.ts";
import type { ContentHandler, LocationScope, Reroute, WebModule } from "../module.ts";
import { TUNNELS_SERVICE, type TunnelRegistry } from "../tunnels.ts";
import {
  type BufferedBody,
  bufferRequestBody,
  fileBodyStream,
  IdleSweep,
  Spool,
} from "./buffer.ts";
import {
  addForwardedFor,
  type CompiledReplace,
  clientResponseFields,
  connectionTokens,
  type RequestHeaderPlan,
  type ResponseHeaderPlan,
  upstreamRequestFields,
} from "./headers.ts";
import { tunnel } from "./tunnel.ts";
import { type LocationShape, locationShape, upstreamPath } from "./uri.ts";

interface Settings {
  proxy?: string | string[];
  proxySetHeaders?: Record<string, string>;
  proxyForwardedHeaders?: ForwardedHeaderName[];
  proxyHideHeaders?: string[];
  proxyPassHeaders?: string[];
  proxyRedirect?: boolean | "default" | "off" | ReplaceRule[];
  proxyCookieDomain?: ReplaceRule[];
  proxyCookiePath?: ReplaceRule[];
  proxyRequestBuffering?: boolean;
  clientBodyBufferSize?: number;
  proxyBuffering?: boolean;
  proxyBufferSize?: number;
  proxyMaxTempFileSize?: number;
  proxyTempPath?: string;
  proxyConnectTimeout?: number;
  proxySendTimeout?: number;
  proxyReadTimeout?: number;
  proxyStreamTimeout?: number;
  proxyInterceptErrors?: boolean | number[];
  proxyAccelRedirect?: boolean;
}

const variables = [
  "upstream_addr",
  "upstream_status",
  "upstream_response_time",
  "upstream_header_time",
  "upstream_response_length",
  "proxy_host",
  "proxy_port",
  "proxy_add_x_forwarded_for",
] as const;

/** The body of a body-less POST, PUT or PATCH (sent with `Content-Length: 0`). */
const EMPTY_BODY = Buffer.alloc(0);

/** Statuses whose responses have no body (the upstream's is drained). */
function bodiless(status: number, method: string): boolean {
  return method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200);
}

/** What one location's `proxy` resolves to. */
interface Destination {
  /** Key of the group in the pipeline's shared map. */
  key: string;
  /** The group's name (a `web.upstreams` name, or the address list for an implicit group). */
  name: string;
  config: UpstreamGroupConfig;
  /** `$proxy_host` / `$proxy_port`. */
  host: string;
  port: string;
  uri: string | undefined;
}

function resolveDestination(
  raw: string | string[],
  upstreams: Readonly<Record<string, UpstreamGroupConfig>>,
): Destination {
  const texts = Array.isArray(raw) ? raw : [raw];
  const targets = texts.map((t) => {
    const p = parseProxyTarget(t);
    if (typeof p === "string") throw new Error(`proxy: ${p}`);
    return p;
  });
  const only = targets[0]!;
  if (targets.length === 1 && only.kind === "name") {
    const group = upstreams[only.name];
    if (group !== undefined) {
      return {
        key: `group:${only.name}`,
        name: only.name,
        config: group,
        host: only.name,
        port: "80",
        uri: only.uri,
      };
    }
    if (!only.name.includes(".") && only.name !== "localhost") {
      const guess = didYouMean(only.name, Object.keys(upstreams));
      throw new Error(
        `proxy: no upstream group "${only.name}" in web.upstreams${guess ? ` (did you mean "${guess}"?)` : ""}; for a host, give its port ("http://${only.name}:80")`,
      );
    }
  }
  const addresses = targets.map((t: ProxyTarget) =>
    t.kind === "name" ? `${t.name}:80` : t.address,
  );
  const firstHost = only.kind === "name" ? only.name : only.host;
  const port =
    firstHost.startsWith("unix:") || (only.kind === "address" && only.address.startsWith("unix:"))
      ? ""
      : (/:(\d+)$/.exec(firstHost)?.[1] ?? "80");
  const name = addresses.join(",");
  return {
    key: `addr:${name}`,
    name,
    config: normalizeGroup({ peers: addresses }, "proxy"),
    host: firstHost,
    port,
    uri: only.uri,
  };
}

function compileReplace(
  scope: LocationScope<Settings>,
  field: string,
  rules: readonly ReplaceRule[],
  caseless: boolean,
): CompiledReplace[] {
  return rules.map((rule) => {
    let to: CompiledReplace["to"];
    try {
      to = scope.template(rule.to);
    } catch (e) {
      throw new Error(`${field}: ${(e as Error).message}`);
    }
    const regex = rule.regex ? new RegExp(rule.from, rule.caseless ? "i" : "") : undefined;
    return { rule, regex, to, caseless };
  });
}

/** The status an attempt stands for in `$upstream_status`. */
function attemptStatus(a: AttemptRecord): string {
  if (a.status !== undefined) return String(a.status);
  return a.error === "timeout" ? "504" : a.error === "invalidRequest" ? "500" : "502";
}

function setAttemptVars(req: WebRequest, attempts: readonly AttemptRecord[]): void {
  const vars = req.vars;
  if (attempts.length === 1) {
    const a = attempts[0]!;
    vars.set("upstream_addr", a.peer);
    vars.set("upstream_status", attemptStatus(a));
    return;
  }
  vars.set("upstream_addr", attempts.map((a) => a.peer).join(", "));
  vars.set("upstream_status", attempts.map(attemptStatus).join(", "));
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** Read `body` into memory until it ends or passes `limit` bytes. */
function collect(
  body: Readable,
  limit: number,
): Promise<{ chunks: Buffer[]; bytes: number; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = (ended: boolean): void => {
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
      body.off("close", onClose);
      if (!ended) body.pause();
      resolve({ chunks, bytes, ended });
    };
    const onData = (c: Buffer): void => {
      chunks.push(c);
      bytes += c.length;
      if (bytes > limit) done(false);
    };
    const onEnd = (): void => done(true);
    const onError = (err: Error): void => {
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("close", onClose);
      reject(err);
    };
    const onClose = (): void => {
      if (!body.readableEnded) onError(new Error("upstream body closed early"));
    };
    body.on("data", onData);
    body.once("end", onEnd);
    body.once("error", onError);
    body.once("close", onClose);
  });
}

/** Send through the group; a temp-file body gets a fresh stream per attempt (replayable). */
function exchange(
  group: UpstreamGroup,
  greq: Parameters<UpstreamGroup["request"]>[0],
  file: (BufferedBody & { kind: "file" }) | undefined,
): Promise<GroupResponse> {
  if (file === undefined) return group.request(greq);
  return withRetries(
    group,
    { method: greq.method, ctx: greq, signal: greq.signal, replayable: true },
    (l) => l.pool.request({ ...greq, body: fileBodyStream(file) }),
    { status: (r) => r.status, discard: discardResponse },
  ).then((r) => groupResponse(r, greq.signal));
}

/** The Upgrade a request asks for, when it is one the proxy tunnels (not h2c). */
function upgradeOf(req: WebRequest): string | undefined {
  const upgrade = req.fields.get("upgrade");
  if (upgrade === undefined || /^h2c$/i.test(upgrade.trim())) return undefined;
  return connectionTokens(req.fields.joined("connection"))?.has("upgrade") ? upgrade : undefined;
}

export const proxy: WebModule<Settings> = {
  name: "proxy",
  doc: "Reverse proxy to upstream groups or addresses, with request and response buffering, WebSocket tunnels, retries and error pages.",
  fields: proxyFields,
  variables,
  async setup(scope) {
    const raw = scope.own.proxy;
    if (raw === undefined || (Array.isArray(raw) && raw.length === 0)) return undefined;
    const s = scope.settings;
    // Open upgrade tunnels, for the worker's graceful stop (src/webserver/tunnels.ts).
    const tunnels = scope.services.get(TUNNELS_SERVICE) as TunnelRegistry | undefined;
    const upstreams = (scope.services.get("upstreams") ?? {}) as Record<
      string,
      UpstreamGroupConfig
    >;
    const dest = resolveDestination(raw, upstreams);
    const shape = locationShape(scope.location.match);
    if (dest.uri !== undefined && (shape.kind === "regex" || shape.kind === "named")) {
      throw new Error(
        `proxy: a ${shape.kind === "regex" ? "regex" : "named"} location takes no URI part ("${dest.uri}"): the whole request URI is sent (rewrite it first to change it)`,
      );
    }
    const config = dest.config;
    const policy = config.policy;

    // Request headers.
    const set: { name: string; value: ReturnType<typeof scope.template> }[] = [];
    for (const [name, value] of Object.entries(s.proxySetHeaders ?? {})) {
      try {
        set.push({ name: name.toLowerCase(), value: scope.template(value) });
      } catch (e) {
        throw new Error(`proxySetHeaders["${name}"]: ${(e as Error).message}`);
      }
    }
    const reqPlan: RequestHeaderPlan = {
      forwarded: new Set(s.proxyForwardedHeaders ?? defaultForwardedHeaders),
      set,
      setNames: new Set(set.map((r) => r.name)),
    };
    const needsProxyVars = set.some((r) => r.value.constant === undefined);

    // Response headers.
    const redirectSetting = s.proxyRedirect ?? "default";
    let redirect: CompiledReplace[] = [];
    if (Array.isArray(redirectSetting)) {
      redirect = compileReplace(scope, "proxyRedirect", redirectSetting, true);
    } else if (redirectSetting === "default" || redirectSetting === true) {
      const from = `http://${dest.host}${dest.uri ?? "/"}`;
      const to = dest.uri !== undefined ? shape.prefix : "/";
      const constant = Object.assign(() => to, { constant: to, usesCaptures: false });
      redirect = [
        {
          rule: { from, to, regex: false, caseless: true },
          regex: undefined,
          to: constant,
          caseless: true,
        },
      ];
    }
    const resPlan: ResponseHeaderPlan = {
      hide: new Set(s.proxyHideHeaders ?? []),
      pass: new Set(s.proxyPassHeaders ?? []),
      redirect,
      cookieDomain: compileReplace(scope, "proxyCookieDomain", s.proxyCookieDomain ?? [], true),
      cookiePath: compileReplace(scope, "proxyCookiePath", s.proxyCookiePath ?? [], false),
    };

    let hashKey: ReturnType<typeof scope.template> | undefined;
    if (policy.type === "hash" && policy.key !== undefined) {
      try {
        hashKey = scope.template(policy.key);
      } catch (e) {
        throw new Error(`proxy: upstream group "${dest.name}" policy.key: ${(e as Error).message}`);
      }
    }
    const stickyCookie = policy.type === "sticky" ? (policy.cookie ?? "srv_id") : undefined;

    const intercept = s.proxyInterceptErrors ?? false;
    const intercepts: (status: number) => boolean =
      intercept === true
        ? (status) => status >= 400
        : intercept === false
          ? () => false
          : (
              (codes) => (status: number) =>
                codes.has(status)
            )(new Set(intercept));
    const accel = s.proxyAccelRedirect ?? true;
    const requestBuffering = s.proxyRequestBuffering ?? true;
    const buffering = s.proxyBuffering ?? true;
    const bodyMemory = s.clientBodyBufferSize ?? 16 * 1024;
    const memory = s.proxyBufferSize ?? 64 * 1024;
    const fileLimit = s.proxyMaxTempFileSize ?? 1024 * 1024 * 1024;
    const tempDir = s.proxyTempPath !== undefined ? scope.resolvePath(s.proxyTempPath) : tmpdir();
    const readMs = (s.proxyReadTimeout ?? config.timeouts.read) * 1000;
    const streamMs = (s.proxyStreamTimeout ?? 3600) * 1000;
    const connectMs =
      s.proxyConnectTimeout === undefined ? undefined : s.proxyConnectTimeout * 1000;
    const sendMs = s.proxySendTimeout === undefined ? undefined : s.proxySendTimeout * 1000;
    const logger = scope.logger;
    const idle = new IdleSweep(Math.min(readMs || streamMs, streamMs || readMs));

    if (!scope.serving) return { content: () => Promise.reject(new HttpError(500)) };

    // One group per pipeline per destination, shared by the locations that name it.
    let pending = scope.shared.get(dest.key) as Promise<UpstreamGroup> | undefined;
    if (pending === undefined) {
      pending = createUpstreamGroup(dest.name, config, { logger });
      scope.shared.set(dest.key, pending);
      const p = pending;
      scope.onClose(async () => (await p).close());
    }
    const group = await pending;

    // The $upstream_* variables cost strings and clock reads per request: made only when some
    // template (a log format, a header, an error page) reads them. Asked at the first request,
    // when every template of the pipeline has been compiled.
    let upstreamVarsUsed: boolean | undefined;
    const wantsVars = (): boolean =>
      (upstreamVarsUsed ??= variables.some(
        (n) => n.startsWith("upstream_") && (scope.variableUsed?.(n) ?? true),
      ));

    /** An UpstreamError as the client's answer (and the one log line, by the pipeline). */
    const fail = (req: WebRequest, err: unknown, started: number): WebResponse => {
      const e = classifyError(err) as UpstreamError;
      if (e.attempts.length > 0) setAttemptVars(req, e.attempts);
      // (`started` is 0 on the bodiless path when no template reads the $upstream_* variables)
      if (started !== 0) {
        req.vars.set("upstream_response_time", seconds(performance.now() - started));
      }
      for (const a of e.attempts) {
        if (a.retried) {
          logger.warn("upstream attempt failed; trying the next peer", {
            upstream: dest.name,
            peer: a.peer,
            error: a.error ?? `status ${a.status}`,
            request: `${req.method} ${req.target}`,
          });
        }
      }
      if (e.kind === "aborted" || req.aborted) {
        // The client went away: nothing to send (nginx's 499).
        return { status: 499, fields: new Fields(), body: { kind: "empty" } };
      }
      const client = req.connection.remoteAddress || "unix";
      throw new HttpError(
        e.status,
        `${e.message}, client: ${client}, server: ${req.host}, request: "${req.method} ${req.target}", upstream group: "${dest.name}"`,
        { cause: e },
      );
    };

    const proxyVars = (req: WebRequest): void => {
      const vars = req.vars;
      vars.set("proxy_host", dest.host);
      vars.set("proxy_port", dest.port);
      vars.set("proxy_add_x_forwarded_for", addForwardedFor(req));
    };

    /**
     * The response for the client from the upstream's, buffered or streamed: at once (no
     * promise) when the body came whole with the head, streams through or is bodiless; a
     * promise while a body that did not is being read into memory.
     */
    const respond = (
      req: WebRequest,
      res: UpstreamResponse | GroupResponse,
      started: number,
      setCookie: string | undefined,
    ): WebResponse | Reroute | Promise<WebResponse | Reroute> => {
      const vars = wantsVars() ? req.vars : undefined;
      vars?.set("upstream_header_time", seconds(performance.now() - started));
      const head = clientResponseFields(res, resPlan, req);
      const complete = res.complete;
      const status = res.status;
      const ended = (received: number): void => {
        if (vars === undefined) return;
        vars.set("upstream_response_time", seconds(performance.now() - started));
        vars.set("upstream_response_length", String(received));
      };
      if (accel && head.accelRedirect !== undefined) {
        const uri = head.accelRedirect.trim();
        if (uri.startsWith("/") || uri.startsWith("@")) {
          discardResponse(res);
          return req.method === "GET" || req.method === "HEAD"
            ? { reroute: uri }
            : { reroute: uri, method: "GET" };
        }
        logger.warn("ignoring an X-Accel-Redirect that is not a URI", {
          value: uri,
          upstream: dest.name,
        });
      }
      if (intercepts(status)) {
        discardResponse(res);
        ended(0);
        throw new HttpError(status, `upstream answered ${status} (proxyInterceptErrors)`);
      }
      const fields = head.fields;
      if (setCookie !== undefined) fields.append("set-cookie", setCookie);
      if (bodiless(status, req.method)) {
        if (complete !== undefined) ended(0);
        else {
          res.body.on("error", () => {});
          res.body.resume();
          res.body.once("end", () => ended(0));
        }
        if (head.length !== undefined && (req.method === "HEAD" || status === 304)) {
          fields.set("content-length", String(head.length));
        }
        return { status, fields, body: { kind: "empty" } };
      }
      if (complete !== undefined) {
        // All of it came with the head: no stream, no spool, written with the head.
        ended(complete.length);
        return { status, fields, body: { kind: "bytes", data: complete } };
      }
      const body = res.body;
      const eventStream = head.contentType?.toLowerCase().startsWith("text/event-stream") === true;
      const passThrough = !buffering || eventStream || head.accelBuffering === "no";
      const idleMs =
        passThrough && (eventStream || head.accelBuffering === "no") ? streamMs : readMs;
      const stopIdle = idle.watch(body, idleMs, () =>
        classifyError(
          Object.assign(new Error(`upstream sent nothing for ${idleMs} ms`), {
            code: "UND_ERR_BODY_TIMEOUT",
          }),
          { peer: res.peer, connected: true, headers: true },
        ),
      );
      if (passThrough) {
        let received = 0;
        body.on("data", (c: Buffer) => {
          received += c.length;
        });
        body.once("end", () => ended(received));
        return { status, fields, body: { kind: "stream", stream: body, length: head.length } };
      }
      return collect(body, memory).then(
        (first): WebResponse => {
          if (first.ended) {
            ended(first.bytes);
            const data = first.chunks.length === 1 ? first.chunks[0]! : Buffer.concat(first.chunks);
            return { status, fields, body: { kind: "bytes", data } };
          }
          const spool = new Spool(body, first.chunks, {
            memory,
            file: fileLimit,
            dir: tempDir,
            onUpstreamEnd: () => ended(spool.received),
          });
          return { status, fields, body: { kind: "stream", stream: spool, length: head.length } };
        },
        (err: unknown) => {
          stopIdle();
          // Nothing sent to the client yet: a broken body is a 502 (504 for a timeout).
          const e = classifyError(err, { peer: res.peer, connected: true, headers: true });
          e.attempts = (res as Partial<GroupResponse>).attempts ?? [];
          return fail(req, e, started);
        },
      );
    };

    const upgradeRequest = async (
      req: WebRequest,
      upgrade: string,
    ): Promise<WebResponse | Reroute> => {
      if (needsProxyVars) proxyVars(req);
      const path = upstreamPath(req, dest.uri, shape);
      const headers = upstreamRequestFields(req, reqPlan, upgrade);
      const started = performance.now();
      const ureq = groupRequest(req, path, headers, undefined);
      // A response other than 101 is read with the read timeout between reads.
      ureq.bodyTimeout = undefined;
      let r: Awaited<ReturnType<typeof withRetries<UpgradeResponse | UpstreamResponse>>>;
      try {
        r = await withRetries(
          group,
          { method: req.method, ctx: ureq, signal: req.clientGone },
          (l) => l.pool.upgrade(ureq),
          {
            status: (x) => x.status,
            discard: (x) => {
              if (x.status !== 101) {
                (x as UpstreamResponse).body.on("error", () => {});
                (x as UpstreamResponse).body.resume();
              }
            },
          },
        );
      } catch (err) {
        return fail(req, err, started);
      }
      const { result, lease, attempts } = r;
      setAttemptVars(req, attempts);
      if (result.status !== 101 || !("socket" in result)) {
        const res = result as UpstreamResponse;
        releaseWithBody(lease, res, req.clientGone);
        return respond(req, res, started, lease.setCookie);
      }
      const up = result;
      req.vars.set("upstream_header_time", seconds(performance.now() - started));
      const flat: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined) flat[k] = v;
      const fields = clientResponseFields({ headers: flat }, resPlan, req).fields;
      fields.set("upgrade", String(up.headers.upgrade ?? upgrade));
      if (lease.setCookie !== undefined) fields.append("set-cookie", lease.setCookie);
      let taken = false;
      const onAbort = (): void => {
        if (taken) return;
        up.socket.destroy();
        lease.release("neutral");
      };
      req.clientGone.addEventListener("abort", onAbort, { once: true });
      return {
        status: 101,
        fields,
        body: {
          kind: "takeover",
          onSocket(socket, clientHead) {
            taken = true;
            req.clientGone.removeEventListener("abort", onAbort);
            const untrack = tunnels?.add(() => {
              socket.destroy();
              up.socket.destroy();
            });
            tunnel({
              client: socket,
              clientHead,
              upstream: up.socket,
              upstreamHead: up.head,
              idleMs: streamMs,
              onEnd: (info) => {
                req.vars.set("upstream_response_time", seconds(performance.now() - started));
                req.vars.set("upstream_response_length", String(info.bytesDown));
                lease.release();
                untrack?.();
                if (info.error)
                  logger.info("tunnel closed", {
                    upstream: dest.name,
                    peer: lease.peer.name,
                    reason: info.error,
                  });
              },
            });
          },
        },
      };
    };

    /** The group request for `req` (its body aside). */
    const groupRequest = (
      req: WebRequest,
      path: string,
      headers: string[],
      body: Buffer | Readable | undefined,
    ): GroupRequest => {
      const greq: GroupRequest = {
        method: req.method,
        path,
        headers,
        body,
        signal: req.clientGone,
        readTimeout: readMs,
        bodyTimeout: 0,
        connectTimeout: connectMs,
        sendTimeout: sendMs,
        clientAddress: req.connection.remoteAddress,
        hashKey: hashKey === undefined ? undefined : (hashKey.constant ?? hashKey({ req })),
        stickyCookie: stickyCookie === undefined ? undefined : cookieValue(req, stickyCookie),
      };
      return greq;
    };

    /** A request with a body: buffered first (unless `proxyRequestBuffering: false`). */
    const withBody = async (
      req: WebRequest,
      path: string,
      headers: string[],
    ): Promise<WebResponse | Reroute> => {
      let buffered: BufferedBody | undefined;
      let body: Buffer | Readable | undefined;
      const reqBody = req.body;
      if (requestBuffering) {
        buffered = await bufferRequestBody(reqBody, bodyMemory, tempDir);
        if (buffered.kind === "memory") body = buffered.data;
        else headers.push("content-length", String(buffered.length));
      } else {
        body = reqBody.stream();
        if (reqBody.length !== undefined) headers.push("content-length", String(reqBody.length));
      }
      const greq = groupRequest(req, path, headers, body);
      const started = performance.now();
      let res: GroupResponse;
      try {
        res = await exchange(group, greq, buffered?.kind === "file" ? buffered : undefined);
      } catch (err) {
        if (buffered?.kind === "file") buffered.close();
        return fail(req, err, started);
      }
      if (buffered?.kind === "file") {
        const file = buffered;
        if (res.complete !== undefined) file.close();
        else res.body.once("close", () => file.close());
      }
      if (wantsVars()) setAttemptVars(req, res.attempts);
      return respond(req, res, started, res.setCookie);
    };

    const content: ContentHandler = (req) => {
      if (req.method === "CONNECT") throw new HttpError(405, "CONNECT is not proxied here");
      if (req.canTakeover) {
        const upgrade = upgradeOf(req);
        if (upgrade !== undefined) return upgradeRequest(req, upgrade);
      }
      if (needsProxyVars) proxyVars(req);
      const path = upstreamPath(req, dest.uri, shape);
      const headers = upstreamRequestFields(req, reqPlan, undefined);
      if (!req.body.empty) return withBody(req, path, headers);
      const body =
        req.method === "POST" || req.method === "PUT" || req.method === "PATCH"
          ? EMPTY_BODY
          : undefined;
      const greq = groupRequest(req, path, headers, body);
      // No body to wait for: one promise, settled from the upstream socket's event.
      return new Promise<WebResponse | Reroute>((resolve, reject) => {
        // The clock is read for the $upstream_*_time variables only (a read per request less).
        const started = wantsVars() ? performance.now() : 0;
        group.send(greq, {
          onResponse(res) {
            const answer = (): void => {
              try {
                if (wantsVars()) setAttemptVars(req, res.attempts);
                resolve(respond(req, res, started, res.setCookie));
              } catch (err) {
                reject(err);
              }
            };
            // A body still to come: taken on in a microtask, as a promise's `then` would, so
            // that a body passed through starts flowing (on a later tick) only once the engine
            // has it, never from the upstream socket's event before the engine listens.
            if (res.complete === undefined) queueMicrotask(answer);
            else answer();
          },
          onError(err) {
            try {
              resolve(fail(req, err, started));
            } catch (e) {
              reject(e);
            }
          },
        });
      });
    };

    return { content };
  },
};

function cookieValue(req: WebRequest, name: string): string | undefined {
  const header = req.fields.joined("cookie");
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export type { LocationShape };
