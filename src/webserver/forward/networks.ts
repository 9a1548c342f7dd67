/**
 * Destination networks: which addresses the forward proxy may connect to. The default deny-list
 * keeps a proxy from being turned against its own network (SSRF): loopback, link-local (cloud
 * metadata at 169.254.169.254), private and shared ranges, unspecified, multicast, broadcast,
 * reserved and documentation ranges, for IPv4 and IPv6.
 *
 * IPv4 addresses written inside IPv6 are checked as the IPv4 address they hold: IPv4-mapped
 * (`::ffff:127.0.0.1`, which a dual-stack socket connects to 127.0.0.1), IPv4-compatible
 * (`::127.0.0.1`), IPv4-translated (`::ffff:0:127.0.0.1`), NAT64 (`64:ff9b::7f00:1`) and 6to4
 * (`2002:7f00:1::`). A mapped address is that IPv4 address and nothing else; for the others both
 * the IPv6 address and the IPv4 inside must pass.
 *
 * The verdict, in order: a `forwardDenyDestinations` network matching the address (any of its
 * forms) refuses; else a default network matching a form refuses unless a
 * `forwardAllowDestinations` network matches that same form; else the address passes. Matching is
 * our own prefix comparison on bytes (node's BlockList cannot say which entry matched, and the
 * answer names the rule).
 */
import { isIPv4, isIPv6 } from "node:net";

/** One network: the address bytes (4 or 16), the prefix length, and how it reads. */
export interface Network {
  readonly bytes: Uint8Array;
  readonly bits: number;
  /** `127.0.0.0/8` */
  readonly text: string;
  /** What it is, for messages: `loopback`. */
  readonly name: string;
}

/** The default deny-list, each with its name (first match names the refusal). */
const defaults: readonly [string, string][] = [
  ["0.0.0.0/8", "unspecified, this host"],
  ["10.0.0.0/8", "private, RFC 1918"],
  ["100.64.0.0/10", "shared address space, carrier-grade NAT"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local, cloud metadata"],
  ["172.16.0.0/12", "private, RFC 1918"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.0.2.0/24", "documentation"],
  ["192.88.99.0/24", "6to4 relay anycast"],
  ["192.168.0.0/16", "private, RFC 1918"],
  ["198.18.0.0/15", "benchmarking"],
  ["198.51.100.0/24", "documentation"],
  ["203.0.113.0/24", "documentation"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved and broadcast"],
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["::/96", "IPv4-compatible"],
  ["64:ff9b:1::/48", "NAT64 local use"],
  ["100::/64", "discard-only"],
  ["2001::/32", "Teredo"],
  ["2001:db8::/32", "documentation"],
  ["fc00::/7", "unique local, private"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local, deprecated"],
  ["ff00::/8", "multicast"],
];

/** The bytes of an IPv4 or IPv6 address (no zone, no brackets), or undefined. */
export function addressBytes(address: string): Uint8Array | undefined {
  if (isIPv4(address)) return Uint8Array.from(address.split(".").map(Number));
  if (!isIPv6(address)) return undefined;
  let text = address;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const out = new Uint8Array(16);
  // A trailing dotted quad is the last 32 bits.
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) >= 0) {
    tail = text
      .slice(lastColon + 1)
      .split(".")
      .map(Number);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.includes("::") ? text.split("::") : [text, undefined];
  const groups = (s: string | undefined): number[] =>
    s === undefined || s === "" ? [] : s.split(":").map((g) => Number.parseInt(g, 16));
  const a = groups(head);
  const b = groups(rest);
  const all =
    rest === undefined ? a : [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b];
  for (let i = 0; i < 8; i++) {
    out[2 * i] = (all[i]! >> 8) & 0xff;
    out[2 * i + 1] = all[i]! & 0xff;
  }
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

/** Parse `addr/bits` (or a bare address: all bits). Throws on what is neither. */
export function network(text: string, name = text): Network {
  const slash = text.indexOf("/");
  const addr = slash < 0 ? text : text.slice(0, slash);
  const bytes = addressBytes(addr);
  if (bytes === undefined) throw new TypeError(`not an IP network: ${text}`);
  const bits = slash < 0 ? bytes.length * 8 : Number(text.slice(slash + 1));
  if (!Number.isInteger(bits) || bits < 0 || bits > bytes.length * 8) {
    throw new TypeError(`bad prefix length: ${text}`);
  }
  return { bytes, bits, text: slash < 0 ? `${addr}/${bits}` : text, name };
}

function within(addr: Uint8Array, net: Network): boolean {
  if (addr.length !== net.bytes.length) return false;
  const full = net.bits >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== net.bytes[i]) return false;
  const rest = net.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (addr[full]! & mask) === (net.bytes[full]! & mask);
}

function first(addr: Uint8Array, list: readonly Network[]): Network | undefined {
  for (const n of list) if (within(addr, n)) return n;
  return undefined;
}

const zero = (b: Uint8Array, from: number, to: number): boolean => {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
};

/**
 * The forms an address is checked in: the address itself, and the IPv4 address inside an IPv6
 * one (mapped: that alone; compatible, translated, NAT64, 6to4: both).
 */
export function forms(bytes: Uint8Array): Uint8Array[] {
  if (bytes.length === 4) return [bytes];
  const v4 = (at: number): Uint8Array => bytes.slice(at, at + 4);
  // ::ffff:a.b.c.d
  if (zero(bytes, 0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return [v4(12)];
  // ::a.b.c.d (not :: and ::1, which are themselves)
  if (zero(bytes, 0, 12) && !zero(bytes, 12, 15)) return [bytes, v4(12)];
  // ::ffff:0:a.b.c.d
  if (zero(bytes, 0, 8) && bytes[8] === 0xff && bytes[9] === 0xff && zero(bytes, 10, 12)) {
    return [bytes, v4(12)];
  }
  // 64:ff9b::a.b.c.d
  if (bytes[0] === 0 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b) {
    if (zero(bytes, 4, 12)) return [bytes, v4(12)];
  }
  // 2002:AABB:CCDD::/48
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return [bytes, v4(2)];
  return [bytes];
}

/** The text of an address's bytes (IPv4 dotted, IPv6 in groups, not compressed). */
function bytesText(b: Uint8Array): string {
  if (b.length === 4) return b.join(".");
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return g.join(":");
}

/** Why a destination is refused: which list, which network. */
export interface Refusal {
  readonly list: "forwardDenyDestinations" | "default";
  readonly network: Network;
  /** The form that matched (the IPv4 inside an IPv6 address, say). */
  readonly form: string;
}

export class DestinationRules {
  private readonly deny: readonly Network[];
  private readonly allow: readonly Network[];
  private readonly defaults: readonly Network[];

  /** `allow` and `deny` are normalised CIDR texts (the schema's `networkList`). */
  constructor(allow: readonly string[] = [], deny: readonly string[] = []) {
    this.allow = allow.map((t) => network(t));
    this.deny = deny.map((t) => network(t));
    this.defaults = defaults.map(([t, name]) => network(t, name));
  }

  /** Verdicts by address text: a proxy connects to the same few addresses again and again. */
  private readonly seen = new Map<string, Refusal | null>();

  /** Undefined when `address` may be connected to, else why not. */
  check(address: string): Refusal | undefined {
    const hit = this.seen.get(address);
    if (hit !== undefined) return hit ?? undefined;
    const r = this.verdict(address);
    if (this.seen.size >= 1024) this.seen.clear();
    this.seen.set(address, r ?? null);
    return r;
  }

  private verdict(address: string): Refusal | undefined {
    const bytes = addressBytes(address);
    if (bytes === undefined) {
      return { list: "default", network: network("::/0", "not an IP address"), form: address };
    }
    const all = forms(bytes);
    for (const f of all) {
      const n = first(f, this.deny);
      if (n) return { list: "forwardDenyDestinations", network: n, form: bytesText(f) };
    }
    for (const f of all) {
      const n = first(f, this.defaults);
      if (n && !first(f, this.allow)) return { list: "default", network: n, form: bytesText(f) };
    }
    return undefined;
  }
}

/** The refusal as a sentence for the 403 body and the log. */
export function describeRefusal(address: string, r: Refusal): string {
  const bytes = addressBytes(address);
  const inner =
    bytes !== undefined && r.form !== address && r.form !== bytesText(bytes)
      ? ` (${r.form} inside it)`
      : "";
  if (r.list === "forwardDenyDestinations") {
    return `the destination ${address}${inner} is in forwardDenyDestinations (${r.network.text})`;
  }
  return `the destination ${address}${inner} is in ${r.network.text} (${r.network.name}), which the default deny-list refuses; forwardAllowDestinations opens it`;
}
