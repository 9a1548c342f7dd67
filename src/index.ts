/**
 * The `brigade` package entry: what a config file imports.
 *
 * @example
 * // brigade.config.ts
 * import { defineConfig } from "brigade";
 * export default defineConfig({ app: { app: "app.ts", workers: 4 } });
 */
export { ConfigError, type Problem } from "./config/problems.ts";
export { type Config, defineConfig, type UserConfig } from "./config/schema.ts";
export type { TierContext } from "./config/tier.ts";
