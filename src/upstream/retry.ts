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
import type { ResponseHandler, UpstreamRequest, UpstreamResponse } from "./pool.ts";

export type { AttemptRecord };

const nonIdempotentMethods = new Set(["POST", "PATCH", "LOCK"]);

/** nginx's notion: everything but POST, PATCH and LOCK may be sent twice. */
export function isIdempotent(method: string): boolean {
  return method === "GET" || method === "HEAD" || !nonIdempotentMethods.has(method.toUpperCase());
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
 * When a peer is free at once (the common case) the attempt starts in the caller's tick, and
 * its outcome is one `then` away.
 */
export function withRetries<T>(
  group: UpstreamGroup,
  options: RetryOptions,
  attempt: (lease: Lease, attemptNumber: number) => Promise<T>,
  inspect: RetryInspect<T> = {},
): Promise<RetryResult<T>> {
  return new Promise<RetryResult<T>>((resolve, reject) => {
    new RetryRun<T>(
      group,
      options,
      (lease, n, run) => {
        attempt(lease, n).then(
          (r) => run.onResponse(r),
          (err: unknown) => run.onError(err),
        );
      },
      inspect,
      { onResponse: resolve, onError: reject },
    ).next(1);
  });
}

/** Where a retry run ends: the result with its lease still held, or the last error. */
interface RunEnd<T> {
  onResponse(result: RetryResult<T>): void;
  onError(err: unknown): void;
}

const noPeers: ReadonlySet<Peer> = new Set();

/**
 * One request's attempts: the state carried from one to the next. It is the handler of the
 * attempt in flight (one at a time): callbacks, so that a transport that answers from its
 * socket's events (Brigade's) reaches the caller without a promise per step.
 */
class RetryRun<T> implements ResponseHandler<T> {
  private readonly group: UpstreamGroup;
  private readonly options: RetryOptions;
  private readonly attempt: (lease: Lease, attemptNumber: number, run: RetryRun<T>) => void;
  private readonly inspect: RetryInspect<T>;
  private readonly end: RunEnd<T>;
  private readonly on: Conditions;
  private readonly maxTries: number;
  /** When the first attempt started, for `retry.timeout` (only read when there is one). */
  private readonly started: number;
  /** The peers tried, made at the second attempt (the first is `firstPeer`). */
  private tried: Set<Peer> | undefined = undefined;
  private firstPeer: Peer | undefined = undefined;
  private readonly attempts: AttemptRecord[] = [];
  private readonly mayResend: boolean;
  private lastError: UpstreamError | undefined = undefined;
  /** The attempt in flight. */
  private lease: Lease | undefined = undefined;
  private n = 0;

  constructor(
    group: UpstreamGroup,
    options: RetryOptions,
    attempt: (lease: Lease, attemptNumber: number, run: RetryRun<T>) => void,
    inspect: RetryInspect<T>,
    end: RunEnd<T>,
  ) {
    const conf = group.config.retry;
    this.group = group;
    this.options = options;
    this.attempt = attempt;
    this.inspect = inspect;
    this.end = end;
    this.on = retryConditions(conf);
    this.maxTries = conf.tries > 0 ? conf.tries : Math.max(1, group.size);
    this.started = conf.timeout > 0 ? group.clock() : 0;
    this.mayResend =
      options.replayable !== false && (conf.nonIdempotent || isIdempotent(options.method));
  }

  private triedPeers(): ReadonlySet<Peer> {
    if (this.tried !== undefined) return this.tried;
    if (this.firstPeer === undefined) return noPeers;
    this.tried = new Set([this.firstPeer]);
    return this.tried;
  }

  /** Attempt number `n`: a lease (at once, or after a wait in the queue), then the attempt. */
  next(n: number): void {
    const got = this.group.acquireNow(this.options.ctx ?? {}, {
      tried: this.triedPeers(),
      signal: this.options.signal,
    });
    if (got instanceof Promise) {
      got.then(
        (lease) => this.run(lease, n),
        (err: unknown) => {
          const final = this.lastError ?? classifyError(err);
          final.attempts = this.attempts;
          this.end.onError(final);
        },
      );
      return;
    }
    this.run(got, n);
  }

  private run(lease: Lease, n: number): void {
    const peer = lease.peer;
    if (this.tried !== undefined) this.tried.add(peer);
    else if (this.firstPeer === undefined) this.firstPeer = peer;
    else this.tried = new Set([this.firstPeer, peer]);
    this.lease = lease;
    this.n = n;
    try {
      this.attempt(lease, n, this);
    } catch (err) {
      if (this.lease === lease) this.onError(err);
    }
  }

  /** The attempt in flight succeeded (the transport's answer). */
  onResponse(result: T): void {
    const lease = this.lease;
    if (lease === undefined) return;
    this.lease = undefined;
    this.succeeded(lease, this.n, result);
  }

  /** The attempt in flight failed. */
  onError(err: unknown): void {
    const lease = this.lease;
    if (lease === undefined) return;
    this.lease = undefined;
    this.failed(lease, this.n, err);
  }

  private budgetLeft(n: number): boolean {
    const conf = this.group.config.retry;
    return (
      n < this.maxTries &&
      (conf.timeout <= 0 || this.group.clock() - this.started < conf.timeout * 1000) &&
      !this.options.signal?.aborted &&
      this.group.canTry(this.triedPeers())
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

  private succeeded(lease: Lease, n: number, result: T): void {
    const status = this.inspect.status?.(result);
    if (status !== undefined && this.on.statuses.has(status)) {
      const outcome: Outcome = neutralStatuses.has(status) ? "neutral" : "failure";
      const retry = this.mayResend && this.budgetLeft(n);
      this.record(lease, n, { peer: lease.peer.name, status, retried: retry }, outcome);
      if (retry) {
        this.inspect.discard?.(result);
        lease.release(outcome);
        this.next(n + 1);
        return;
      }
      lease.presetOutcome = outcome;
      this.end.onResponse({ result, lease, attempts: this.attempts });
      return;
    }
    this.record(lease, n, { peer: lease.peer.name, status, retried: false }, "success");
    this.end.onResponse({ result, lease, attempts: this.attempts });
  }

  private failed(lease: Lease, n: number, err: unknown): void {
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
      this.end.onError(e);
      return;
    }
    this.next(n + 1);
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
  return new Promise<GroupResponse>((resolve, reject) =>
    sendWithRetries(group, req, { onResponse: resolve, onError: reject }),
  );
}

/** The end of a group request's run: the response, its lease released with its body. */
class GroupEnd implements RunEnd<UpstreamResponse> {
  private readonly signal: AbortLike | undefined;
  private readonly handler: ResponseHandler<GroupResponse>;
  constructor(signal: AbortLike | undefined, handler: ResponseHandler<GroupResponse>) {
    this.signal = signal;
    this.handler = handler;
  }
  onResponse(r: RetryResult<UpstreamResponse>): void {
    this.handler.onResponse(groupResponse(r, this.signal));
  }
  onError(err: unknown): void {
    this.handler.onError(err);
  }
}

/**
 * `UpstreamGroup.send`: `requestWithRetries` with callbacks. Over Brigade's transport, a peer
 * free at once and a response read whole with its head make no promise at all: the handler is
 * called from the upstream socket's event.
 */
export function sendWithRetries(
  group: UpstreamGroup,
  req: GroupRequest,
  handler: ResponseHandler<GroupResponse>,
): void {
  new RetryRun<UpstreamResponse>(
    group,
    { method: req.method, ctx: req, signal: req.signal, replayable: isInMemory(req.body) },
    (lease, _n, run) => lease.pool.send(req, run),
    responseInspect,
    new GroupEnd(req.signal, handler),
  ).next(1);
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
