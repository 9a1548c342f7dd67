/**
 * The gateway contract (our WSGI): what an app is, and what it is given besides the request.
 *
 * An app is one of two shapes:
 * - a web-standard **fetch handler**: `{ fetch(request, ctx) }` or a function
 *   `(request, ctx) => Response | Promise<Response>` (a Hono app is one as it is);
 * - a Node **request listener** `(req, res)` (an Express app, Koa's `app.callback()`, Fastify's
 *   `.routing` after `ready()`).
 *
 * **Upgrades (WebSockets).** node:http hands a request with `Connection: upgrade` to its server's
 * `upgrade` event, and that is where WebSocket libraries attach (`new WebSocketServer({ server })`
 * of `ws`, socket.io's `new Server(server)`, `server.on("upgrade", ...)` calling
 * `wss.handleUpgrade`, @hono/node-ws's `injectWebSocket(server)`). An app that takes upgrades
 * therefore exports **its node:http server**, created but never listening
 * (`export default http.createServer(app)`, with the WebSocket server attached to it as in any
 * tutorial, minus the `listen()`): requests go to its `request` listener, and upgrade requests
 * are emitted on it as `server.emit("upgrade", req, socket, head)`, exactly as if it listened. A
 * Fastify instance needs nothing: upgrades are emitted on `fastify.server`, where
 * @fastify/websocket listens. While no `upgrade` listener is attached, an upgrade request is an
 * ordinary request (node:http's own rule), so the app answers it. Other shapes (an Express app
 * exported as it is, a fetch handler) take no upgrades: the app sees an ordinary request (there
 * is no `Deno.upgradeWebSocket`-like API for fetch handlers). An upgraded connection counts
 * toward the worker's connections and holds a sync worker until it closes; a graceful stop
 * closes those still open just before `gracefulTimeout` (docs/appserver.md, "WebSockets").
 *
 * This module is public: apps may import its types and markers (through src/gateway/index.ts,
 * meant to be the package's `brigade/gateway` export).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";

/** TLS details of the connection the request came on, when it came over TLS. */
export interface TlsInfo {
  /** Negotiated protocol, e.g. `TLSv1.3`. */
  readonly protocol: string | null;
  /** Negotiated cipher name, e.g. `TLS_AES_256_GCM_SHA384`. */
  readonly cipher: string | undefined;
  /** The SNI name the client asked for, if any. */
  readonly servername: string | undefined;
  /** Whether the client presented a certificate the server verified. */
  readonly authorized: boolean;
}

/**
 * What a fetch handler gets beside the `Request`: what WSGI's environ carried that `Request`
 * lacks. Values are computed on first read, so an app that ignores them pays nothing.
 *
 * `remoteAddress`/`remotePort`/`scheme` are the real client's: taken from `Forwarded`,
 * `X-Forwarded-For` and `X-Forwarded-Proto` only when the connection's peer is trusted
 * (the `forwardedAllowIps` option); otherwise they are the socket's.
 */
export interface AppContext {
  /** The client's IP address (after trusted forwarding headers); `""` for a unix socket peer. */
  readonly remoteAddress: string;
  /** The client's port when known (forwarding headers rarely carry one). */
  readonly remotePort: number | undefined;
  /** The connection's own peer address, before any forwarding header. */
  readonly peerAddress: string;
  /** `http` or `https`, as the client used it (after trusted `X-Forwarded-Proto`/`Forwarded`). */
  readonly scheme: "http" | "https";
  /** The server name the request was addressed to (Host header, else the local address). */
  readonly serverName: string;
  /** The server port the request was addressed to (Host header, else the local port). */
  readonly serverPort: number;
  /** TLS details when this connection is TLS, else undefined. */
  readonly tls: TlsInfo | undefined;
  /**
   * Keep working after the response: the worker waits for these promises (bounded by its
   * graceful timeout) before it exits on a graceful stop. A rejection is logged, never thrown.
   */
  waitUntil(promise: Promise<unknown>): void;
  /** For Cloudflare-style modules that call it; Brigade has no fallback origin, so a no-op. */
  passThroughOnException(): void;
}

/** A web-standard fetch handler function. */
export type FetchHandler = (request: Request, ctx: AppContext) => Response | Promise<Response>;

/** A Node request listener, as node:http's `request` event takes it. */
export type NodeListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Where a Node app takes upgrade requests: the node:http server object its WebSocket library
 * attached to (see the module comment). Only `emit` and `listenerCount` are used.
 */
export interface UpgradeTarget {
  emit(event: "upgrade", req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  listenerCount(event: "upgrade"): number;
}

/** An app after detection: one of the two shapes, ready to be served. */
export type LoadedApp =
  | { readonly kind: "fetch"; readonly fetch: FetchHandler }
  | {
      readonly kind: "node";
      readonly listener: NodeListener;
      /** The server its upgrade requests are emitted on, when the app has one. */
      readonly upgrades?: UpgradeTarget;
    };

/** Marks a value whose shape was declared by the app author, so no guessing is needed. */
export const appShape: unique symbol = Symbol.for("brigade.appShape");

/** A fetch app declared with {@link defineApp}. */
export interface DefinedFetchApp {
  readonly [appShape]: "fetch";
  readonly fetch: FetchHandler;
}

/** A Node listener declared with {@link nodeListener}. */
export type DefinedNodeListener = NodeListener & { readonly [appShape]: "node" };

/**
 * Declare a fetch app explicitly. Needed only for a bare two-parameter function
 * `(request, ctx) => Response`, which detection would otherwise take for a Node `(req, res)`
 * listener; harmless anywhere else.
 *
 * @example
 * export default defineApp(async (request, ctx) => new Response(`hi ${ctx.remoteAddress}`));
 * export default defineApp({ fetch: (request) => new Response("hi") });
 */
export function defineApp(app: FetchHandler | { fetch: FetchHandler }): DefinedFetchApp {
  const fetch = typeof app === "function" ? app : (app.fetch.bind(app) as FetchHandler | undefined);
  if (typeof fetch !== "function") {
    throw new TypeError("defineApp() takes a fetch function or an object with a fetch method");
  }
  return { [appShape]: "fetch", fetch };
}

/**
 * Declare a Node `(req, res)` listener explicitly (e.g. a one-parameter listener, which
 * detection would otherwise take for a fetch handler).
 *
 * @example
 * export default nodeListener((req, res) => res.end("hi"));
 */
export function nodeListener(listener: NodeListener): DefinedNodeListener {
  if (typeof listener !== "function") throw new TypeError("nodeListener() takes a function");
  const marked = ((req: IncomingMessage, res: ServerResponse) =>
    listener(req, res)) as DefinedNodeListener;
  Object.defineProperty(marked, appShape, { value: "node" });
  return marked;
}
