/**
 * IP hash (nginx's ip_hash): a client keeps its peer. The key is the first three octets of an
 * IPv4 address (a /24 shares a peer, as in nginx) or the whole IPv6 address (an IPv4-mapped
 * IPv6 address counts as IPv4). The hash walks the weights of all peers of the tier, down ones
 * included, so that marking a peer down moves only its own clients; an ineligible pick is
 * rehashed up to 20 times, then round-robin decides. Without a usable address (unix socket
 * clients), round-robin.
 */
import { isIPv4, isIPv6 } from "node:net";
import type { Peer } from "../peer.ts";
import { type Policy, rehashTries } from "./policy.ts";
import { smoothWeighted } from "./roundRobin.ts";

/** The bytes ip_hash hashes, or undefined for something that is not an IP address. */
export function ipHashBytes(address: string): number[] | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  const v4 = mapped ? mapped[1]! : address;
  if (isIPv4(v4)) return v4.split(".").slice(0, 3).map(Number);
  if (!isIPv6(address)) return undefined;
  return ipv6Bytes(address);
}

/** The 16 bytes of an IPv6 address (zone dropped; an embedded IPv4 tail handled). */
export function ipv6Bytes(address: string): number[] {
  let text = address.split("%")[0]!;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const [a, b, c, d] = tail[1]!.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, -tail[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = text.includes("::") ? text.split("::") : [text, undefined];
  const h = head ? head.split(":") : [];
  const r = rest ? rest.split(":") : [];
  const groups =
    rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill("0"), ...r];
  const out: number[] = [];
  for (const g of groups) {
    const n = Number.parseInt(g || "0", 16);
    out.push(n >> 8, n & 0xff);
  }
  return out;
}

export function createIpHash(): Policy {
  return {
    name: "ipHash",
    rebuild(peers) {
      for (const p of peers) p.currentWeight = 0;
    },
    select(peers, ctx, view) {
      const bytes = ctx.clientAddress ? ipHashBytes(ctx.clientAddress) : undefined;
      const total = peers.reduce((sum, p) => sum + p.weight, 0);
      if (bytes && total > 0) {
        let hash = 89;
        for (let tries = 0; tries < rehashTries; tries++) {
          for (const b of bytes) hash = (hash * 113 + b) % 6271;
          let w = hash % total;
          let i = 0;
          while (w >= peers[i]!.weight) {
            w -= peers[i]!.weight;
            i++;
          }
          const peer: Peer = peers[i]!;
          if (view.eligible(peer)) return { peer };
        }
      }
      const peer = smoothWeighted(peers, (p) => view.eligible(p), view.now);
      return peer ? { peer } : undefined;
    },
  };
}
