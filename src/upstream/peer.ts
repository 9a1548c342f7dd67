/**
 * One peer: an address requests can go to, with its configured options and its live state:
 * requests in flight, passive failure accounting, active health, draining, slow start, and the
 * weights the round-robin family works with. The group owns peers; policies read them.
 *
 * Passive health follows nginx's round-robin peer exactly: a failed attempt bumps `fails` and
 * stamps `checked`; once `fails` reaches `maxFails` the peer is out until `failTimeout` has
 * passed since the last failure. Then the next selection stamps `checked` again and so lets
 * exactly one request probe the peer per `failTimeout`; if that request succeeds, `fails`
 * resets and the peer is fully back (ramping up over `slowStart` if set).
 */
import type { PeerAddress } from "../config/types.ts";

/** Where to connect: an IP address and port, or a unix socket. */
export type PeerTarget =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "unix"; path: string };

/**
 * `up`: takes requests. `down`: marked down (config or `setDown`). `draining`: finishes what it
 * has, takes nothing new. `unhealthy`: failed its active checks. `unready`: its owner said it
 * is not ready (`brigade up` feeding app workers). `failed`: passive health took it out for
 * `failTimeout`. `removed`: gone from the group (last event only).
 */
export type PeerState = "up" | "down" | "draining" | "unhealthy" | "unready" | "failed" | "removed";

export interface PeerOptions {
  weight: number;
  maxConns: number;
  maxFails: number;
  /** Milliseconds. */
  failTimeout: number;
  backup: boolean;
  down: boolean;
  /** Milliseconds; 0 disables. */
  slowStart: number;
}

/** `127.0.0.1:8000`, `[::1]:8000`, `unix:/run/app.sock`. */
export function targetName(target: PeerTarget | PeerAddress): string {
  if (target.kind === "unix") return `unix:${target.path}`;
  return target.host.includes(":")
    ? `[${target.host}]:${target.port}`
    : `${target.host}:${target.port}`;
}

export class Peer {
  /** The address connected to: `127.0.0.1:8000` or `unix:/path`. Unique within a group. */
  readonly name: string;
  /** The configured address this peer came from (`app.internal:8000` for a resolved name). */
  readonly server: string;
  readonly target: PeerTarget;
  readonly weight: number;
  readonly maxConns: number;
  readonly maxFails: number;
  readonly failTimeout: number;
  readonly backup: boolean;
  readonly slowStart: number;

  /** Requests in flight (leases held). What maxConns and least connections count. */
  active = 0;
  /** Extra load reported by the peer's owner (queued requests in an app worker). */
  load = 0;
  down: boolean;
  draining = false;
  /** Active health verdict; true until checks say otherwise. */
  healthy = true;
  ready = true;
  /** Consecutive active-check results, for the passes/fails thresholds. */
  checkPasses = 0;
  checkFails = 0;

  // Passive health, nginx's fields (milliseconds on the group's clock).
  fails = 0;
  checked = 0;
  accessed = 0;

  // Smooth weighted round-robin state.
  currentWeight = 0;
  effectiveWeight: number;
  /** When the current slow-start ramp began, or undefined when not ramping. */
  slowSince: number | undefined;

  // Counters for snapshot() and metrics.
  requests = 0;
  failures = 0;
  /** The last state announced, to publish transitions only. */
  announced: PeerState | undefined;

  constructor(server: string, target: PeerTarget, options: PeerOptions) {
    this.server = server;
    this.target = target;
    this.name = targetName(target);
    this.weight = options.weight;
    this.maxConns = options.maxConns;
    this.maxFails = options.maxFails;
    this.failTimeout = options.failTimeout;
    this.backup = options.backup;
    this.down = options.down;
    this.slowStart = options.slowStart;
    this.effectiveWeight = options.weight;
  }

  /** Passive health has this peer out right now. `single` peers are never taken out (nginx). */
  failed(now: number, single = false): boolean {
    return (
      !single &&
      this.maxFails > 0 &&
      this.fails >= this.maxFails &&
      now - this.checked <= this.failTimeout
    );
  }

  /** Takes new requests, capacity aside. */
  live(now: number, single = false): boolean {
    return !this.down && !this.draining && this.healthy && this.ready && !this.failed(now, single);
  }

  /** At maxConns. */
  full(): boolean {
    return this.maxConns > 0 && this.active >= this.maxConns;
  }

  state(now: number, single = false): PeerState {
    if (this.down) return "down";
    if (this.draining) return "draining";
    if (!this.ready) return "unready";
    if (!this.healthy) return "unhealthy";
    if (this.failed(now, single)) return "failed";
    return "up";
  }

  /**
   * The weight selection uses now: `effectiveWeight` (lowered by failures, nginx's), scaled
   * down linearly while slow-starting (never to 0, so a ramping peer still gets the odd request).
   */
  currentEffectiveWeight(now: number): number {
    if (this.slowSince === undefined || this.slowStart <= 0) return this.effectiveWeight;
    const elapsed = now - this.slowSince;
    if (elapsed >= this.slowStart) {
      this.slowSince = undefined;
      return this.effectiveWeight;
    }
    return this.effectiveWeight * Math.max(elapsed / this.slowStart, 0.01);
  }

  /** Start (or restart) the slow-start ramp, when the peer comes (back) up. */
  beginSlowStart(now: number): void {
    if (this.slowStart > 0) this.slowSince = now;
  }

  /** The policy picked this peer: open a probe window if the last one has passed (nginx). */
  selected(now: number): void {
    if (now - this.checked > this.failTimeout) this.checked = now;
    this.active++;
    this.requests++;
  }

  /**
   * An attempt on this peer ended. Returns true when the peer's passive state flipped (failed
   * now, or recovered), for the group to announce.
   */
  finished(outcome: "success" | "failure" | "neutral", now: number): boolean {
    this.active = Math.max(0, this.active - 1);
    if (outcome === "failure") {
      this.failures++;
      const wasFailed = this.maxFails > 0 && this.fails >= this.maxFails;
      this.fails++;
      this.accessed = now;
      this.checked = now;
      if (this.maxFails > 0) {
        this.effectiveWeight = Math.max(0, this.effectiveWeight - this.weight / this.maxFails);
      }
      return !wasFailed && this.maxFails > 0 && this.fails >= this.maxFails;
    }
    if (outcome === "success" && this.accessed < this.checked) {
      const wasFailed = this.maxFails > 0 && this.fails >= this.maxFails;
      this.fails = 0;
      if (wasFailed) {
        this.beginSlowStart(now);
        return true;
      }
    }
    return false;
  }
}
