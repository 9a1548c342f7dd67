/**
 * The fetch → Node bridge: serve a fetch handler with node:http, and wrap Node listeners with
 * the same guarantees (deadline, error isolation), so a worker always hands node:http one
 * `(req, res)` listener whatever the app's shape.
 *
 * Guarantees, per request:
 * - the request body is streamed (backpressure pauses the socket);
 * - a response body that is one chunk (string, ArrayBuffer, Uint8Array) is written in one go
 *   with a Content-Length; a streamed body is written as it comes, waiting for `drain`;
 * - `request.signal` aborts when the client goes away and when the deadline passes;
 * - on the deadline the client gets 504 (or, if headers were already sent, the connection is
 *   destroyed), and the process lives on;
 * - a throw, a rejected promise or a non-Response from the handler is a 500 for that request
 *   only, logged with its stack;
 * - every Set-Cookie is kept; HEAD responses carry no body.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../core/logger.ts";
import { createLogger } from "../core/logger.ts";
import { PendingWork, RequestContext } from "./context.ts";
import type { FetchHandler, LoadedApp, NodeListener } from "./contract.ts";
import { createTrust, defaultForwardedAllowIps } from "./forwarded.ts";
import { LazyRequest } from "./request.ts";
import type { LightParts } from "./response.ts";
import { installLightResponse, LightResponse } from "./response.ts";

/** Options of {@link toNodeListener} / {@link fetchToNodeListener}. */
export interface BridgeOptions {
  /** Where failures are logged. Default: a logger on stderr. */
  logger?: Logger;
  /** Per-request deadline in seconds; 0 or absent: none. */
  requestTimeout?: number;
  /** Peers whose forwarding headers are believed (IPs, CIDRs, `unix`, `*`). */
  forwardedAllowIps?: readonly string[];
  /** Where `ctx.waitUntil()` work is tracked; pass one to drain it on a graceful stop. */
  pending?: PendingWork;
  /**
   * Replace `globalThis.Response` in this process with the lighter, compatible
   * {@link LightResponse} (see response.ts) when serving a fetch app. Default true: a worker
   * process runs one app, and this is most of the bridge's speed. False keeps undici's.
   */
  fastResponse?: boolean;
}

/** A `(req, res)` listener that also exposes the `waitUntil` work it started. */
export type BridgedListener = NodeListener & { readonly pending: PendingWork };

const SENTINEL = Symbol("not yet");
const internalError = "Internal Server Error\n";
const gatewayTimeout = "Gateway Timeout\n";

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

function isResponse(v: unknown): v is Response {
  if (v instanceof Response || v instanceof LightResponse) return true;
  // A Response from another copy of undici fails instanceof but has the same surface.
  const r = v as Partial<Response> | null;
  return (
    typeof r === "object" &&
    r !== null &&
    typeof r.status === "number" &&
    typeof r.headers?.get === "function" &&
    "body" in r
  );
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null)?.then === "function";
}

/** Flat header list for writeHead; notes whether the app set its own length/encoding. */
function headerList(response: Response): { list: string[]; framed: boolean } {
  const list: string[] = [];
  let framed = false;
  // Headers iteration yields each Set-Cookie on its own, so none are folded together.
  for (const [k, v] of response.headers) {
    if (k === "content-length" || k === "transfer-encoding") framed = true;
    list.push(k, v);
  }
  return { list, framed };
}

/** Per-request state shared by the handler's outcome, the deadline and the close event. */
class Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly request: LazyRequest;
  readonly logger: Logger;
  timer: NodeJS.Timeout | undefined;
  /** Set once a response (the app's, a 500 or a 504) has been chosen; later ones are dropped. */
  decided = false;
  reader: ReadableStreamDefaultReader<Uint8Array> | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, request: LazyRequest, logger: Logger) {
    this.req = req;
    this.res = res;
    this.request = request;
    this.logger = logger;
  }

  onClose = (): void => {
    clearTimeout(this.timer);
    if (!this.res.writableFinished) {
      const reason = new DOMException("the client closed the connection", "AbortError");
      this.request.abort(reason);
      this.reader?.cancel(reason).catch(() => {});
    }
  };

  onDeadline = (): void => {
    const reason = new DOMException("the request deadline passed", "TimeoutError");
    this.logger.warn("request deadline passed", {
      method: this.req.method,
      url: this.req.url,
      headersSent: this.res.headersSent,
    });
    this.request.abort(reason);
    this.reader?.cancel(reason).catch(() => {});
    if (this.res.headersSent) {
      this.res.destroy();
    } else if (!this.decided) {
      this.decided = true;
      plain(this.res, 504, gatewayTimeout);
    }
  };

  fail = (err: unknown): void => {
    const fields = { err, method: this.req.method, url: this.req.url };
    // A handler failing because its client left (body read cut short, signal aborted) is
    // the client's doing, not a bug in the app: no error-level noise for it.
    if (this.res.destroyed && !this.res.writableFinished) this.logger.info("client left", fields);
    else this.logger.error("app handler failed", fields);
    this.failQuietly();
  };

  failQuietly(): void {
    if (this.decided) return;
    this.decided = true;
    if (this.res.headersSent) this.res.destroy();
    else plain(this.res, 500, internalError);
  }

  send = (value: unknown): void => {
    if (this.decided) {
      // Too late (deadline already answered): let the app's stream go.
      if (isResponse(value) && !LightResponse.parts(value)) value.body?.cancel().catch(() => {});
      return;
    }
    if (!isResponse(value)) {
      this.logger.error("app handler returned no Response", {
        found: describe(value),
        method: this.req.method,
        url: this.req.url,
      });
      this.failQuietly();
      return;
    }
    this.decided = true;
    const parts = LightResponse.parts(value);
    if (parts !== undefined) {
      try {
        this.writeLight(parts);
      } catch (err) {
        // e.g. a header value node:http refuses; nothing was written yet.
        this.decided = false;
        this.fail(err);
      }
      return;
    }
    this.write(value).catch((err: unknown) => {
      this.logger.error("writing the response failed", {
        err,
        method: this.req.method,
        url: this.req.url,
      });
      if (!this.res.headersSent) plain(this.res, 500, internalError);
      else this.res.destroy();
    });
  };

  /** A light response: status, headers and a string/bytes body straight to the socket. */
  writeLight(parts: LightParts): void {
    const { res } = this;
    const list: string[] = [];
    let framed = false;
    let typed = false;
    const add = (k: string, v: string) => {
      const lower = k.toLowerCase();
      if (lower === "content-length" || lower === "transfer-encoding") framed = true;
      else if (lower === "content-type") typed = true;
      list.push(k, v);
    };
    const h = parts.headers;
    if (h === undefined) {
      // nothing
    } else if (h instanceof Headers) {
      for (const [k, v] of h) add(k, v);
    } else if (Array.isArray(h)) {
      for (const pair of h) add(pair[0]!, pair[1]!);
    } else {
      for (const k in h) add(k, String((h as Record<string, string>)[k]));
    }
    let body = parts.body;
    if (body instanceof ArrayBuffer) body = new Uint8Array(body);
    if (typeof body === "string") {
      if (!typed) list.push("content-type", "text/plain;charset=UTF-8");
      if (!framed) list.push("content-length", String(Buffer.byteLength(body)));
    } else if (!framed) {
      list.push("content-length", String(body === null ? 0 : body.byteLength));
    }
    if (parts.statusText) res.writeHead(parts.status, parts.statusText, list);
    else res.writeHead(parts.status, list);
    // A string body goes out in the same write as the head (node:http joins them).
    if (body === null || this.req.method === "HEAD") res.end();
    else res.end(body);
  }

  async write(response: Response): Promise<void> {
    const { res } = this;
    const { list, framed } = headerList(response);
    const status = response.status;
    const body = response.body;
    if (body === null || this.req.method === "HEAD") {
      if (body !== null) body.cancel().catch(() => {});
      res.writeHead(status, list);
      res.end();
      return;
    }
    const reader = body.getReader();
    this.reader = reader;
    // A body built from a string or bytes yields its one chunk and closes within the current
    // microtask run; a real stream usually does not. process.nextTick fires after the
    // microtasks, so racing against it tells the two apart without delaying a real stream's
    // headers or chunks by more than that.
    const pendingFirst = reader.read();
    const first = await nextTickRace(pendingFirst);
    if (first === SENTINEL) {
      res.writeHead(status, list);
      res.flushHeaders();
      return this.pump(reader, pendingFirst);
    }
    if (first.done) {
      if (!framed) list.push("content-length", "0");
      res.writeHead(status, list);
      res.end();
      return;
    }
    const pendingSecond = reader.read();
    const second = await nextTickRace(pendingSecond);
    if (second !== SENTINEL && second.done) {
      if (!framed) list.push("content-length", String(first.value.byteLength));
      res.writeHead(status, list);
      res.end(first.value);
      return;
    }
    res.writeHead(status, list);
    if (!res.write(first.value)) await drained(res);
    return this.pump(reader, pendingSecond);
  }

  /** Copy the rest of a streamed body, waiting for `drain` when the socket is full. */
  async pump(
    reader: ReadableStreamDefaultReader<Uint8Array>,
    pendingNext: Promise<ReadableStreamReadResult<Uint8Array>>,
  ): Promise<void> {
    const { res } = this;
    let next = await pendingNext;
    while (!next.done) {
      if (res.destroyed) return;
      if (!res.write(next.value)) {
        await drained(res);
        if (res.destroyed) return;
      }
      next = await reader.read();
    }
    if (!res.destroyed) res.end();
  }
}

function nextTickRace<T>(p: Promise<T>): Promise<T | typeof SENTINEL> {
  return Promise.race([
    p,
    new Promise<typeof SENTINEL>((resolve) => process.nextTick(resolve, SENTINEL)),
  ]);
}

/** Make a response's writing methods no-ops (after the bridge answered for the app). */
function silence(res: ServerResponse): void {
  const self = function (this: ServerResponse) {
    return this;
  };
  const r = res as unknown as Record<string, unknown>;
  for (const m of ["setHeader", "appendHeader", "writeHead", "end", "setHeaders"]) r[m] = self;
  for (const m of ["removeHeader", "flushHeaders", "writeContinue", "writeEarlyHints"])
    r[m] = () => {};
  r.write = () => true;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === "object") return `an object (${(v as object).constructor?.name ?? "Object"})`;
  return typeof v;
}

function resolveOptions(options: BridgeOptions): {
  logger: Logger;
  timeoutMs: number;
  settings: { trusted: ReturnType<typeof createTrust>; pending: PendingWork };
} {
  const logger = options.logger ?? createLogger();
  const timeoutMs = (options.requestTimeout ?? 0) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new TypeError(
      `requestTimeout must be a number of seconds >= 0, got ${options.requestTimeout}`,
    );
  }
  const trusted = createTrust(options.forwardedAllowIps ?? defaultForwardedAllowIps);
  const pending = options.pending ?? new PendingWork(logger);
  return { logger, timeoutMs, settings: { trusted, pending } };
}

/** Serve a fetch handler with node:http. See the module doc for the guarantees. */
export function fetchToNodeListener(
  handler: FetchHandler,
  options: BridgeOptions = {},
): BridgedListener {
  const { logger, timeoutMs, settings } = resolveOptions(options);
  if (options.fastResponse !== false) installLightResponse();
  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    const ctx = new RequestContext(req, settings);
    const request = new LazyRequest(req, () => {
      const target = req.url ?? "/";
      if (target.startsWith("http://") || target.startsWith("https://")) return target;
      // HTTP/1.0 may omit Host: name the local address instead (bracketed if IPv6).
      let host = req.headers.host;
      if (host === undefined) {
        const name = ctx.serverName;
        host = `${name.includes(":") ? `[${name}]` : name}:${ctx.serverPort}`;
      }
      return `${ctx.scheme}://${host}${target.startsWith("/") ? target : `/${target}`}`;
    });
    const ex = new Exchange(req, res, request, logger);
    res.once("close", ex.onClose);
    if (timeoutMs > 0) ex.timer = setTimeout(ex.onDeadline, timeoutMs).unref();
    let result: unknown;
    try {
      result = handler(request as unknown as Request, ctx);
    } catch (err) {
      ex.fail(err);
      return;
    }
    if (isThenable(result)) result.then(ex.send, ex.fail);
    else ex.send(result);
  };
  return Object.assign(listener, { pending: settings.pending });
}

/**
 * Wrap a Node listener with the deadline (504, or a destroyed connection once headers are out)
 * and error isolation (a synchronous throw is a 500). It also notices a listener that returns
 * a Response: the sign of a two-parameter fetch handler taken for a Node listener.
 */
export function wrapNodeListener(
  listener: NodeListener,
  options: BridgeOptions = {},
): BridgedListener {
  const { logger, timeoutMs, settings } = resolveOptions(options);
  const misdetected = (value: unknown, req: IncomingMessage, res: ServerResponse) => {
    if (!isResponse(value) || res.headersSent) return;
    logger.error(
      "the app returned a Response but was detected as a Node (req, res) listener because it " +
        "takes two parameters; export defineApp(handler) to declare a fetch handler",
      { url: req.url },
    );
    plain(res, 500, internalError);
  };
  const wrapped = (req: IncomingMessage, res: ServerResponse): void => {
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        logger.warn("request deadline passed", { method: req.method, url: req.url });
        if (res.headersSent) {
          res.destroy();
        } else {
          plain(res, 504, gatewayTimeout);
          // The app still holds `res`; a late res.send() would throw ERR_HTTP_HEADERS_SENT
          // from wherever it runs (a timer, say) and take the worker down with it.
          silence(res);
        }
      }, timeoutMs).unref();
      res.once("close", () => clearTimeout(timer));
    }
    let result: unknown;
    try {
      result = (listener as (req: IncomingMessage, res: ServerResponse) => unknown)(req, res);
    } catch (err) {
      logger.error("app handler failed", { err, method: req.method, url: req.url });
      if (res.headersSent) res.destroy();
      else plain(res, 500, internalError);
      return;
    }
    if (result === undefined) return;
    if (isThenable(result)) {
      result.then(
        (v) => misdetected(v, req, res),
        (err: unknown) => {
          logger.error("app handler failed", { err, method: req.method, url: req.url });
          if (res.headersSent) res.destroy();
          else if (!res.writableEnded) plain(res, 500, internalError);
        },
      );
    } else {
      misdetected(result, req, res);
    }
  };
  return Object.assign(wrapped, { pending: settings.pending });
}

/**
 * One `(req, res)` listener for any loaded app: what a worker hands node:http.
 *
 * @example
 * const app = await loadApp("app.ts", { cwd });
 * const pending = new PendingWork(logger);
 * const server = http.createServer(toNodeListener(app, { logger, requestTimeout: 30, pending }));
 * // on graceful stop: server.close(); await pending.settled(graceMs);
 */
export function toNodeListener(loaded: LoadedApp, options: BridgeOptions = {}): BridgedListener {
  return loaded.kind === "fetch"
    ? fetchToNodeListener(loaded.fetch, options)
    : wrapNodeListener(loaded.listener, options);
}
