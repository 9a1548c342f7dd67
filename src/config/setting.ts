/**
 * One setting, declared once: its type (validation), default, flag, env var, doc and the nginx
 * directive / gunicorn setting it corresponds to. Sections (`settings/<section>.ts`) are records
 * of these; the config types, `--help` and `docs/settings.md` are all derived from them.
 */
import type { ValueType } from "./types.ts";

/** The environment a config is resolved against (`process.env` by default). */
export type Env = Readonly<Record<string, string | undefined>>;

export interface Setting<In, Out> {
  readonly type: ValueType<In, Out>;
  /**
   * The default, in input form (validated like any other value). A function is called with the
   * environment at each load, for defaults that depend on it (`$WEB_CONCURRENCY`).
   */
  readonly default: NoInfer<In> | ((env: Env) => NoInfer<In>);
  /** How the default reads in docs and help, when the value alone would mislead. */
  readonly defaultText?: string;
  /** One paragraph for the docs; its first sentence is the `--help` line. */
  readonly doc: string;
  /** Long flag without dashes; defaults to the key in kebab-case. `false`: no flag. */
  readonly flag?: string | false;
  /** One-letter short flag, without the dash. */
  readonly short?: string;
  /** Env var name; defaults to `BRIGADE_<SECTION>_<KEY>`. `false`: no env var. */
  readonly env?: string | false;
  /** Also taken as the command's positional argument, shown as this name (`APP`). */
  readonly positional?: string;
  /** The nginx directive this corresponds to, if any. */
  readonly nginx?: string;
  /** The gunicorn setting this corresponds to, if any. */
  readonly gunicorn?: string;
}

// biome-ignore lint/suspicious/noExplicitAny: a section holds settings of every value type.
export type AnySetting = Setting<any, any>;
export type Section = Record<string, AnySetting>;

/** Declare a setting (a typed identity: keeps the value types for the derived config types). */
export function setting<In, Out>(s: Setting<In, Out>): Setting<In, Out> {
  return s;
}

/** `gracefulTimeout` -> `graceful-timeout` */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `gracefulTimeout` -> `GRACEFUL_TIMEOUT` */
export function snake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
}

/** The long flag of a setting (without dashes and without any tier prefix), or undefined. */
export function flagName(key: string, s: AnySetting): string | undefined {
  // Structured values are for config files (and JSON in env vars), not flags.
  if (s.flag === false || s.type.kind === "object" || s.type.item?.kind === "object") {
    return undefined;
  }
  return s.flag ?? kebab(key);
}

/** The env var of a setting, or undefined. */
export function envName(section: string, key: string, s: AnySetting): string | undefined {
  if (s.env === false) return undefined;
  return s.env ?? `BRIGADE_${snake(section)}_${snake(key)}`;
}

/** The default in input form, for the given environment. */
export function defaultInput(s: AnySetting, env: Env): unknown {
  return typeof s.default === "function" ? (s.default as (env: Env) => unknown)(env) : s.default;
}

/** The default as docs and help show it. */
export function defaultText(s: AnySetting): string {
  if (s.defaultText !== undefined) return s.defaultText;
  if (typeof s.default === "function") return "(computed)";
  if (s.default === undefined) return "(none)";
  return JSON.stringify(s.default);
}

/** The first sentence of a doc paragraph. */
export function summary(doc: string): string {
  const m = /^(.+?[.!?])(\s|$)/s.exec(doc.trim());
  return (m ? m[1]! : doc.trim()).replace(/\s+/g, " ");
}
