/**
 * An app server worker (a `WorkerMain` run by src/process): loads the user's app behind the
 * gateway contract and serves it with node:http on the master's sockets.
 *
 * Boot, in order (gunicorn's worker init):
 * 0. move to the app tier's directory and umask, when the master has not (`brigade up`);
 * 1. import the config file again for the worker-side hooks (functions do not travel as JSON);
 * 2. `postFork(server, worker)`;
 * 3. switch to `user`/`group` (supplementary groups too), if set;
 * 4. load the app (`loadApp`: `path`, `path:name`, `path:factory()`); a failure is an
 *    AppLoadError and the master exits 4;
 * 5. `postWorkerInit(worker)`, then accept on every socket and tell the master it is ready.
 *
 * Each request goes through, in order: the head limits (414/431), the body limit (413), the
 * worker kind (when it may run), `preRequest`, the app (through the gateway bridge: deadline,
 * 500 isolation); and at its end: metrics, the access log, `postRequest`, `maxRequests`.
 * Requests node:http cannot parse get 400/408/413/431 from `clientError`, logged and counted.
 *
 * Stopping: a graceful stop (TERM, reload, TTOU, retirement) closes the acceptors, answers
 * every further request on an open connection with `Connection: close`, and closes a connection
 * with no request in progress once it has been quiet for half a second: cutting a busy
 * keep-alive connection the moment its last response went out races the client's next request
 * (which would fail, since it cannot know it was never read), while a connection quiet that long
 * is no more at risk than at any keep-alive expiry. Then it waits for `ctx.waitUntil` work, runs
 * `workerExit` and exits. A fast stop cuts everything.
 */
import { readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Config } from "../config/schema.ts";
import type { HookServer, HookWorker } from "../config/settings/app.ts";
import { createTrust, PendingWork, readForwarded, toNodeListener } from "../gateway/index.ts";
import type { WorkerContext, WorkerMain } from "../process/worker.ts";
import { Acceptor } from "./accept.ts";
import { AccessLogWriter, compileFormat, type Formatter } from "./accessLog.ts";
import { loadWorkerHooks } from "./hooks.ts";
import {
  answerClientError,
  bodyTooLarge,
  checkHead,
  clientErrorStatus,
  type Limits,
  limitBody,
  maxHeaderSize,
  maxHeadersCount,
  refuse,
} from "./limits.ts";
import { AppLoadError, formatAppLoadError, loadApp } from "./load.ts";
import { RequestMetrics } from "./metrics.ts";
import { AsyncKind } from "./workers/async.ts";
import type { Kind } from "./workers/kind.ts";
import { SyncKind } from "./workers/sync.ts";

/** `MasterOptions.workerData` of the app server: JSON, so no hooks in `app`. */
export interface AppWorkerData {
  app: Config["app"];
  /** The whole validated config, for hooks' `server.config`. */
  config: Record<string, unknown>;
  /** Where the app spec is resolved (after `chdir`); the worker moves there if it is not. */
  cwd: string;
  /** A umask for the worker to set (`brigade up`, whose master keeps its own). */
  umask?: number;
  /** The config file, imported again by workers for their hooks. */
  configFile: string | undefined;
  /** The worker-side hooks the config file defines. */
  workerHooks: string[];
  masterPid: number;
}

/** While draining, a connection with no request in progress closes after this much quiet. */
const drainQuietMs = 500;

interface InFlight {
  method: string;
  path: string;
  start: number;
  res: ServerResponse;
}

/** The primary group of a user, from /etc/passwd (Node has no getpwnam). */
function primaryGroup(user: string | number): number | undefined {
  let text: string;
  try {
    text = readFileSync("/etc/passwd", "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4) continue;
    if (f[0] === String(user) || (typeof user === "number" && f[2] === String(user))) {
      return Number(f[3]);
    }
  }
  return undefined;
}

/** Become `user`/`group` (gunicorn's set_owner_process). Throws AppLoadError when it cannot. */
function dropPrivileges(user: string | number | undefined, group: string | number | undefined) {
  if (user === undefined && group === undefined) return;
  const what = [
    user !== undefined ? `user ${user}` : "",
    group !== undefined ? `group ${group}` : "",
  ]
    .filter(Boolean)
    .join(" and ");
  try {
    const gid = group ?? (user !== undefined ? primaryGroup(user) : undefined);
    if (user !== undefined && gid === undefined) {
      throw new Error(`no primary group found for ${user} in /etc/passwd; set group`);
    }
    // initgroups is in Node (POSIX) but not in @types/node.
    const initgroups = (
      process as { initgroups?: (u: string | number, g: string | number) => void }
    ).initgroups;
    if (user !== undefined) initgroups?.(user, gid!);
    if (gid !== undefined) process.setgid!(gid);
    if (user !== undefined) process.setuid!(user);
  } catch (error) {
    throw new AppLoadError("spec", "", `cannot run as ${what}: ${(error as Error).message}`, error);
  }
}

const main: WorkerMain = async (ctx: WorkerContext) => {
  const data = ctx.data as AppWorkerData;
  const c = data.app;
  const logger = ctx.logger;
  // Under `brigade up` the master stays where it started: the app tier's workers move themselves.
  if (data.cwd !== process.cwd()) {
    try {
      process.chdir(data.cwd);
    } catch (error) {
      throw new AppLoadError(
        "spec",
        "",
        `cannot change directory to ${data.cwd} (app.chdir)`,
        error,
      );
    }
  }
  if (data.umask !== undefined) process.umask(data.umask);
  const hooks = await loadWorkerHooks(data.configFile, data.workerHooks, logger);
  const self: HookWorker = {
    id: ctx.id,
    pid: process.pid,
    generation: ctx.generation,
    logger,
  };
  const server: HookServer = { pid: data.masterPid, config: data.config, logger };
  await hooks.call("postFork", server, self);
  dropPrivileges(c.user, c.group);

  let app: Awaited<ReturnType<typeof loadApp>>;
  try {
    app = await loadApp(c.app!, { cwd: data.cwd });
  } catch (error) {
    if (!(error instanceof AppLoadError)) throw error;
    // Every worker fails the same way: only slot 1 reports at once, the others give the master
    // a moment to stop them, so the error and its stack are printed once.
    if (ctx.id !== 1) await new Promise((r) => setTimeout(r, 5000));
    const e = new AppLoadError(error.reason, error.file, error.message, error.cause);
    e.stack = formatAppLoadError(error);
    throw e;
  }

  const pending = new PendingWork(logger);
  const listener = toNodeListener(app, {
    logger,
    requestTimeout: c.requestTimeout,
    forwardedAllowIps: c.forwardedAllowIps,
    pending,
  });
  const trusted = createTrust(c.forwardedAllowIps);
  const limits: Limits = {
    requestLine: c.limitRequestLine,
    requestFields: c.limitRequestFields,
    requestFieldSize: c.limitRequestFieldSize,
    requestBody: c.limitRequestBody,
  };
  const metrics = new RequestMetrics(ctx.stats);
  let accessLog: AccessLogWriter | undefined;
  let format: Formatter | undefined;
  if (c.accessLog !== undefined) {
    format = compileFormat(c.accessLogFormat);
    accessLog = new AccessLogWriter(c.accessLog);
    const log = accessLog;
    ctx.onReopen(() => log.reopen());
  }
  const clientAddress = (req: IncomingMessage): string => {
    const peer = req.socket.remoteAddress;
    const h = req.headers;
    if ((h.forwarded !== undefined || h["x-forwarded-for"] !== undefined) && trusted(peer)) {
      const a = readForwarded(h, trusted).address;
      if (a !== undefined) return a;
    }
    return peer?.startsWith("::ffff:") ? peer.slice(7) : (peer ?? "");
  };
  const writeAccess = (
    req: IncomingMessage,
    res: ServerResponse | undefined,
    status: number,
    bytes: number | undefined,
    seconds: number,
    remote?: string,
  ) => {
    // Only with an access log: the client's address reads the forwarding headers.
    if (!accessLog || !format) return;
    try {
      accessLog.write(
        format({
          req,
          res,
          status,
          bytes,
          duration: seconds,
          remote: remote ?? clientAddress(req),
          end: new Date(),
        }),
      );
    } catch (error) {
      logger.error("cannot write the access log", { error });
    }
  };

  const maxRequests =
    c.maxRequests > 0 ? c.maxRequests + Math.floor(Math.random() * (c.maxRequestsJitter + 1)) : 0;
  let finishedRequests = 0;
  const inFlight = new Set<InFlight>();
  const connections = new Set<Socket>();
  /** Connections handed to the app by an upgrade: they last until the app or client ends them. */
  const upgraded = new Set<Socket>();
  /** Requests in progress per connection: a connection with none may be closed when quiet. */
  const activeRequests = Symbol("brigade.activeRequests");
  type Tracked = Socket & { [activeRequests]?: number };
  let draining = false;
  /** Stop accepting; responses not yet started close their connection; quiet ones close. */
  const drain = (): void => {
    if (draining) return;
    draining = true;
    kind.drain();
    for (const r of inFlight) if (!r.res.headersSent) r.res.shouldKeepAlive = false;
    for (const s of connections) if (!upgraded.has(s)) s.setTimeout(drainQuietMs);
  };

  // node:http never listens itself: acceptors hand it the connections they take.
  const http1 = http.createServer({
    maxHeaderSize: maxHeaderSize(limits),
    noDelay: true,
  });
  http1.maxHeadersCount = maxHeadersCount(limits);
  http1.keepAliveTimeout = c.keepAlive * 1000;
  // A socket timeout (keep-alive expiry, or quiet while draining) closes a connection only when
  // it has no request in progress. (node:http destroys any socket that times out when the
  // server has no 'timeout' listener; with this one it leaves the decision here.)
  http1.on("timeout", (socket: Socket) => {
    if (((socket as Tracked)[activeRequests] ?? 0) === 0) socket.destroy();
  });
  // Connection tracking (idle detection, header timeouts) starts on 'listening'.
  http1.emit("listening");

  const acceptors: Acceptor[] = [];
  const kind: Kind =
    c.workerClass === "sync"
      ? new SyncKind({ acceptors, maxConnections: c.workerConnections, keepAlive: false })
      : new AsyncKind({
          acceptors,
          maxConnections: c.workerConnections,
          keepAlive: c.keepAlive > 0,
        });
  let allClosed: (() => void) | undefined;
  const onSocket = (socket: Socket): void => {
    connections.add(socket);
    if (draining) socket.setTimeout(drainQuietMs);
    metrics.connectionOpened();
    kind.accepted(socket);
    socket.once("close", () => {
      connections.delete(socket);
      metrics.connectionClosed();
      kind.closed(socket);
      if (connections.size === 0) allClosed?.();
    });
    http1.emit("connection", socket);
  };
  ctx.listeners.forEach((l, i) => {
    acceptors.push(new Acceptor(ctx, i, l, onSocket, logger));
    // Further descriptors of the same socket (PoolOptions.acceptors): one more connection taken
    // per event-loop turn each; each pauses and resumes on its own copies like the first.
    if ("fd" in l)
      for (const fd of l.also ?? []) acceptors.push(new Acceptor(ctx, i, { fd }, onSocket, logger));
  });

  http1.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    const status = clientErrorStatus(err);
    logger.debug("bad request", { code: err.code, status, peer: (socket as Socket).remoteAddress });
    metrics.badRequest(status);
    if (status > 0 && accessLog) {
      const req = {
        method: undefined,
        url: undefined,
        headers: {},
        httpVersion: "",
        socket,
      } as unknown as IncomingMessage;
      writeAccess(req, undefined, status, 0, 0);
    }
    answerClientError(socket, status);
  });

  const serve = (req: IncomingMessage, res: ServerResponse): void => {
    const start = performance.now();
    const entry: InFlight = {
      method: req.method ?? "",
      path: req.url ?? "",
      start: Date.now(),
      res,
    };
    inFlight.add(entry);
    metrics.requestStarted();
    const socket = req.socket as Tracked;
    socket[activeRequests] = (socket[activeRequests] ?? 0) + 1;
    let bytes = 0;
    let counted = false;
    if (accessLog) {
      const write = res.write;
      const end = res.end;
      const count = (chunk: unknown, encoding?: unknown) => {
        if (chunk === undefined || chunk === null || typeof chunk === "function") return;
        bytes +=
          typeof chunk === "string"
            ? Buffer.byteLength(
                chunk,
                typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8",
              )
            : (chunk as { byteLength: number }).byteLength;
      };
      res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
        count(chunk, rest[0]);
        return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      } as typeof res.write;
      res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
        count(chunk, rest[0]);
        return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
      } as typeof res.end;
    }
    let ran = false;
    const done = (): void => {
      if (counted) return;
      counted = true;
      inFlight.delete(entry);
      socket[activeRequests] = (socket[activeRequests] ?? 1) - 1;
      const seconds = (performance.now() - start) / 1000;
      const status = res.headersSent ? res.statusCode : 0;
      metrics.requestEnded(status, seconds);
      writeAccess(req, res, status, req.method === "HEAD" ? 0 : bytes, seconds);
      if (hooks.has("postRequest")) {
        hooks.callSync("postRequest", self, req, res, { status, durationMs: seconds * 1000 });
      }
      if (ran) kind.finished();
      finishedRequests++;
      if (maxRequests > 0 && finishedRequests === maxRequests) {
        logger.info("max requests reached; asking to be replaced", { requests: finishedRequests });
        ctx.retire("max requests");
      }
    };
    // 'close' comes after 'finish', or alone when the connection died first.
    res.on("close", done);
    if (draining || !kind.keepAlive()) res.shouldKeepAlive = false;

    const head = checkHead(req, limits);
    if (head !== 0) {
      metrics.badRequest(0);
      refuse(res, head);
      return;
    }
    if (bodyTooLarge(req, limits)) {
      metrics.badRequest(0);
      refuse(res, 413);
      return;
    }
    const run = (): void => {
      ran = true;
      if (draining) res.shouldKeepAlive = false;
      if (limits.requestBody > 0) {
        limitBody(req, res, limits.requestBody, () => metrics.badRequest(0));
      }
      if (hooks.has("preRequest")) hooks.callSync("preRequest", self, req);
      listener(req, res);
    };
    kind.request(req.socket, () => res.destroyed || res.socket?.destroyed === true, run);
  };
  http1.on("request", serve);

  // Upgrades (WebSockets) go to the app's server object, as node:http would emit them there
  // (src/gateway/contract.ts). While it has no `upgrade` listener, node:http's own rule makes an
  // upgrade request an ordinary one; where `shouldUpgradeCallback` is missing (Node before
  // 24.9), that is decided once, now. An upgraded connection stays one of the worker's
  // connections until it closes (it counts toward `workerConnections`), is one request in
  // flight meanwhile (a sync worker serves nothing else), and is logged when it closes.
  const upgrades = app.kind === "node" ? app.upgrades : undefined;
  const perRequest = typeof (http1 as { shouldUpgradeCallback?: unknown }).shouldUpgradeCallback;
  if (upgrades && (perRequest === "function" || upgrades.listenerCount("upgrade") > 0)) {
    (http1 as { shouldUpgradeCallback?: (req: IncomingMessage) => boolean }).shouldUpgradeCallback =
      () => upgrades.listenerCount("upgrade") > 0;
    http1.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const start = performance.now();
      const remote = clientAddress(req);
      const limit = checkHead(req, limits);
      // A stopping worker takes no new long-lived connection: the client retries elsewhere.
      const refusal = limit !== 0 ? limit : draining ? 503 : 0;
      if (refusal !== 0) {
        metrics.badRequest(refusal);
        writeAccess(req, undefined, refusal, 0, 0, remote);
        answerClientError(socket, refusal);
        return;
      }
      upgraded.add(socket);
      metrics.requestStarted();
      // The status the app answered with: the first line it writes (a 101, or a refusal).
      let status = 0;
      const write = socket.write;
      socket.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
        socket.write = write;
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(
          typeof chunk === "string" ? chunk : String((chunk as Buffer).subarray?.(0, 16) ?? ""),
        );
        status = m ? Number(m[1]) : 0;
        return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      } as typeof socket.write;
      let ran = false;
      socket.once("close", () => {
        upgraded.delete(socket);
        const seconds = (performance.now() - start) / 1000;
        metrics.requestEnded(status, seconds);
        writeAccess(req, undefined, status, socket.bytesWritten, seconds, remote);
        if (ran) kind.finished();
      });
      kind.request(
        socket,
        () => socket.destroyed,
        () => {
          ran = true;
          try {
            upgrades.emit("upgrade", req, socket, head);
          } catch (error) {
            logger.error("app upgrade handler failed", { error, url: req.url });
            answerClientError(socket, 500);
          }
        },
      );
    });
  }

  ctx.onBlocked(() => {
    const now = Date.now();
    const out: Record<string, unknown> = {
      inFlight: [...inFlight].map((r) => ({
        method: r.method,
        path: r.path,
        ageMs: now - r.start,
      })),
    };
    const abort = hooks.get("workerAbort");
    if (abort) {
      try {
        const r = abort(self);
        if (r !== undefined && typeof (r as { then?: unknown }).then !== "function")
          out.workerAbort = r;
      } catch (error) {
        out.workerAbortError = String(error);
      }
    }
    return out;
  });

  if (c.maxWorkerMemory !== undefined) {
    const limit = c.maxWorkerMemory;
    const timer = setInterval(() => {
      const rss = process.memoryUsage.rss();
      if (rss <= limit || draining) return;
      clearInterval(timer);
      logger.warn("over the memory limit; no longer accepting, to be replaced", {
        rss,
        limit,
        inFlight: inFlight.size,
      });
      drain();
      ctx.retire("memory limit");
    }, 1000);
    timer.unref();
  }

  let exited = false;
  ctx.onStop(async (graceful) => {
    drain();
    if (!graceful) {
      await hooks.call("workerInt", self);
      http1.closeAllConnections();
      for (const s of connections) s.destroy();
    } else {
      // Busy connections close after their response (Connection: close), quiet ones through
      // their timeout (see drain). Upgraded ones get the grace period, less a second, to end by
      // themselves; then they are cut, so that the worker still ends by itself (workerExit).
      const cut = setTimeout(
        () => {
          if (upgraded.size > 0) {
            logger.info("closing upgraded connections at the end of the grace period", {
              connections: upgraded.size,
            });
          }
          for (const s of upgraded) s.destroy();
        },
        Math.max(0, c.gracefulTimeout * 1000 - 1000),
      );
      cut.unref();
      if (connections.size > 0) {
        await new Promise<void>((resolve) => {
          allClosed = resolve;
        });
      }
      clearTimeout(cut);
      await pending.settled(c.gracefulTimeout * 1000);
    }
    if (exited) return;
    exited = true;
    metrics.stop();
    await hooks.call("workerExit", server, self);
    await accessLog?.close();
  });

  await hooks.call("postWorkerInit", self);
  await Promise.all(acceptors.map((a) => a.start()));
  ctx.ready();
};

export default main;
