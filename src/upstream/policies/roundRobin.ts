/**
 * Smooth weighted round-robin, nginx's default balancer (ngx_http_upstream_round_robin.c).
 * Each pick adds every eligible peer's effective weight to its current weight, takes the peer
 * with the highest current weight and subtracts the total from it. With weights 5, 1, 1 the
 * order is a a b a c a a: interleaved, not bursts, and exact over every cycle of the total.
 *
 * The effective weight is lowered by failures (by weight/maxFails each) and climbs back by
 * one per pick; slow start scales it down while a peer ramps up (peer.ts). The other policies
 * reuse `smoothWeighted` for ties and fallbacks.
 */
import type { Peer } from "../peer.ts";
import type { Policy, SelectView } from "./policy.ts";

/** One smooth weighted round-robin step over the peers `accept` lets through. */
export function smoothWeighted(
  peers: readonly Peer[],
  accept: (peer: Peer) => boolean,
  now: number,
): Peer | undefined {
  let best: Peer | undefined;
  let total = 0;
  for (const peer of peers) {
    if (!accept(peer)) continue;
    const weight = peer.currentEffectiveWeight(now);
    peer.currentWeight += weight;
    total += weight;
    if (peer.effectiveWeight < peer.weight) {
      peer.effectiveWeight = Math.min(peer.weight, peer.effectiveWeight + 1);
    }
    if (best === undefined || peer.currentWeight > best.currentWeight) best = peer;
  }
  if (best) best.currentWeight -= total;
  return best;
}

export function createRoundRobin(): Policy {
  return {
    name: "roundRobin",
    rebuild(peers) {
      for (const p of peers) p.currentWeight = 0;
    },
    select(peers, _ctx, view: SelectView) {
      const peer = smoothWeighted(peers, (p) => view.eligible(p), view.now);
      return peer ? { peer } : undefined;
    },
  };
}
