/**
 * The contract of a balancing policy (nginx's `peer.get`): given the peers of one tier
 * (primaries, or backups) and the request's selection context, pick one peer that `view`
 * says is eligible, or none. The group does everything else, the same way for every policy:
 * it filters (down, failed, unhealthy, draining, at maxConns, already tried by this request),
 * falls back to backups, queues, counts connections and failures. A policy only chooses,
 * and keeps whatever state its choice needs (round-robin weights, a hash ring).
 *
 * One file per policy, each a thin layer like nginx's least_conn over round-robin:
 * roundRobin.ts (smooth weighted), leastConnections.ts, ipHash.ts, hash.ts (modulo or
 * ketama-consistent), randomTwo.ts, sticky.ts (cookie).
 */
import type { PolicyName } from "../../config/settings/upstream.ts";
import type { Peer } from "../peer.ts";

/** What a request tells the policy about itself. Every field is optional. */
export interface SelectContext {
  /** The client's IP address (ipHash). */
  clientAddress?: string | undefined;
  /** The expanded hash key (hash). */
  hashKey?: string | undefined;
  /** The value of the sticky cookie the request carried, if any (sticky). */
  stickyCookie?: string | undefined;
}

export interface SelectView {
  /** The group's clock (milliseconds). */
  readonly now: number;
  /** May this peer take this request now? */
  eligible(peer: Peer): boolean;
  /**
   * For a request already bound to `peer` (a sticky cookie): like `eligible`, but a draining
   * peer still takes it, so sessions finish where they started (nginx plus's `drain`).
   */
  eligibleBound(peer: Peer): boolean;
}

export interface Selection {
  peer: Peer;
  /** A cookie the response should set, to bind the client to `peer` (sticky). */
  cookie?: { name: string; value: string; header: string };
}

export interface Policy {
  readonly name: PolicyName;
  /** The tier's peer list changed (added, removed, re-resolved): rebuild derived state. */
  rebuild(peers: readonly Peer[]): void;
  select(peers: readonly Peer[], ctx: SelectContext, view: SelectView): Selection | undefined;
}

/** Hashes retry this many times on ineligible peers before falling back to round-robin (nginx). */
export const rehashTries = 20;
