/**
 * Generic hash (nginx's `hash KEY [consistent]`): requests with the same key go to the same
 * peer. The key is computed by the caller (the proxy expands `$request_uri` and friends) and
 * passed as `ctx.hashKey`; a request without one is balanced by round-robin.
 *
 * - Plain: nginx's Cache::Memcached-compatible scheme, `((crc32([rehash] key) >> 16) & 0x7fff)`
 *   accumulated, modulo the total weight. Simple, but changing the peers remaps most keys.
 * - `consistent`: ketama. Every peer puts `160 × weight` points on a 32-bit ring, each the
 *   crc32 of its `host\0port` followed by the previous point (nginx's construction, so a key
 *   maps to the same address as under nginx given the same peers); a key goes to the first point
 *   at or after crc32(key). Adding or removing a peer moves only the keys of the arcs it gains
 *   or loses, about 1/n of them.
 *
 * Plain hashing rehashes an ineligible pick up to 20 times, then falls back to round-robin
 * (nginx). Consistent hashing walks clockwise to the next eligible peer, so a failed peer's
 * keys spread over its ring neighbours and return to it when it is back.
 */
import { crc32 } from "node:zlib";
import type { Peer } from "../peer.ts";
import { type Policy, rehashTries, type SelectView } from "./policy.ts";
import { smoothWeighted } from "./roundRobin.ts";

interface Point {
  hash: number;
  peer: Peer;
}

/** The ketama ring of `peers`, sorted by point. */
export function ketamaRing(peers: readonly Peer[]): Point[] {
  const points: Point[] = [];
  const prev = Buffer.alloc(4);
  for (const peer of peers) {
    const t = peer.target;
    const host = t.kind === "unix" ? `unix:${t.path}` : t.host;
    const port = t.kind === "unix" ? "" : String(t.port);
    const base = crc32(port, crc32("\0", crc32(host)));
    prev.writeUInt32LE(0);
    for (let j = 0; j < peer.weight * 160; j++) {
      const hash = crc32(prev, base);
      points.push({ hash, peer });
      prev.writeUInt32LE(hash);
    }
  }
  return points.sort((a, b) => a.hash - b.hash);
}

/** Index of the first point with hash ≥ `hash` (wrapping to 0). */
function findPoint(points: readonly Point[], hash: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]!.hash < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo % points.length;
}

function modulo(peers: readonly Peer[], key: string, view: SelectView): Peer | undefined {
  const total = peers.reduce((sum, p) => sum + p.weight, 0);
  if (total === 0) return undefined;
  let acc = 0;
  for (let rehash = 0; rehash < rehashTries; rehash++) {
    const h = crc32(rehash > 0 ? `${rehash}${key}` : key);
    acc += (h >>> 16) & 0x7fff;
    let w = acc % total;
    let i = 0;
    while (w >= peers[i]!.weight) {
      w -= peers[i]!.weight;
      i++;
    }
    if (view.eligible(peers[i]!)) return peers[i];
  }
  return undefined;
}

export function createHash(options: { consistent: boolean }): Policy {
  let ring: Point[] = [];
  return {
    name: "hash",
    rebuild(peers) {
      for (const p of peers) p.currentWeight = 0;
      ring = options.consistent ? ketamaRing(peers) : [];
    },
    select(peers, ctx, view) {
      let peer: Peer | undefined;
      if (ctx.hashKey !== undefined && peers.length > 0) {
        if (options.consistent && ring.length > 0) {
          // Walk clockwise past ineligible peers: a dead peer's keys go to the next peer on
          // the ring, not anywhere, so they come back when it does.
          const start = findPoint(ring, crc32(ctx.hashKey));
          const rejected = new Set<Peer>();
          for (let n = 0; n < ring.length && rejected.size < peers.length; n++) {
            const candidate = ring[(start + n) % ring.length]!.peer;
            if (rejected.has(candidate)) continue;
            if (view.eligible(candidate)) {
              peer = candidate;
              break;
            }
            rejected.add(candidate);
          }
        } else if (!options.consistent) {
          peer = modulo(peers, ctx.hashKey, view);
        }
      }
      peer ??= smoothWeighted(peers, (p) => view.eligible(p), view.now);
      return peer ? { peer } : undefined;
    },
  };
}
