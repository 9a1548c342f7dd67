/**
 * Trusted forwarding headers (gunicorn's `forwarded_allow_ips`): who the real client is when a
 * proxy (our web tier, nginx) sits in front.
 *
 * A peer is trusted when its address is in the allow list. Only then are `Forwarded` (RFC 7239)
 * or, failing it, `X-Forwarded-For` / `X-Forwarded-Proto` read. The client is found by walking
 * the chain from the right (nearest hop) and skipping trusted proxies: the first untrusted
 * address is the client. Taking the leftmost entry instead would let any client forge its
 * address, since proxies append to whatever the client sent.
 */
import { BlockList, isIP } from "node:net";

/** Default trust: loopback and unix sockets, the links our own web tier uses. */
export const defaultForwardedAllowIps: readonly string[] = ["127.0.0.0/8", "::1", "unix"];

/** Decides whether a peer address may set forwarding headers. `undefined` is a unix socket. */
export type TrustPredicate = (address: string | undefined) => boolean;

/** Strip the IPv4-mapped IPv6 prefix so `::ffff:127.0.0.1` matches `127.0.0.0/8`. */
export function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

/**
 * Build the trust predicate from a list of entries: an IP (`10.0.0.1`, `::1`), a CIDR
 * (`10.0.0.0/8`, `fd00::/8`), `unix` (unix socket peers) or `*` (everyone: only behind a
 * firewall that lets nothing else in).
 * @throws TypeError on an entry that is none of these.
 */
export function createTrust(entries: readonly string[] = defaultForwardedAllowIps): TrustPredicate {
  if (entries.includes("*")) return () => true;
  const unix = entries.includes("unix");
  const list = new BlockList();
  let any = false;
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === "unix" || entry === "") continue;
    const slash = entry.indexOf("/");
    const addr = slash < 0 ? entry : entry.slice(0, slash);
    const family = isIP(addr);
    if (family === 0) throw new TypeError(`forwardedAllowIps: not an IP or CIDR: ${raw}`);
    const type = family === 4 ? "ipv4" : "ipv6";
    if (slash < 0) {
      list.addAddress(addr, type);
    } else {
      const prefix = Number(entry.slice(slash + 1));
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
        throw new TypeError(`forwardedAllowIps: bad prefix length: ${raw}`);
      }
      list.addSubnet(addr, prefix, type);
    }
    any = true;
  }
  return (address) => {
    if (address === undefined || address === "") return unix;
    if (!any) return false;
    const a = normalizeAddress(address);
    const family = isIP(a);
    if (family === 0) return false;
    return list.check(a, family === 4 ? "ipv4" : "ipv6");
  };
}

/** The real client as the trusted headers describe it. Fields are absent when not stated. */
export interface ForwardedClient {
  address?: string;
  port?: number;
  proto?: "http" | "https";
}

interface Hop {
  address: string | undefined;
  port: number | undefined;
  proto: string | undefined;
}

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}

/** Split `1.2.3.4:80`, `[::1]:80`, `[::1]`, `::1`, `1.2.3.4` into address and port. */
function splitNode(node: string): { address: string | undefined; port: number | undefined } {
  if (node.startsWith("[")) {
    const end = node.indexOf("]");
    if (end < 0) return { address: undefined, port: undefined };
    const port = node[end + 1] === ":" ? Number(node.slice(end + 2)) : undefined;
    return { address: node.slice(1, end), port: Number.isInteger(port) ? port : undefined };
  }
  const colon = node.indexOf(":");
  if (colon >= 0 && node.indexOf(":", colon + 1) < 0) {
    const port = Number(node.slice(colon + 1));
    return { address: node.slice(0, colon), port: Number.isInteger(port) ? port : undefined };
  }
  return { address: node, port: undefined };
}

function parseForwarded(header: string): Hop[] {
  const hops: Hop[] = [];
  for (const element of header.split(",")) {
    const hop: Hop = { address: undefined, port: undefined, proto: undefined };
    for (const pair of element.split(";")) {
      const eq = pair.indexOf("=");
      if (eq < 0) continue;
      const key = pair.slice(0, eq).trim().toLowerCase();
      const value = unquote(pair.slice(eq + 1).trim());
      if (key === "for") {
        const { address, port } = splitNode(value);
        // RFC 7239 obfuscated identifiers ("_hidden") and "unknown" are not addresses.
        hop.address = address && isIP(address) ? address : undefined;
        hop.port = port;
      } else if (key === "proto") {
        hop.proto = value.toLowerCase();
      }
    }
    hops.push(hop);
  }
  return hops;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(",") : v;
}

function toProto(p: string | undefined): "http" | "https" | undefined {
  return p === "https" || p === "http" ? p : undefined;
}

/**
 * Read the forwarding headers of a request whose peer is already known to be trusted.
 * `Forwarded` wins over the `X-Forwarded-*` pair when both are present.
 */
export function readForwarded(
  headers: Record<string, string | string[] | undefined>,
  trusted: TrustPredicate,
): ForwardedClient {
  const out: ForwardedClient = {};
  const fwd = headerValue(headers.forwarded);
  let hops: Hop[];
  if (fwd !== undefined) {
    hops = parseForwarded(fwd);
  } else {
    const xff = headerValue(headers["x-forwarded-for"]);
    hops = xff
      ? xff.split(",").map((s) => {
          const { address, port } = splitNode(s.trim());
          return {
            address: address && isIP(address) ? address : undefined,
            port,
            proto: undefined,
          };
        })
      : [];
    const xfp = headerValue(headers["x-forwarded-proto"]);
    if (xfp !== undefined) {
      // The nearest proxy's word is the one a trusted peer vouches for.
      const last = xfp.split(",").pop()?.trim().toLowerCase();
      out.proto = toProto(last);
    }
  }
  let chosen: Hop | undefined;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    chosen = hop;
    if (hop.address === undefined || !trusted(hop.address)) break;
  }
  if (chosen?.address !== undefined) {
    out.address = normalizeAddress(chosen.address);
    if (chosen.port !== undefined) out.port = chosen.port;
  }
  const proto = toProto(chosen?.proto);
  if (proto !== undefined) out.proto = proto;
  return out;
}
