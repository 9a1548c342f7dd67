/**
 * The upstream engine: peer groups, balancing policies, passive and active health, retries and
 * keep-alive connection pools, protocol-neutral below `UpstreamGroup.request` (an HTTP/1.1
 * exchange) and `PeerPool` (the connection layer). docs/upstream.md is the guide.
 *
 * @example
 * import { createUpstreamGroup } from "../upstream/index.ts";
 * const app = await createUpstreamGroup("app", { peers: ["127.0.0.1:8000", "127.0.0.1:8001"] });
 * const res = await app.request({ method: "GET", path: "/", headers: { host: "example.com" } });
 * res.body.pipe(clientResponse);            // the lease ends with the body
 * await app.close();
 */

import type { UpstreamGroupConfig } from "../config/settings/upstream.ts";
import { upstreamGroup } from "../config/settings/upstream.ts";
import { formatPath, type InOf, type Issue, invalid } from "../config/types.ts";
import { type GroupOptions, UpstreamGroup } from "./group.ts";

export type { AttemptRecord, UpstreamErrorKind, UpstreamPhase } from "./errors.ts";
export { classifyError, UpstreamError } from "./errors.ts";
export type {
  AttemptMessage,
  GroupMessage,
  HealthMessage,
  PeerStateMessage,
  ResolveMessage,
} from "./events.ts";
export {
  attemptChannel,
  groupChannel,
  healthChannel,
  peerChannel,
  resolveChannel,
} from "./events.ts";
export type {
  AcquireOptions,
  GroupArbiter,
  GroupOptions,
  GroupSnapshot,
  Lookup,
  Outcome,
  PeerSnapshot,
} from "./group.ts";
export { Lease, UpstreamGroup } from "./group.ts";
export { checkOnce } from "./health.ts";
export type { PeerState, PeerTarget } from "./peer.ts";
export { Peer, targetName } from "./peer.ts";
export type { Policy, SelectContext, Selection, SelectView } from "./policies/index.ts";
export { createPolicy } from "./policies/index.ts";
export { stickyCookieHeader, stickyId } from "./policies/sticky.ts";
export type {
  PoolOptions,
  PoolStats,
  RequestHeaders,
  ResponseHandler,
  UpgradeResponse,
  UpstreamRequest,
  UpstreamResponse,
} from "./pool.ts";
export { dial, PeerPool } from "./pool.ts";
export type {
  GroupRequest,
  GroupResponse,
  RetryInspect,
  RetryOptions,
  RetryResult,
} from "./retry.ts";
export {
  discardResponse,
  groupResponse,
  isIdempotent,
  releaseWithBody,
  withRetries,
} from "./retry.ts";

/** Input shape of a group config (what a config file holds). */
export type UpstreamGroupInput = InOf<typeof upstreamGroup>;

/**
 * Validate and normalise a group config given in input form (`"30s"`, address strings),
 * exactly as the config loader would; throws one error listing every problem.
 */
export function normalizeGroup(
  input: UpstreamGroupInput | unknown,
  path = "upstream",
): UpstreamGroupConfig {
  const issues: Issue[] = [];
  const out = upstreamGroup.check(input, [path], issues);
  if (out === invalid) {
    throw new Error(issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join("\n"));
  }
  return out;
}

/** Normalise `input`, build the group, resolve its hostnames and start its checks. */
export function createUpstreamGroup(
  name: string,
  input: UpstreamGroupInput | UpstreamGroupConfig,
  options: GroupOptions = {},
): Promise<UpstreamGroup> {
  return UpstreamGroup.create(name, normalizeGroup(input, name), options);
}
