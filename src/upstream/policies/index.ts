/** The policy registry: a policy config in, a fresh policy instance out (one per tier). */
import type { UpstreamPolicyConfig } from "../../config/settings/upstream.ts";
import { createHash } from "./hash.ts";
import { createIpHash } from "./ipHash.ts";
import { createLeastConnections } from "./leastConnections.ts";
import type { Policy } from "./policy.ts";
import { createRandomTwo } from "./randomTwo.ts";
import { createRoundRobin } from "./roundRobin.ts";
import { createSticky } from "./sticky.ts";

export type { Policy, SelectContext, Selection, SelectView } from "./policy.ts";

export function createPolicy(config: UpstreamPolicyConfig, random?: () => number): Policy {
  switch (config.type) {
    case "roundRobin":
      return createRoundRobin();
    case "leastConnections":
      return createLeastConnections();
    case "ipHash":
      return createIpHash();
    case "hash":
      if (config.key === undefined) throw new Error('policy "hash" needs a key');
      return createHash({ consistent: config.consistent });
    case "randomTwo":
      return createRandomTwo(random ? { random } : {});
    case "sticky":
      return createSticky(config);
  }
}
