/**
 * Sticky sessions by cookie (nginx plus's `sticky cookie`): the first response to a client
 * sets a cookie naming the peer that served it (round-robin chose it); later requests carrying
 * the cookie go to that peer while it is eligible, and a draining peer still takes them, so that
 * sessions (and WebSocket apps with per-worker state) finish where they began. A missing,
 * unknown or unavailable peer's cookie means a new pick and a new cookie.
 *
 * The cookie value is a digest of the peer's address, the same in every web worker and across
 * restarts, and reveals nothing about the address.
 */
import { createHash } from "node:crypto";
import type { UpstreamPolicyConfig } from "../../config/settings/upstream.ts";
import type { Peer } from "../peer.ts";
import type { Policy } from "./policy.ts";
import { smoothWeighted } from "./roundRobin.ts";

/** The sticky cookie value for a peer. */
export function stickyId(peer: Peer): string {
  return createHash("sha256").update(peer.name).digest("hex").slice(0, 16);
}

/** The Set-Cookie header value binding a client to `value`. */
export function stickyCookieHeader(
  options: Pick<
    UpstreamPolicyConfig,
    "cookie" | "cookiePath" | "cookieDomain" | "cookieMaxAge" | "cookieSecure"
  >,
  value: string,
): string {
  let header = `${options.cookie}=${value}; Path=${options.cookiePath}`;
  if (options.cookieDomain) header += `; Domain=${options.cookieDomain}`;
  if (options.cookieMaxAge !== undefined) header += `; Max-Age=${Math.floor(options.cookieMaxAge)}`;
  if (options.cookieSecure) header += "; Secure";
  return `${header}; HttpOnly; SameSite=Lax`;
}

export function createSticky(options: UpstreamPolicyConfig): Policy {
  let byId = new Map<string, Peer>();
  return {
    name: "sticky",
    rebuild(peers) {
      byId = new Map(peers.map((p) => [stickyId(p), p]));
      for (const p of peers) p.currentWeight = 0;
    },
    select(peers, ctx, view) {
      const bound = ctx.stickyCookie !== undefined ? byId.get(ctx.stickyCookie) : undefined;
      if (bound && view.eligibleBound(bound)) return { peer: bound };
      const peer = smoothWeighted(peers, (p) => view.eligible(p), view.now);
      if (!peer) return undefined;
      const value = stickyId(peer);
      return {
        peer,
        cookie: { name: options.cookie, value, header: stickyCookieHeader(options, value) },
      };
    },
  };
}
