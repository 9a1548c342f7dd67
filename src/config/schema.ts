/**
 * The whole settings schema, and the config types derived from it: adding a setting to a
 * section file types it in `Config`, `UserConfig`, `--help` and `docs/settings.md` at once.
 *
 * To add a setting: add `key: setting({ type, default, doc, ... })` to its section in
 * `settings/<section>.ts` (flag and env var are derived from the key unless given), then run
 * `npm run docs`. To add a section: a new `settings/<section>.ts`, an entry in `schema` and in
 * `sectionInfo`, and list it in the `sections` of the commands that take it (src/cli/main.ts).
 */
import type { AnySetting, Section } from "./setting.ts";
import { app } from "./settings/app.ts";
import { log } from "./settings/log.ts";
import { stack } from "./settings/stack.ts";
import { web } from "./settings/web.ts";
import type { ValueType } from "./types.ts";

/** Every section, in docs order. */
export const schema = { log, app, web, stack } satisfies Record<string, Section>;

export type Schema = typeof schema;
export type SectionName = keyof Schema;
export const sectionNames = Object.keys(schema) as SectionName[];

/** Titles and intros of the sections, for docs and help. */
export const sectionInfo: Record<SectionName, { title: string; doc: string }> = {
  log: {
    title: "Logging",
    doc: "The error log, shared by the masters and workers of both tiers (access logs are a web-server setting).",
  },
  app: {
    title: "App server (`brigade app`)",
    doc: "The app server: a master that pre-forks workers, each running the user's app behind the gateway contract. Used by `brigade app` and `brigade up`.",
  },
  web: {
    title: "Web server (`brigade web`)",
    doc: "The web server: event-driven workers facing the network, answering what they can alone and proxying the rest to an upstream. Used by `brigade web` and `brigade up`.",
  },
  stack: {
    title: "The whole stack (`brigade up`)",
    doc: "What `brigade up` adds when it runs both tiers under one master: the admin listener (health, metrics, dashboard), the runtime directory of the app workers' sockets and the control socket, rolling deploys with a canary, and the graceful stop. Also read by `brigade status`, `reload`, `stop` and `scale` to find the running stack.",
  },
};

type SettingOut<S> = S extends { type: ValueType<unknown, infer O> } ? O : never;
type SettingIn<S> = S extends { type: ValueType<infer I, unknown> } ? I : never;

/** The validated, normalised config every tier reads (durations in seconds, sizes in bytes). */
export type Config = {
  [S in SectionName]: { [K in keyof Schema[S]]: SettingOut<Schema[S][K]> };
};

/** What a config file may contain: any subset of the settings, in input form (`"30s"`). */
export type UserConfig = {
  [S in SectionName]?: { [K in keyof Schema[S]]?: SettingIn<Schema[S][K]> };
};

/**
 * Type a config file's contents; returns its argument unchanged.
 *
 * @example
 * // brigade.config.ts
 * import { defineConfig } from "brigade";
 * export default defineConfig({ app: { app: "app.ts", workers: 4, timeout: "1m" } });
 */
export function defineConfig(config: UserConfig): UserConfig {
  return config;
}

/** Every setting with its section and key, in docs order. */
export function allSettings(): { section: SectionName; key: string; setting: AnySetting }[] {
  const out: { section: SectionName; key: string; setting: AnySetting }[] = [];
  for (const section of sectionNames) {
    for (const [key, s] of Object.entries(schema[section] as Section)) {
      out.push({ section, key, setting: s });
    }
  }
  return out;
}
