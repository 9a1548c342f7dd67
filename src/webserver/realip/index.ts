/**
 * realip: the client address taken from a trusted proxy's header (nginx's realip module).
 *
 * Sets, for every other module and the log, `WebRequest.vars`:
 * - `remote_addr`: the client address (the peer's, unless a trusted proxy named another), IPv4
 *   clients on an IPv6 listener in their IPv4 form (`::ffff:10.1.2.3` -> `10.1.2.3`);
 * - `realip_remote_addr`: the peer's own address (nginx's variable of that name).
 * Modules read the client address as `req.vars.get("remote_addr") ?? req.connection.remoteAddress`.
 *
 * It runs in the server rewrite phase (so server-level `return` and rewrites see the client),
 * and again in each location's rewrite phase, for realip settings made in a location. Both runs
 * start from the peer address, so running twice is the same as once.
 */

import { isIP } from "node:net";
import { realipFields } from "../../config/settings/web/realip.ts";
import type { ObjectOut } from "../../config/types.ts";
import { createTrust, normalizeAddress, type TrustPredicate } from "../../gateway/forwarded.ts";
import type { WebRequest } from "../exchange.ts";
import type { PhaseHandler, WebModule } from "../module.ts";

type Settings = ObjectOut<typeof realipFields>;

/** `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`, `::1` -> the address, or undefined. */
export function parseNode(text: string): string | undefined {
  let t = text.trim();
  if (t.startsWith('"') && t.endsWith('"') && t.length >= 2) t = t.slice(1, -1);
  if (t.startsWith("[")) {
    const end = t.indexOf("]");
    if (end < 0) return undefined;
    const rest = t.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return undefined;
    t = t.slice(1, end);
  } else {
    const colon = t.indexOf(":");
    if (colon >= 0 && t.indexOf(":", colon + 1) < 0) {
      if (!/^\d{1,5}$/.test(t.slice(colon + 1))) return undefined;
      t = t.slice(0, colon);
    }
  }
  return isIP(t) === 0 ? undefined : normalizeAddress(t);
}

/** The `for=` values of a `Forwarded` header (RFC 7239), in order; "" for one that has none. */
function forwardedFor(value: string): string[] {
  const out: string[] = [];
  for (const element of value.split(",")) {
    let node = "";
    for (const pair of element.split(";")) {
      const eq = pair.indexOf("=");
      if (eq >= 0 && pair.slice(0, eq).trim().toLowerCase() === "for") node = pair.slice(eq + 1);
    }
    out.push(node);
  }
  return out;
}

export interface RealIpOptions {
  trusted: TrustPredicate;
  /** Lowercase header name. */
  header: string;
  recursive: boolean;
}

/**
 * The client address for a request from `peer` ("" for a unix socket) carrying `value` in the
 * configured header, or undefined when the peer is the client.
 */
export function realClient(
  peer: string,
  value: string | undefined,
  o: RealIpOptions,
): string | undefined {
  if (value === undefined || !o.trusted(peer === "" ? undefined : peer)) return undefined;
  const hops =
    o.header === "forwarded"
      ? forwardedFor(value)
      : o.header === "x-forwarded-for"
        ? value.split(",")
        : [value];
  let client: string | undefined;
  for (let i = hops.length - 1; i >= 0; i--) {
    const addr = parseNode(hops[i]!);
    // An entry that is not an address ends the walk: nothing left of it can be vouched for.
    if (addr === undefined) break;
    client = addr;
    if (!o.recursive || !o.trusted(addr)) break;
  }
  return client;
}

export const realipModule: WebModule<Settings> = {
  name: "realip",
  doc: "The client address from a trusted proxy's header (X-Forwarded-For, X-Real-IP, Forwarded).",
  fields: realipFields,
  variables: ["realip_remote_addr"],
  setup(scope) {
    const s = scope.settings;
    if (s.realIpFrom === undefined || s.realIpFrom.length === 0) {
      if (s.realIpHeader !== undefined || s.realIpRecursive !== undefined) {
        scope.logger.warn("realIpHeader/realIpRecursive have no effect without realIpFrom", {
          location: scope.location.path,
        });
      }
      return undefined;
    }
    const options: RealIpOptions = {
      trusted: createTrust(s.realIpFrom),
      header: s.realIpHeader ?? "x-forwarded-for",
      recursive: s.realIpRecursive ?? false,
    };
    const handler: PhaseHandler = (req: WebRequest) => {
      const peer = normalizeAddress(req.connection.remoteAddress);
      const client = realClient(peer, req.fields.joined(options.header), options);
      req.vars.set("realip_remote_addr", peer);
      req.vars.set("remote_addr", client ?? peer);
      return undefined;
    };
    return scope.location.match === ""
      ? { serverRewrite: handler, rewrite: handler }
      : { rewrite: handler };
  },
};
