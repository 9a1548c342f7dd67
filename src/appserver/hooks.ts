/**
 * Server hooks (gunicorn's `on_starting`, `post_fork`, `pre_request`, ...), declared as settings
 * in src/config/settings/app.ts. Hooks are functions, so they come only from a JS/TS config
 * file, and functions do not travel to workers (workers get the config as JSON): a worker imports
 * the config file again to get the worker-side hooks (`loadWorkerHooks`).
 *
 * A hook that throws (or rejects) is logged and changes nothing: a broken hook must not take a
 * server down. `call` awaits async hooks; `callSync` is for the per-request ones.
 */
import { readConfigFile } from "../config/load.ts";
import { workerHookNames } from "../config/settings/app.ts";
import type { Logger } from "../core/logger.ts";

export type HookName =
  | "onStarting"
  | "onReload"
  | "whenReady"
  | "childExit"
  | "onExit"
  | (typeof workerHookNames)[number];

// biome-ignore lint/suspicious/noExplicitAny: hooks are user functions of several shapes.
export type AnyHook = (...args: any[]) => unknown;

export class Hooks {
  private readonly fns: Partial<Record<HookName, AnyHook>>;
  private readonly logger: Logger;

  constructor(fns: Partial<Record<HookName, AnyHook>>, logger: Logger) {
    this.fns = fns;
    this.logger = logger;
  }

  has(name: HookName): boolean {
    return this.fns[name] !== undefined;
  }

  get(name: HookName): AnyHook | undefined {
    return this.fns[name];
  }

  /** Run a hook, awaiting it; a failure is logged. */
  async call(name: HookName, ...args: unknown[]): Promise<void> {
    const fn = this.fns[name];
    if (!fn) return;
    try {
      await fn(...args);
    } catch (error) {
      this.logger.error(`the ${name} hook failed`, { error });
    }
  }

  /** Run a hook without awaiting it (per-request hooks); a throw or rejection is logged. */
  callSync(name: HookName, ...args: unknown[]): void {
    const fn = this.fns[name];
    if (!fn) return;
    try {
      const r = fn(...args) as { then?: unknown } | undefined;
      if (typeof r?.then === "function") {
        (r as Promise<unknown>).catch((error: unknown) =>
          this.logger.error(`the ${name} hook failed`, { error }),
        );
      }
    } catch (error) {
      this.logger.error(`the ${name} hook failed`, { error });
    }
  }
}

/** The hooks found in a config object's `app` section. */
export function hooksFrom(
  config: { app?: Record<string, unknown> } | undefined,
  names: readonly HookName[],
): Partial<Record<HookName, AnyHook>> {
  const out: Partial<Record<HookName, AnyHook>> = {};
  for (const name of names) {
    const fn = config?.app?.[name];
    if (typeof fn === "function") out[name] = fn as AnyHook;
  }
  return out;
}

/** In a worker: import the config file again and take the worker-side hooks named. */
export async function loadWorkerHooks(
  file: string | undefined,
  names: readonly string[],
  logger: Logger,
): Promise<Hooks> {
  const wanted = workerHookNames.filter((n) => names.includes(n));
  if (file === undefined || wanted.length === 0) return new Hooks({}, logger);
  const value = (await readConfigFile(file, file)) as { app?: Record<string, unknown> };
  return new Hooks(hooksFrom(value, wanted), logger);
}
