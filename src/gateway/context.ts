/**
 * The per-request {@link AppContext}, computed lazily from the Node request, and the registry
 * of `waitUntil` work a worker drains before it exits.
 */
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Logger } from "../core/logger.ts";
import type { AppContext, TlsInfo } from "./contract.ts";
import type { ForwardedClient, TrustPredicate } from "./forwarded.ts";
import { normalizeAddress, readForwarded } from "./forwarded.ts";

/**
 * Work handed to `ctx.waitUntil()` that is still running. A worker calls `settled()` on a
 * graceful stop, after its server stopped taking requests and before it exits.
 */
export class PendingWork {
  private readonly pending = new Set<Promise<unknown>>();
  private readonly logger: Logger | undefined;
  constructor(logger?: Logger) {
    this.logger = logger;
  }
  /** Number of promises not yet settled. */
  get size(): number {
    return this.pending.size;
  }
  /** Track a promise; its rejection is logged and otherwise swallowed. */
  add(promise: Promise<unknown>): void {
    const tracked = Promise.resolve(promise).then(
      () => {
        this.pending.delete(tracked);
      },
      (err: unknown) => {
        this.pending.delete(tracked);
        this.logger?.error("waitUntil work failed", { err });
      },
    );
    this.pending.add(tracked);
  }
  /**
   * Resolves when every tracked promise, including ones added meanwhile, has settled, or when
   * `timeoutMs` passes (resolving `false` then, `true` when all settled).
   */
  async settled(timeoutMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      while (this.pending.size > 0) {
        const done = await Promise.race([Promise.all([...this.pending]).then(() => true), timeout]);
        if (!done) return false;
      }
      return true;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Per-server settings the context needs. */
export interface ContextSettings {
  trusted: TrustPredicate;
  pending: PendingWork;
}

function splitHost(host: string): { name: string; port: number | undefined } {
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    const port = host[end + 1] === ":" ? Number(host.slice(end + 2)) : undefined;
    return { name: host.slice(0, end + 1), port: Number.isInteger(port) ? port : undefined };
  }
  const colon = host.lastIndexOf(":");
  if (colon < 0) return { name: host, port: undefined };
  const port = Number(host.slice(colon + 1));
  return { name: host.slice(0, colon), port: Number.isInteger(port) ? port : undefined };
}

/** The {@link AppContext} of one request. Getters compute on first use. */
export class RequestContext implements AppContext {
  private readonly req: IncomingMessage;
  private readonly settings: ContextSettings;
  private fwd: ForwardedClient | undefined;
  constructor(req: IncomingMessage, settings: ContextSettings) {
    this.req = req;
    this.settings = settings;
  }
  /** Forwarded client info, `{}` when the peer is not trusted or sent no such header. */
  private forwarded(): ForwardedClient {
    if (this.fwd === undefined) {
      const h = this.req.headers;
      const any =
        h.forwarded !== undefined ||
        h["x-forwarded-for"] !== undefined ||
        h["x-forwarded-proto"] !== undefined;
      const peer = this.req.socket.remoteAddress;
      this.fwd = any && this.settings.trusted(peer) ? readForwarded(h, this.settings.trusted) : {};
    }
    return this.fwd;
  }
  get peerAddress(): string {
    const a = this.req.socket.remoteAddress;
    return a === undefined ? "" : normalizeAddress(a);
  }
  get remoteAddress(): string {
    return this.forwarded().address ?? this.peerAddress;
  }
  get remotePort(): number | undefined {
    const f = this.forwarded();
    return f.address !== undefined ? f.port : this.req.socket.remotePort;
  }
  get scheme(): "http" | "https" {
    return this.forwarded().proto ?? (this.isTls() ? "https" : "http");
  }
  get serverName(): string {
    const host = this.req.headers.host;
    if (host) return splitHost(host).name;
    return this.req.socket.localAddress ?? "localhost";
  }
  get serverPort(): number {
    const host = this.req.headers.host;
    const port = host ? splitHost(host).port : undefined;
    if (port !== undefined) return port;
    if (host) return this.scheme === "https" ? 443 : 80;
    return this.req.socket.localPort ?? 0;
  }
  get tls(): TlsInfo | undefined {
    if (!this.isTls()) return undefined;
    const s = this.req.socket as TLSSocket;
    return {
      protocol: s.getProtocol(),
      cipher: s.getCipher()?.name,
      servername: (s as TLSSocket & { servername?: string | false }).servername || undefined,
      authorized: s.authorized,
    };
  }
  waitUntil(promise: Promise<unknown>): void {
    this.settings.pending.add(promise);
  }
  passThroughOnException(): void {}
  private isTls(): boolean {
    return (this.req.socket as Partial<TLSSocket>).encrypted === true;
  }
}
