/**
 * Names to addresses for the forward proxy: resolved once per request or tunnel (the address
 * checked is the address connected to, so a name that resolves differently a moment later,
 * DNS rebinding, gains nothing), with a short positive cache (getaddrinfo runs on libuv's small
 * thread pool, and a busy proxy asks for the same few names all the time).
 *
 * The lookup is the system's (`dns.lookup`: /etc/hosts, then DNS), unless the worker's services
 * hold another under {@link LOOKUP_SERVICE} (tests: a name that resolves to a denied address).
 */
import { lookup as dnsLookup } from "node:dns/promises";

/** Addresses for a name, in the resolver's order. */
export type Lookup = (host: string) => Promise<readonly { address: string; family: number }[]>;

/** The service name under which a worker (or a test) may provide its own {@link Lookup}. */
export const LOOKUP_SERVICE = "forwardLookup";

export const systemLookup: Lookup = (host) => dnsLookup(host, { all: true, order: "verbatim" });

/** A name that did not resolve: `code` is getaddrinfo's (ENOTFOUND, EAI_AGAIN, ...). */
export class ResolveError extends Error {
  override readonly name = "ResolveError";
  readonly code: string;
  constructor(host: string, code: string) {
    super(`cannot resolve ${host} (${code})`);
    this.code = code;
  }
}

const MAX_ENTRIES = 1000;

export class Resolver {
  private readonly lookup: Lookup;
  private readonly cacheMs: number;
  private readonly cache = new Map<string, { addresses: string[]; expires: number }>();
  private readonly pending = new Map<string, Promise<string[]>>();

  constructor(lookup: Lookup, cacheMs: number) {
    this.lookup = lookup;
    this.cacheMs = cacheMs;
  }

  /** The addresses of `host`; rejects with a ResolveError. */
  resolve(host: string): Promise<string[]> {
    const now = performance.now();
    const hit = this.cache.get(host);
    if (hit !== undefined) {
      if (hit.expires > now) return Promise.resolve(hit.addresses);
      this.cache.delete(host);
    }
    // Requests for a name already being resolved wait for that answer.
    let p = this.pending.get(host);
    if (p === undefined) {
      p = this.ask(host).finally(() => this.pending.delete(host));
      this.pending.set(host, p);
    }
    return p;
  }

  private async ask(host: string): Promise<string[]> {
    let answers: readonly { address: string; family: number }[];
    try {
      answers = await this.lookup(host);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new ResolveError(host, typeof code === "string" ? code : "ENOTFOUND");
    }
    const addresses = [...new Set(answers.map((a) => a.address))];
    if (addresses.length === 0) throw new ResolveError(host, "ENODATA");
    if (this.cacheMs > 0) {
      if (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(host, { addresses, expires: performance.now() + this.cacheMs });
    }
    return addresses;
  }
}
