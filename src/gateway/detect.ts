/**
 * Shape detection: from whatever an app module exported to a {@link LoadedApp}.
 *
 * Rules, first match wins:
 * 1. declared with `defineApp(...)` / `nodeListener(...)`: as declared;
 * 2. a Fastify instance (`ready` + `routing`): awaited `ready()`, then its `.routing` (node;
 *    upgrades go to `.server`, where @fastify/websocket listens);
 * 3. a Koa instance (`callback` + `use` + `middleware` array): `app.callback()` (node);
 * 4. an Express/Connect app (a function with `handle` and `use`): itself (node);
 * 5. an object with a `fetch` method (a Hono app, `export default { fetch }`): fetch, called as
 *    `fetch(request, ctx, ctx)` so Cloudflare-style `(request, env, ctx)` modules also work;
 * 6. a node:http Server with a `request` listener: that listener, called on the server as
 *    node:http calls it (node; upgrades are emitted on the server, for WebSocket libraries);
 * 7. a bare function: **two or more parameters → Node `(req, res)` listener**, zero or one →
 *    fetch handler `(request)`. A two-parameter fetch function `(request, ctx)` must be wrapped
 *    in `defineApp()`; if it was not, the Node adapter notices the Response it returns and logs
 *    that hint.
 * Anything else is an {@link AppShapeError} saying what was found and what is accepted.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type {
  AppContext,
  FetchHandler,
  LoadedApp,
  NodeListener,
  UpgradeTarget,
} from "./contract.ts";
import { appShape } from "./contract.ts";

/** The value exported is not an app. The message says what it is and what is accepted. */
export class AppShapeError extends TypeError {
  override name = "AppShapeError";
}

export const acceptedShapes =
  "accepted: a fetch handler ({ fetch(request, ctx) }, a function (request) => Response, a Hono app, " +
  "defineApp(fn)) or a Node listener ((req, res) => void, an Express app, a Koa app or " +
  "app.callback(), a Fastify instance, a node:http Server, nodeListener(fn))";

type Obj = Record<string | symbol, unknown>;

function isObj(v: unknown): boolean {
  return (typeof v === "object" && v !== null) || typeof v === "function";
}

/** A short description of a value, for error messages. */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (typeof v === "function") {
    const src = Function.prototype.toString.call(v);
    if (src.startsWith("class")) return `a class ${v.name || "(anonymous)"} (export an instance)`;
    return `a function ${v.name || "(anonymous)"} with ${v.length} parameter(s)`;
  }
  if (typeof v === "object") {
    if (v instanceof Promise) return "a Promise (use `module:factory()` to await a factory)";
    const keys = Object.keys(v).slice(0, 8);
    const ctor = (v as { constructor?: { name?: string } }).constructor?.name;
    const what = ctor && ctor !== "Object" ? `a ${ctor} object` : "an object";
    return keys.length > 0 ? `${what} with keys ${keys.join(", ")}` : `${what} with no keys`;
  }
  return `a ${typeof v} (${String(v).slice(0, 40)})`;
}

function isUpgradeTarget(v: unknown): v is UpgradeTarget {
  const o = v as Partial<UpgradeTarget> | null | undefined;
  return typeof o?.emit === "function" && typeof o.listenerCount === "function";
}

/**
 * Detect the shape of an exported value. Async because a Fastify instance must be `ready()`.
 * @throws AppShapeError when the value is no app.
 */
export async function resolveApp(exported: unknown): Promise<LoadedApp> {
  if (!isObj(exported)) {
    throw new AppShapeError(`found ${describeValue(exported)}; ${acceptedShapes}`);
  }
  const value = exported as Obj;
  const isFunction = typeof exported === "function";
  const declared = value[appShape];
  if (declared === "fetch" && typeof value.fetch === "function") {
    return { kind: "fetch", fetch: value.fetch as FetchHandler };
  }
  if (declared === "node" && isFunction) {
    return { kind: "node", listener: value as unknown as NodeListener };
  }
  if (typeof value.ready === "function" && typeof value.routing === "function") {
    await (value.ready as () => Promise<unknown>).call(value);
    const routing = value.routing as (req: IncomingMessage, res: ServerResponse) => void;
    const upgrades = isUpgradeTarget(value.server) ? value.server : undefined;
    return {
      kind: "node",
      listener: (req, res) => routing.call(value, req, res),
      ...(upgrades ? { upgrades } : {}),
    };
  }
  if (
    typeof value.callback === "function" &&
    typeof value.use === "function" &&
    Array.isArray(value.middleware)
  ) {
    const listener = (value.callback as () => unknown).call(value);
    if (typeof listener !== "function") {
      throw new AppShapeError(
        `found a Koa-like app whose callback() returned ${describeValue(listener)}`,
      );
    }
    return { kind: "node", listener: listener as NodeListener };
  }
  if (isFunction && typeof value.handle === "function" && typeof value.use === "function") {
    return { kind: "node", listener: value as unknown as NodeListener };
  }
  if (typeof value.fetch === "function") {
    const target = value;
    const fetch = value.fetch as (req: Request, env: AppContext, ctx: AppContext) => Response;
    return { kind: "fetch", fetch: (request, ctx) => fetch.call(target, request, ctx, ctx) };
  }
  if (typeof value.listeners === "function" && typeof value.listen === "function") {
    const server = value as unknown as { listeners(e: string): unknown[] };
    const listener = server.listeners("request")[0];
    if (typeof listener !== "function") {
      throw new AppShapeError("found a node:http Server with no request listener");
    }
    const fn = listener as (this: unknown, req: IncomingMessage, res: ServerResponse) => void;
    return {
      kind: "node",
      listener: (req, res) => fn.call(server, req, res),
      ...(isUpgradeTarget(value) ? { upgrades: value } : {}),
    };
  }
  if (typeof exported === "function") {
    if (Function.prototype.toString.call(exported).startsWith("class")) {
      throw new AppShapeError(`found ${describeValue(exported)}; ${acceptedShapes}`);
    }
    return exported.length >= 2
      ? { kind: "node", listener: value as unknown as NodeListener }
      : { kind: "fetch", fetch: value as unknown as FetchHandler };
  }
  throw new AppShapeError(`found ${describeValue(value)}; ${acceptedShapes}`);
}
