/**
 * The per-address connection cap (`web.maxConnectionsPerAddress`): how many connections one
 * client address may hold open at once across all workers, so that a slowloris from one address
 * (thousands of connections, each sending a header byte now and then) cannot take the server's
 * connections from everyone else.
 *
 * The engine asks `admit(socket)` for each accepted connection (EngineOptions.admit). The
 * worker's own count answers at once: past the cap here, the connection is closed before a byte
 * is read. Otherwise it is served straight away while the master's shared count (sharedState.ts)
 * is asked in the background; if the address holds too many across the workers, the connection is
 * closed when the answer comes (a few hundred microseconds, well before a slow client sends a
 * request head). Counts are given back when the connection closes.
 */
import type { Socket } from "node:net";
import type { Logger } from "../../core/logger.ts";
import { createTrust } from "../../gateway/forwarded.ts";
import type { CountRule, SharedState } from "../../process/sharedState.ts";

export interface ConnectionCapOptions {
  max: number;
  /** Normalised address entries (config/settings/web/access.ts) the cap does not apply to. */
  exempt: readonly string[];
  shared: SharedState;
  logger: Logger;
}

function stripMapped(address: string | undefined): string {
  if (address === undefined) return "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

export class ConnectionCap {
  private readonly max: number;
  private readonly exempt: (a: string | undefined) => boolean;
  private readonly shared: SharedState;
  private readonly logger: Logger;
  private readonly rule: CountRule;
  private readonly local = new Map<string, number>();
  private lastLog = 0;
  private suppressed = 0;
  /** Connections closed by the cap (for tests and stats). */
  refused = 0;

  constructor(o: ConnectionCapOptions) {
    this.max = o.max;
    const exempt = o.exempt.length > 0 ? createTrust(o.exempt) : undefined;
    this.exempt = (a) => (a === undefined ? true : (exempt?.(a) ?? false));
    this.shared = o.shared;
    this.logger = o.logger;
    this.rule = { zone: "connections:per-address", max: o.max };
  }

  /** The engine's hook: false closes the connection now. */
  readonly admit = (socket: Socket): boolean => {
    const address = stripMapped(socket.remoteAddress);
    // Unix socket peers (no address) and exempt networks are not counted.
    if (address === "" || this.exempt(address)) return true;
    const n = this.local.get(address) ?? 0;
    if (n >= this.max) {
      this.refuse(address, n, "this worker");
      return false;
    }
    this.local.set(address, n + 1);
    const item = { rule: this.rule, key: address };
    let held = false;
    let closed = false;
    socket.once("close", () => {
      closed = true;
      const left = (this.local.get(address) ?? 1) - 1;
      if (left <= 0) this.local.delete(address);
      else this.local.set(address, left);
      if (held) this.shared.release([item]);
    });
    void this.shared.acquire([item]).then((v) => {
      if (!v.ok) {
        this.refuse(address, v.count, "all workers");
        socket.destroy();
        return;
      }
      held = true;
      // Closed before the answer came: give the count back now.
      if (closed) this.shared.release([item]);
    });
    return true;
  };

  private refuse(address: string, count: number, where: string): void {
    this.refused++;
    const now = Date.now();
    if (now - this.lastLog < 1000) {
      this.suppressed++;
      return;
    }
    this.logger.warn("too many connections from one address; closing", {
      client: address,
      open: count,
      max: this.max,
      counted: where,
      ...(this.suppressed > 0 ? { suppressed: this.suppressed } : {}),
    });
    this.lastLog = now;
    this.suppressed = 0;
  }
}
