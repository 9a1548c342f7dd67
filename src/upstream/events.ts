/**
 * Observability of the upstream engine through `node:diagnostics_channel` (zero cost without a
 * subscriber), for metrics, the access log and tests. Every message names its group.
 *
 * @example
 * import { subscribe } from "node:diagnostics_channel";
 * subscribe("brigade:upstream:peer", (m) => metrics.peerState(m));
 */
import { channel } from "node:diagnostics_channel";
import type { UpstreamGroup } from "./group.ts";

/** A peer changed state (see `PeerState`), was added or removed. */
export interface PeerStateMessage {
  group: string;
  peer: string;
  server: string;
  state: string;
  previous: string | undefined;
  reason: string;
}

/** A hostname was (re-)resolved. `error` when the lookup failed (the old addresses stay). */
export interface ResolveMessage {
  group: string;
  server: string;
  addresses: string[];
  added: string[];
  removed: string[];
  error?: string;
}

/** One active health check of one peer. */
export interface HealthMessage {
  group: string;
  peer: string;
  ok: boolean;
  status?: number;
  error?: string;
}

/** One attempt of a request on one peer, after it ended. */
export interface AttemptMessage {
  group: string;
  peer: string;
  attempt: number;
  outcome: "success" | "failure" | "neutral";
  status?: number;
  error?: string;
  retried: boolean;
}

/**
 * A group was created or closed, with the live object: for whoever owns its peers at runtime
 * (`brigade up` feeds the app workers into the web workers' group) and for metrics.
 */
export interface GroupMessage {
  event: "created" | "closed";
  group: UpstreamGroup;
}

export const groupChannel = channel("brigade:upstream:group");
export const peerChannel = channel("brigade:upstream:peer");
export const resolveChannel = channel("brigade:upstream:resolve");
export const healthChannel = channel("brigade:upstream:health");
export const attemptChannel = channel("brigade:upstream:attempt");

export function publish<T>(ch: ReturnType<typeof channel>, message: T): void {
  if (ch.hasSubscribers) ch.publish(message);
}
