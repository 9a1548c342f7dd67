/**
 * TODO(lead): placeholder entry of `brigade web`, to be replaced by the real tier. The command
 * line validates the config, then calls `run` (see config/tier.ts for the contract).
 */
import type { Config } from "../config/schema.ts";
import type { TierContext } from "../config/tier.ts";

export async function run(_config: Config, ctx: TierContext): Promise<number> {
  ctx.logger.error("brigade web: not implemented yet");
  return 1;
}
