/**
 * Least connections, weighted (nginx's least_conn): the eligible peer with the fewest
 * requests in flight relative to its weight (`active / weight`, compared as
 * `a.active * b.weight < b.active * a.weight` to stay in integers); ties are broken by smooth
 * weighted round-robin among the tied peers, so equal loads still rotate. "Connections" are
 * requests in flight (leases), plus any load the peer's owner reports (an app worker's queue).
 * Slow start acts through the round-robin tie-break, as in nginx.
 */
import type { Peer } from "../peer.ts";
import type { Policy } from "./policy.ts";
import { smoothWeighted } from "./roundRobin.ts";

function load(peer: Peer): number {
  return peer.active + peer.load;
}

export function createLeastConnections(): Policy {
  return {
    name: "leastConnections",
    rebuild(peers) {
      for (const p of peers) p.currentWeight = 0;
    },
    select(peers, _ctx, view) {
      let best: Peer | undefined;
      let tied = false;
      for (const peer of peers) {
        if (!view.eligible(peer)) continue;
        if (best === undefined || load(peer) * best.weight < load(best) * peer.weight) {
          best = peer;
          tied = false;
        } else if (load(peer) * best.weight === load(best) * peer.weight) {
          tied = true;
        }
      }
      if (best === undefined) return undefined;
      if (!tied) return { peer: best };
      const b = best;
      const peer = smoothWeighted(
        peers,
        (p) => view.eligible(p) && load(p) * b.weight === load(b) * p.weight,
        view.now,
      );
      return { peer: peer ?? best };
    },
  };
}
