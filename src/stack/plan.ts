/**
 * What `brigade up` runs, from a validated config: the web section the web workers compile (the
 * embedded default server when there is none, and the `app` upstream group whose peers are the
 * app workers), the runtime directory, and the problems that stop it before anything starts.
 *
 * The embedded default (no `web.servers`): one server on `web.listen` (127.0.0.1:8080) that
 * serves files from `web.root`, or `./public` when that directory exists, and hands everything
 * else to the app: nginx's `try_files $uri $uri/index.html @app`; with `--cache`, only the app's
 * answers are cached. With `servers` of their own, users send requests to the app with
 * `proxy: "app"`.
 */
import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Config } from "../config/schema.ts";

/** The name of the upstream group of app workers, for `proxy: "app"`. */
export const APP_GROUP = "app";

/** Where the running stack keeps its sockets (see the `stack.runtimeDir` setting). */
export function runtimeDir(
  config: Config,
  file: string | undefined,
  cwd = process.cwd(),
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (config.stack.runtimeDir !== undefined) return resolve(cwd, config.stack.runtimeDir);
  const id = createHash("sha256")
    .update(`${resolve(cwd)}\0${file ?? ""}`)
    .digest("hex")
    .slice(0, 12);
  const base = env.XDG_RUNTIME_DIR
    ? join(env.XDG_RUNTIME_DIR, "brigade")
    : join(tmpdir(), `brigade-${process.getuid?.() ?? "user"}`);
  return join(base, id);
}

export const controlSocket = (dir: string): string => join(dir, "control.sock");

/**
 * The unix socket of one app worker (master pid, slot, spawn serial): a successor in the slot
 * gets a new one, and so do the workers of a USR2 successor master sharing the directory.
 */
export const appSocket = (
  dir: string,
  slot: number,
  serial: number,
  master = process.pid,
): string => join(dir, `app-${master}-${slot}-${serial}.sock`);

/** Problems with the config that only `brigade up` has: each names the setting. */
export function problems(config: Config): string[] {
  const out: string[] = [];
  if (config.app.workerMode === "thread") {
    out.push(
      "app.workerMode: brigade up gives each app worker a unix socket of its own, which threads cannot have; use workerMode process",
    );
  }
  if (config.web.upstreams[APP_GROUP] !== undefined) {
    out.push(
      `web.upstreams.${APP_GROUP}: this group is brigade up's own (its peers are the app workers); name yours differently`,
    );
  }
  if (config.web.proxy.length > 0) {
    out.push(
      'web.proxy: brigade up proxies to its own app workers; use proxy: "app" in a location, or brigade web for --proxy',
    );
  }
  return out;
}

/** Does the config name a static root, or is there a ./public to serve? */
export function staticRoot(config: Config, cwd = process.cwd()): string | undefined {
  if (config.web.root !== undefined) return config.web.root;
  const dir = join(cwd, "public");
  return existsSync(dir) && statSync(dir).isDirectory() ? "./public" : undefined;
}

/** The `app` group, in config input form, without its peers (the web workers add them). */
export function appGroup(config: Config): Record<string, unknown> {
  const sync = config.app.workerClass === "sync";
  return {
    policy: { type: "leastConnections" },
    // Passive health on top of the master's readiness: a worker whose attempts keep failing
    // (resets, timeouts, bad responses) is out for failTimeout even while the master still
    // thinks it is fine; a client that goes away mid-request is not a failure (the upstream
    // engine counts it neutral), and a respawned worker starts clean (ready forgives failures).
    // Three, not nginx's one: a single reset (a worker recycled as a request arrived) is
    // retried on the next worker and should not take this one out.
    maxFails: 3,
    failTimeout: "10s",
    queue: { size: sync ? config.stack.appQueue : 0, timeout: "60s" },
    timeouts: { connect: "5s", read: Math.max(60, config.app.timeout + 5) },
    // Local unix sockets to our own workers: keep every connection a busy moment opened (the
    // default 32 idle per peer would close and reopen the rest under load), and close idle ones
    // before the app worker's own keep-alive timeout does (so none is reused as it closes).
    keepalive:
      config.app.keepAlive > 0 && !sync
        ? { idle: 1024, timeout: Math.max(0.5, config.app.keepAlive - 1), requests: 1_000_000 }
        : { idle: 0 },
  };
}

/** What each app worker is as a peer: sync workers take one request at a time. */
export function appPeer(config: Config, address: string): Record<string, unknown> {
  return { address, maxConns: config.app.workerClass === "sync" ? 1 : 0 };
}

/**
 * The web section the stack's web workers compile: the config's, with the default server when
 * there are no servers (the `app` group is added by each worker, with the app workers as peers).
 */
export function webSection(config: Config, cwd = process.cwd()): Config["web"] {
  const web = structuredClone(config.web);
  if (web.servers.length === 0) {
    const root = staticRoot(config, cwd);
    // `--cache` caches the app's answers, as nginx's proxy_cache: not the files, which the
    // static module already serves from its open-file cache.
    const cache = web.cache !== undefined || web.cacheDir !== undefined;
    const server: Record<string, unknown> =
      root !== undefined
        ? {
            root,
            tryFiles: ["$uri", "$uri/index.html", `@${APP_GROUP}`],
            ...(cache ? { cache: false } : {}),
            locations: [
              {
                match: `@${APP_GROUP}`,
                proxy: APP_GROUP,
                ...(cache ? { cache: web.cache ?? true } : {}),
              },
            ],
          }
        : { proxy: APP_GROUP };
    (web.servers as unknown[]).push(server);
  }
  return web;
}
