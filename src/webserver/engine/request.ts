/**
 * The engine side of `WebRequest`: one class every engine fills in (HTTP/1.x, HTTP/2, and the
 * engine of our own to come), with what the pipeline needs beside the public interface (the
 * body limit, the server chosen, the method change of an error-page redirect). Costly parts
 * (fields with lowercase names, the id, the abort signal, vars) are made on first use: a
 * `return 200` touches none of them.
 */
import { randomUUID } from "node:crypto";
import { type Readable, Transform } from "node:stream";
import type { AbortLike } from "../../core/abort.ts";
import { monoNow, wallAt } from "../../core/clock.ts";
import {
  Fields,
  HttpError,
  type RequestBody,
  type WebConnection,
  type WebRequest,
} from "../exchange.ts";
import { normalizeHost, normalizePath, splitTarget } from "../path.ts";

/** The parts of a request head the engine found, before any interpretation. */
export interface RequestHead {
  method: string;
  target: string;
  httpVersion: "1.0" | "1.1" | "2";
  /** The Host field or `:authority` (raw), undefined when absent. */
  authority: string | undefined;
  scheme: "http" | "https";
  mergeSlashes: boolean;
}

/*
 * The last target split, and the last path and host normalised (one entry each, shared by the
 * thread's requests): the same request again (a keep-alive client, a load test, a health check)
 * gets the same strings, whose hashes are then already known to the Map lookups of routing
 * (server names, locations), without splitting or normalising again.
 */
let lastRawPath = "";
let lastMerge = true;
let lastPath = normalizePath(lastRawPath, lastMerge);
let lastRawHost = "";
let lastHost = normalizeHost(lastRawHost);

let lastTarget = "/";
let lastParts = splitTarget(lastTarget);

/** splitTarget, for the same target as last time without splitting it again (read-only parts). */
function splitTargetOnce(target: string): Readonly<ReturnType<typeof splitTarget>> {
  if (target !== lastTarget) {
    lastParts = splitTarget(target);
    lastTarget = target;
  }
  return lastParts;
}

function normalizedPath(raw: string, mergeSlashes: boolean): string | undefined {
  if (raw !== lastRawPath || mergeSlashes !== lastMerge) {
    lastPath = normalizePath(raw, mergeSlashes);
    lastRawPath = raw;
    lastMerge = mergeSlashes;
  }
  return lastPath;
}

function normalizedHost(raw: string): string | undefined {
  if (raw !== lastRawHost) {
    lastHost = normalizeHost(raw);
    lastRawHost = raw;
  }
  return lastHost;
}

export abstract class EngineRequest implements WebRequest, AbortLike {
  method: string;
  /** The method as received (an error page's redirect turns `method` into GET; `$request` keeps this). */
  readonly originalMethod: string;
  readonly target: string;
  readonly httpVersion: "1.0" | "1.1" | "2";
  host: string;
  readonly scheme: "http" | "https";
  abstract readonly connection: WebConnection;
  path: string;
  query: string;
  abstract readonly body: RequestBody;
  /** The listen key of the connection (what `connection.listener` says), without making the view. */
  abstract readonly listenerKey: string;
  /** The declared Content-Length (undefined: none, or chunked), without making the body. */
  declaredLength: number | undefined;
  readonly startTime: number;
  /** performance.now() when the head was complete, for durations. */
  readonly hrStart: number;
  abstract readonly canTakeover: boolean;
  /** A problem the engine found in the head, answered by the pipeline (after routing, for logs). */
  invalid: HttpError | undefined;
  /** Set by the pipeline: the first name of the server chosen (`$server_name`). */
  serverName = "";
  /** Set by the pipeline from the location: the body size limit, 0 for none. */
  bodyLimit = 0;
  private varsMap: Map<string, string> | undefined;
  private fieldsCache: Fields | undefined;
  private idCache: string | undefined;
  private abortController: AbortController | undefined;
  private abortReason: unknown;
  /** `clientGone` listeners (one, usually: the upstream exchange in progress). */
  private abortListeners: (() => void)[] | undefined;

  constructor(head: RequestHead) {
    this.method = head.method;
    this.originalMethod = head.method;
    this.target = head.target;
    this.httpVersion = head.httpVersion;
    this.scheme = head.scheme;
    // One clock read: the wall time is derived from the monotonic one (core/clock.ts).
    this.hrStart = monoNow();
    this.startTime = wallAt(this.hrStart);
    this.path = "/";
    this.query = "";
    this.host = "";
    this.declaredLength = undefined;
    // CONNECT's authority form (`example.com:443`) has no path: it routes as "/", the host
    // being the target's.
    const authorityForm = head.method === "CONNECT" && !head.target.startsWith("/");
    const parts = authorityForm
      ? { path: "/", query: "", host: head.target }
      : splitTargetOnce(head.target);
    if (parts === undefined) {
      this.invalid = new HttpError(400, `bad request-target ${JSON.stringify(head.target)}`, {
        close: true,
      });
    } else {
      const path = normalizedPath(parts.path, head.mergeSlashes);
      if (path === undefined) {
        this.invalid = new HttpError(400, "invalid path", { close: true });
      } else this.path = path;
      this.query = parts.query;
    }
    const authority = parts?.host ?? head.authority;
    if (authority !== undefined) {
      const host = normalizedHost(authority);
      if (host === undefined) {
        this.invalid ??= new HttpError(400, "invalid host", { close: true });
      } else this.host = host;
    }
  }

  /** The raw header list, names as received (HTTP/1) or lowercase (HTTP/2). */
  protected abstract rawFields(): string[];

  get fields(): Fields {
    if (this.fieldsCache === undefined) {
      const raw = this.rawFields();
      const list = new Array<string>(raw.length);
      for (let i = 0; i < raw.length; i += 2) {
        list[i] = raw[i]!.toLowerCase();
        list[i + 1] = raw[i + 1]!;
      }
      this.fieldsCache = new Fields(list);
    }
    return this.fieldsCache;
  }

  get id(): string {
    this.idCache ??= randomUUID().replaceAll("-", "");
    return this.idCache;
  }

  get vars(): Map<string, string> {
    this.varsMap ??= new Map();
    return this.varsMap;
  }

  /** Whether any var was set (without making the map). */
  get hasVars(): boolean {
    return this.varsMap !== undefined && this.varsMap.size > 0;
  }

  get signal(): AbortSignal {
    if (this.abortController === undefined) {
      this.abortController = new AbortController();
      if (this.abortReason !== undefined) this.abortController.abort(this.abortReason);
    }
    return this.abortController.signal;
  }

  /** `signal` without an AbortController: this request, as an {@link AbortLike}. */
  get clientGone(): AbortLike {
    return this;
  }

  addEventListener(_type: "abort", listener: () => void): void {
    if (this.abortReason !== undefined) return; // as AbortSignal: never fires again
    if (this.abortListeners === undefined) this.abortListeners = [listener];
    else this.abortListeners.push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const l = this.abortListeners;
    if (l === undefined) return;
    const i = l.indexOf(listener);
    if (i >= 0) l.splice(i, 1);
  }

  /** The client went away (or the worker stops fast). */
  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason ?? new Error("aborted");
    this.abortController?.abort(this.abortReason);
    const l = this.abortListeners;
    if (l === undefined) return;
    this.abortListeners = undefined;
    for (const fn of l) {
      try {
        fn();
      } catch (err) {
        // As an EventTarget does: reported, and the other listeners still run.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  get aborted(): boolean {
    return this.abortReason !== undefined;
  }
}

/**
 * A request body over a Node readable (an IncomingMessage, an HTTP/2 stream), read through a
 * counting pass-through: a declared length is enforced by the parser, a body without one
 * (chunked, HTTP/2) is counted against the limit as it streams and fails with 413; the engine
 * fails a stalled body with 408 (`fail`). Failing stops reading without destroying the source,
 * so the connection can still carry the error response.
 */
export class StreamBody implements RequestBody {
  readonly length: number | undefined;
  readonly empty: boolean;
  consumed = false;
  /** Body bytes read so far. */
  received = 0;
  /** The whole body arrived. */
  ended = false;
  private readonly source: Readable;
  private readonly limit: () => number;
  private readonly onStart: () => void;
  private out: Transform | undefined;
  private rateLast = 0;
  private waited = 0;

  constructor(
    source: Readable,
    length: number | undefined,
    empty: boolean,
    limit: () => number,
    onStart: () => void = () => {},
  ) {
    this.source = source;
    this.length = length;
    this.empty = empty;
    this.limit = limit;
    this.onStart = onStart;
  }

  stream(): Readable {
    if (this.consumed) throw new Error("the request body was already read");
    this.consumed = true;
    this.onStart();
    const limit = this.limit();
    const check = limit > 0 && this.length === undefined;
    const source = this.source;
    const out = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.received += chunk.length;
        if (check && this.received > limit) {
          source.unpipe(out);
          source.pause();
          cb(new HttpError(413, "request body larger than the limit", { close: true }));
          return;
        }
        cb(null, chunk);
      },
    });
    this.out = out;
    source.once("end", () => {
      this.ended = true;
    });
    source.once("error", (e) => out.destroy(e));
    source.once("aborted", () =>
      out.destroy(new HttpError(400, "client closed the request body", { close: true })),
    );
    source.pipe(out);
    return out;
  }

  /**
   * Whether the body arrives slower than `minRate` bytes/s: true once the time spent waiting on
   * the client (not on a reader that is slow to take what arrived) passes `graceMs` plus one
   * second per `minRate` bytes received. Called by the engine's sweep while the body is read.
   */
  tooSlow(now: number, minRate: number, graceMs: number): boolean {
    const out = this.out;
    if (out === undefined || this.ended) return false;
    if (this.rateLast === 0) {
      this.rateLast = now;
      return false;
    }
    // Data waiting in our buffers means the reader, not the client, is behind.
    if (out.readableLength === 0 && out.writableLength === 0) this.waited += now - this.rateLast;
    this.rateLast = now;
    return this.waited > graceMs + (this.received / minRate) * 1000;
  }

  /** Stop reading and fail the reader with `error` (the body timeout). */
  fail(error: Error): void {
    const out = this.out;
    if (out === undefined || out.destroyed) return;
    this.source.unpipe(out);
    this.source.pause();
    out.destroy(error);
  }

  async buffer(): Promise<Buffer> {
    if (this.empty) {
      this.consumed = true;
      return Buffer.alloc(0);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of this.stream()) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async discard(): Promise<void> {
    if (this.empty || this.consumed) return;
    const s = this.stream();
    await new Promise<void>((resolve) => {
      s.on("end", resolve);
      s.on("error", () => resolve());
      s.on("close", resolve);
      s.resume();
    });
  }
}

/** A body that is not there (upgrade requests, CONNECT). */
export const noBody: RequestBody = {
  length: undefined,
  empty: true,
  consumed: false,
  stream(): Readable {
    throw new Error("this request has no body");
  },
  buffer: async () => Buffer.alloc(0),
  discard: async () => {},
};

export { Fields };

/**
 * A stand-in for a request refused before it was parsed (a malformed head): what the access
 * log is given for it. Its `$request` is "-".
 */
export class RefusedRequest extends EngineRequest {
  readonly connection: WebConnection;
  readonly body: RequestBody = noBody;
  readonly canTakeover = false;
  readonly listenerKey: string;
  constructor(connection: WebConnection, scheme: "http" | "https") {
    super({
      method: "",
      target: "/",
      httpVersion: "1.1",
      authority: undefined,
      scheme,
      mergeSlashes: true,
    });
    this.connection = connection;
    this.listenerKey = connection.listener;
  }
  protected rawFields(): string[] {
    return [];
  }
}
