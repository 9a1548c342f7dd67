/**
 * The retry driver (nginx's proxy_next_upstream): run an attempt on a peer; if it fails in a
 * way `retry.on` names, give the peer its failure and run the attempt again on the next peer
 * the policy picks (never one this request already tried), within `retry.tries` attempts and
 * `retry.timeout` since the first.
 *
 * A request is retried only when that is safe: its method is idempotent (not POST, PATCH or
 * LOCK, as nginx decides), or `retry.nonIdempotent` is on, or the attempt failed before
 * anything was sent (connection refused, connect timeout). The attempt function replays the
 * request itself, so its body must be in memory (the proxy buffers it); a streamed body is
 * retried only when nothing was sent.
 *
 * What counts against a peer (maxFails): every error and timeout, and the statuses listed in
 * `retry.on` except 403, 404 and 429 (which only move on). When the last attempt ends with a
 * listed status, that response is returned, as nginx does (the client sees the upstream's 503
 * rather than one of ours), and the peer still gets its failure.
 */

import type { RetryCondition } from "../config/settings/upstream.ts";
import type { AbortLike } from "../core/abort.ts";
import { type AttemptRecord, classifyError, UpstreamError } from "./errors.ts";
import { attemptChannel, publish } from "./events.ts";
import type { Lease, Outcome, UpstreamGroup } from "./group.ts";
import type { Peer } from "./peer.ts";
import type { SelectContext } from "./policies/index.ts";
import type { UpstreamRequest, UpstreamResponse } from "./pool.ts";

export type { AttemptRecord };

const nonIdempotentMethods = new Set(["POST", "PATCH", "LOCK"]);

/** nginx's notion: everything but POST, PATCH and LOCK may be sent twice. */
export function isIdempotent(method: string): boolean {
  return !nonIdempotentMethods.has(method.toUpperCase());
}

export interface RetryOptions {
  method: string;
  ctx?: SelectContext;
  signal?: AbortLike | undefined;
  /**
   * False when the request body cannot be sent twice (a stream): then only attempts that
   * failed before anything was sent are retried. Default true.
   */
  replayable?: boolean;
}

export interface RetryInspect<T> {
  /** The status of a result, to test against `httpNNN` conditions. */
  status?(result: T): number | undefined;
  /** Throw away a result that will be retried (read its body to the end, to keep the connection). */
  discard?(result: T): void;
}

export interface RetryResult<T> {
  result: T;
  /** Still held: release it when done with `result` (its outcome is preset if it failed). */
  lease: Lease;
  attempts: AttemptRecord[];
}

const conditionOfError: Partial<Record<UpstreamError["kind"], RetryCondition>> = {
  refused: "error",
  reset: "error",
  timeout: "timeout",
  badResponse: "invalidResponse",
};
const neutralStatuses = new Set([403, 404, 429]);

interface Conditions {
  conditions: ReadonlySet<RetryCondition>;
  /** The `httpNNN` conditions, as numbers. */
  statuses: ReadonlySet<number>;
}
const conditionsOf = new WeakMap<object, Conditions>();

/** `retry.on` as sets, made once per config. */
function retryConditions(conf: { on: readonly RetryCondition[] }): Conditions {
  let c = conditionsOf.get(conf);
  if (c === undefined) {
    const statuses = new Set<number>();
    for (const x of conf.on) if (x.startsWith("http")) statuses.add(Number(x.slice(4)));
    c = { conditions: new Set(conf.on), statuses };
    conditionsOf.set(conf, c);
  }
  return c;
}

/**
 * Run `attempt` on peers of `group` until one succeeds or retrying is over. Resolves with the
 * result and the lease still held; rejects with the last `UpstreamError` (its `attempts` list
 * says what happened on each peer).
 *
 * Written as a promise chain rather than an async loop: when a peer is free at once (the
 * common case) the attempt starts in the caller's tick, and its outcome is one `then` away.
 */
export function withRetries<T>(
  group: UpstreamGroup,
  options: RetryOptions,
  attempt: (lease: Lease, attemptNumber: number) => Promise<T>,
  inspect: RetryInspect<T> = {},
): Promise<RetryResult<T>> {
  return new RetryRun(group, options, attempt, inspect).next(1);
}

/** One request's attempts: the state `withRetries` carries from one to the next. */
class RetryRun<T> {
  private readonly group: UpstreamGroup;
  private readonly options: RetryOptions;
  private readonly attempt: (lease: Lease, attemptNumber: number) => Promise<T>;
  private readonly inspect: RetryInspect<T>;
  private readonly on: Conditions;
  private readonly maxTries: number;
  private readonly started: number;
  private readonly tried = new Set<Peer>();
  private readonly attempts: AttemptRecord[] = [];
  private readonly mayResend: boolean;
  private lastError: UpstreamError | undefined = undefined;

  constructor(
    group: UpstreamGroup,
    options: RetryOptions,
    attempt: (lease: Lease, attemptNumber: number) => Promise<T>,
    inspect: RetryInspect<T>,
  ) {
    const conf = group.config.retry;
    this.group = group;
    this.options = options;
    this.attempt = attempt;
    this.inspect = inspect;
    this.on = retryConditions(conf);
    this.maxTries = conf.tries > 0 ? conf.tries : Math.max(1, group.size);
    this.started = group.clock();
    this.mayResend =
      options.replayable !== false && (conf.nonIdempotent || isIdempotent(options.method));
  }

  /** Attempt number `n`: a lease (at once, or after a wait in the queue), then the attempt. */
  next(n: number): Promise<RetryResult<T>> {
    const got = this.group.acquireNow(this.options.ctx ?? {}, {
      tried: this.tried,
      signal: this.options.signal,
    });
    if (got instanceof Promise) {
      return got.then(
        (lease) => this.run(lease, n),
        (err) => {
          const final = this.lastError ?? classifyError(err);
          final.attempts = this.attempts;
          throw final;
        },
      );
    }
    return this.run(got, n);
  }

  private run(lease: Lease, n: number): Promise<RetryResult<T>> {
    this.tried.add(lease.peer);
    let pending: Promise<T>;
    try {
      pending = this.attempt(lease, n);
    } catch (err) {
      pending = Promise.reject(err);
    }
    return pending.then(
      (result) => this.succeeded(lease, n, result),
      (err) => this.failed(lease, n, err),
    );
  }

  private budgetLeft(n: number): boolean {
    const conf = this.group.config.retry;
    return (
      n < this.maxTries &&
      (conf.timeout <= 0 || this.group.clock() - this.started < conf.timeout * 1000) &&
      !this.options.signal?.aborted &&
      this.group.canTry(this.tried)
    );
  }

  private record(lease: Lease, n: number, r: AttemptRecord, outcome: Outcome): void {
    this.attempts.push(r);
    if (!attemptChannel.hasSubscribers) return;
    publish(attemptChannel, {
      group: this.group.name,
      peer: lease.peer.name,
      attempt: n,
      outcome,
      status: r.status,
      error: r.error,
      retried: r.retried,
    });
  }

  private succeeded(lease: Lease, n: number, result: T): RetryResult<T> | Promise<RetryResult<T>> {
    const status = this.inspect.status?.(result);
    if (status !== undefined && this.on.statuses.has(status)) {
      const outcome: Outcome = neutralStatuses.has(status) ? "neutral" : "failure";
      const retry = this.mayResend && this.budgetLeft(n);
      this.record(lease, n, { peer: lease.peer.name, status, retried: retry }, outcome);
      if (retry) {
        this.inspect.discard?.(result);
        lease.release(outcome);
        return this.next(n + 1);
      }
      lease.presetOutcome = outcome;
      return { result, lease, attempts: this.attempts };
    }
    this.record(lease, n, { peer: lease.peer.name, status, retried: false }, "success");
    return { result, lease, attempts: this.attempts };
  }

  private failed(lease: Lease, n: number, err: unknown): Promise<RetryResult<T>> {
    let e = classifyError(err, { peer: lease.peer.name });
    // The caller gave up (the client went away): whatever the transport made of it (undici
    // fails with the signal's reason, "client closed the connection"), not the peer's fault.
    if (this.options.signal?.aborted && e.kind !== "aborted") e = abortedError(e);
    const condition = conditionOfError[e.kind];
    const outcome: Outcome = condition ? "failure" : "neutral";
    const retry =
      condition !== undefined &&
      this.on.conditions.has(condition) &&
      (this.mayResend || !e.sent) &&
      this.budgetLeft(n);
    this.record(lease, n, { peer: lease.peer.name, error: e.kind, retried: retry }, outcome);
    lease.release(outcome);
    this.lastError = e;
    if (!retry) {
      e.attempts = this.attempts;
      throw e;
    }
    return this.next(n + 1);
  }
}

function isInMemory(body: UpstreamRequest["body"]): boolean {
  return (
    body === undefined || body === null || typeof body === "string" || body instanceof Uint8Array
  );
}

/** A request through a group: the pool request plus what selection needs. */
export interface GroupRequest extends UpstreamRequest, SelectContext {}

export interface GroupResponse extends UpstreamResponse {
  attempts: AttemptRecord[];
  /** A Set-Cookie header value the proxy must add (sticky policy), if any. */
  setCookie: string | undefined;
}

const responseInspect: RetryInspect<UpstreamResponse> = {
  status: (r) => r.status,
  discard: (r) => discardResponse(r),
};

/** `UpstreamGroup.request`: retries over the peers' pools; the lease ends with the body. */
export function requestWithRetries(
  group: UpstreamGroup,
  req: GroupRequest,
): Promise<GroupResponse> {
  return withRetries(
    group,
    { method: req.method, ctx: req, signal: req.signal, replayable: isInMemory(req.body) },
    (l) => l.pool.request(req),
    responseInspect,
  ).then((r) => groupResponse(r, req.signal));
}

/** The response of a finished retry run, its lease released with its body. */
export function groupResponse(
  { result, lease, attempts }: RetryResult<UpstreamResponse>,
  signal: AbortLike | undefined,
): GroupResponse {
  releaseWithBody(lease, result, signal);
  // Not a spread: a response may have its body as a getter (made only when used).
  const out = result as GroupResponse;
  out.attempts = attempts;
  out.setCookie = lease.setCookie;
  return out;
}

/** Throw a response away (a retried status): read its body to the end to keep the connection. */
export function discardResponse(r: UpstreamResponse): void {
  if (r.complete !== undefined) return;
  r.body.on("error", () => {});
  r.body.resume();
}

/** `err` as the caller's abort, the same phase and peer. */
function abortedError(err: UpstreamError): UpstreamError {
  return new UpstreamError("aborted", err.phase, {
    message: "request aborted (the client went away)",
    peer: err.peer,
    sent: err.sent,
    code: "UND_ERR_ABORTED",
    cause: err,
  });
}

/**
 * Release `lease` when the response body closes: a success when it was read to its end, a
 * failure when it failed (cut short, malformed, timed out), neutral when the caller stopped
 * reading it or aborted (a client that went away is not the peer's failure).
 */
export function releaseWithBody(
  lease: Lease,
  res: UpstreamResponse,
  signal: AbortLike | undefined,
): void {
  if (res.complete !== undefined) {
    // Read whole with its head: the attempt is over.
    lease.release();
    return;
  }
  const body = res.body;
  let bodyError: unknown;
  body.once("error", (err) => {
    bodyError = err;
  });
  body.once("close", () => {
    if (bodyError !== undefined) {
      const e = classifyError(bodyError, { peer: lease.peer.name, connected: true, headers: true });
      lease.release(e.kind === "aborted" || signal?.aborted ? "neutral" : "failure");
    } else if (body.readableEnded) lease.release();
    else lease.release("neutral");
  });
}
