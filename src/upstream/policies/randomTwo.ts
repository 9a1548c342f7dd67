/**
 * Random with two choices (nginx's `random two least_conn`, the "power of two choices"): draw
 * two distinct eligible peers at random, each with probability proportional to its weight
 * (scaled down while slow-starting), and take the one with fewer requests in flight relative to
 * its weight; on a tie, the first drawn. Nearly as even as least connections, but without every
 * balancer piling onto the same least-loaded peer, which matters when several web workers (or
 * several web servers) balance the same peers with only their own counts.
 */
import type { Peer } from "../peer.ts";
import type { Policy } from "./policy.ts";

function weightedDraw(
  peers: readonly Peer[],
  weights: readonly number[],
  total: number,
  random: () => number,
  skip?: number,
): number {
  let r = random() * total;
  for (let i = 0; i < peers.length; i++) {
    if (i === skip) continue;
    r -= weights[i]!;
    if (r < 0) return i;
  }
  // Float rounding at the top end: the last candidate.
  for (let i = peers.length - 1; i >= 0; i--) if (i !== skip) return i;
  return 0;
}

export function createRandomTwo(options: { random?: () => number } = {}): Policy {
  const random = options.random ?? Math.random;
  return {
    name: "randomTwo",
    rebuild() {},
    select(peers, _ctx, view) {
      const candidates = peers.filter((p) => view.eligible(p));
      if (candidates.length === 0) return undefined;
      if (candidates.length === 1) return { peer: candidates[0]! };
      const weights = candidates.map((p) => p.currentEffectiveWeight(view.now));
      const total = weights.reduce((a, b) => a + b, 0);
      const i = weightedDraw(candidates, weights, total, random);
      const j = weightedDraw(candidates, weights, total - weights[i]!, random, i);
      const a = candidates[i]!;
      const b = candidates[j]!;
      const la = a.active + a.load;
      const lb = b.active + b.load;
      return { peer: lb * a.weight < la * b.weight ? b : a };
    },
  };
}
