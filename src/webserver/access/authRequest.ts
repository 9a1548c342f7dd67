/**
 * Subrequest authorization (nginx's auth_request, Traefik's forwardAuth): before a request goes
 * on, ask an authorization server about it, over HTTP/1.1 keep-alive (TCP, TLS, or a unix socket
 * spelled nginx's way, `http://unix:/run/auth.sock:/check`).
 *
 * The subrequest is what nginx's auth_request with proxy_pass sends: a GET (or the original
 * method) to the configured URI, with the original request's header fields (hop-by-hop fields,
 * the body's framing and `Host` left out), no body, and what authorization servers read:
 * `X-Original-URI`, `X-Original-Method`, `X-Original-URL`, `X-Forwarded-For` (the client
 * appended), `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Uri`, `X-Forwarded-Method`.
 */
import http from "node:http";
import https from "node:https";
import type { AuthRequestConfig } from "../../config/settings/web/access.ts";
import { Fields, type WebRequest } from "../exchange.ts";
import type { Template } from "../variables.ts";

const dropped = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "expect",
  "host",
]);

export interface AuthAnswer {
  status: number;
  fields: Fields;
}

interface Target {
  module: typeof http | typeof https;
  agent: http.Agent;
  host: string;
  port: number | undefined;
  socketPath: string | undefined;
  path: string;
  hostHeader: string;
}

function parseTarget(url: string): Omit<Target, "agent" | "module"> & { tls: boolean } {
  const unix = /^(https?):\/\/unix:(\/[^:]+):(\/.*)$/.exec(url);
  if (unix) {
    return {
      tls: unix[1] === "https",
      host: "localhost",
      port: undefined,
      socketPath: unix[2]!,
      path: unix[3]!,
      hostHeader: "localhost",
    };
  }
  const u = new URL(url);
  return {
    tls: u.protocol === "https:",
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port: u.port === "" ? undefined : Number(u.port),
    socketPath: undefined,
    path: `${u.pathname}${u.search}`,
    hostHeader: u.host,
  };
}

export class AuthRequester {
  private readonly config: AuthRequestConfig;
  private readonly target: Target;
  private readonly setHeaders: [string, Template][];

  constructor(config: AuthRequestConfig, setHeaders: [string, Template][]) {
    this.config = config;
    const t = parseTarget(config.url);
    const module = t.tls ? https : http;
    this.target = {
      ...t,
      module,
      agent: new module.Agent({ keepAlive: true, maxFreeSockets: 64 }),
    };
    this.setHeaders = setHeaders;
  }

  close(): void {
    this.target.agent.destroy();
  }

  /** Ask about `req` (whose client address is `client`). Rejects on a network error or timeout. */
  ask(req: WebRequest, client: string): Promise<AuthAnswer> {
    const headers: [string, string][] = [];
    let xff: string | undefined;
    for (const [name, value] of req.fields) {
      if (dropped.has(name)) continue;
      if (name === "x-forwarded-for") {
        xff = xff === undefined ? value : `${xff}, ${value}`;
        continue;
      }
      headers.push([name, value]);
    }
    const t = this.target;
    const host = req.fields.get("host") ?? req.host;
    headers.push(
      ["host", t.hostHeader],
      ["x-original-uri", req.target],
      ["x-original-method", req.method],
      ["x-original-url", `${req.scheme}://${host}${req.target}`],
      ["x-forwarded-for", xff === undefined ? client : `${xff}, ${client}`],
      ["x-forwarded-proto", req.scheme],
      ["x-forwarded-host", host],
      ["x-forwarded-uri", req.target],
      ["x-forwarded-method", req.method],
    );
    for (const [name, template] of this.setHeaders) headers.push([name, template({ req })]);
    const method = this.config.method === "original" ? req.method : "GET";
    if (method !== "GET" && method !== "HEAD") headers.push(["content-length", "0"]);
    return new Promise((resolve, reject) => {
      const sub = t.module.request(
        {
          method,
          host: t.host,
          port: t.port,
          socketPath: t.socketPath,
          path: t.path,
          agent: t.agent,
          headers: headers.flat(),
          timeout: this.config.timeout * 1000,
          signal: req.signal,
        },
        (res) => {
          const raw = res.rawHeaders;
          const list: string[] = [];
          for (let i = 0; i < raw.length; i += 2) list.push(raw[i]!.toLowerCase(), raw[i + 1]!);
          const answer = { status: res.statusCode ?? 0, fields: new Fields(list) };
          // The body means nothing to us; read it away so the connection can be reused, but do
          // not wait on a large one.
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > 64 * 1024) res.destroy();
          });
          res.on("error", () => {});
          res.on("end", () => resolve(answer));
          res.on("close", () => resolve(answer));
        },
      );
      sub.on("timeout", () => sub.destroy(new Error(`no answer within ${this.config.timeout}s`)));
      sub.on("error", reject);
      sub.end();
    });
  }
}
