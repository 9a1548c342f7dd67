/** The contract between the command line and a tier's entry point (`src/<tier>/cli.ts`). */
import type { Logger } from "../core/logger.ts";
import type { Config } from "./schema.ts";

export interface TierContext {
  /** The absolute path of the config file in use, if any. */
  file?: string | undefined;
  /**
   * Load the config again, from the same file, env and flags (for HUP). Throws `ConfigError`
   * when the new config is bad: the caller keeps the old one and logs why.
   */
  reload: () => Promise<Config>;
  /** The error log, made from `config.log`. */
  logger: Logger;
}

/** A tier's entry: runs until stopped and returns the process exit code (see core/exitCodes). */
export type TierRun = (config: Config, ctx: TierContext) => Promise<number>;
