/**
 * A web server worker (the `WorkerMain` src/process/ starts): compiles the pipeline from the
 * config the master validated, serves each inherited listening socket with the engine, and on
 * stop drains (graceful) or drops (fast) its connections before closing the modules' files.
 *
 * `startWebWorker` is that core, shared with `brigade up`'s web worker (src/stack/webWorker.ts),
 * which adds its own steps through `WebWorkerOptions` rather than copying it: the services the
 * modules get (the master's shared state, the stats), the per-address connection cap, the
 * listeners, reopen on USR1 and the stop order are written here once.
 */
import type { WorkerContext } from "../process/worker.ts";
import { WebEngine } from "./engine/listener.ts";
import type { EngineHandler } from "./engine/types.ts";
import { ConnectionCap } from "./limits/connections.ts";
import { Pipeline } from "./pipeline.ts";
import { OpenTunnels, TUNNELS_SERVICE } from "./tunnels.ts";

/** `MasterOptions.workerData` of the web tier (JSON). */
export interface WebWorkerData {
  web: Parameters<typeof Pipeline.compile>[0]["web"];
  baseDir: string;
  source: string;
}

/** What a caller of {@link startWebWorker} adds to the web server's worker. */
export interface WebWorkerOptions {
  /** The web section to compile instead of `data.web` (the stack adds its `app` group). */
  web?: WebWorkerData["web"];
  /** Runs once the pipeline is compiled, before any socket is served. */
  compiled?(pipeline: Pipeline): void;
  /** The engine's handler, from the plain one (`pipeline.handle`, `pipeline.rejected`). */
  handler?(base: EngineHandler, pipeline: Pipeline): EngineHandler;
  /** Runs on stop once the engine has drained (or dropped) its connections, before files close. */
  stopped?(graceful: boolean): void | Promise<void>;
}

/**
 * Compile, serve every listener, register reopen and stop. The caller calls `ctx.ready()` (after
 * its own steps, if any).
 */
export async function startWebWorker(
  ctx: WorkerContext,
  data: WebWorkerData,
  options: WebWorkerOptions = {},
): Promise<{ pipeline: Pipeline; engine: WebEngine }> {
  const web = options.web ?? data.web;
  const tunnels = new OpenTunnels();
  const pipeline = await Pipeline.compile({
    web,
    baseDir: data.baseDir,
    serving: true,
    logger: ctx.logger,
    source: data.source,
    // Limits count across workers through the master; the cache counts into the stats.
    services: new Map<string, unknown>([
      ["sharedState", ctx.shared],
      ["stats", ctx.stats],
      [TUNNELS_SERVICE, tunnels],
    ]),
  });
  options.compiled?.(pipeline);
  const base: EngineHandler = {
    handle: (req) => pipeline.handle(req),
    rejected: (conn, status, reason) => pipeline.rejected(conn, status, reason),
  };
  const handler = options.handler ? options.handler(base, pipeline) : base;
  // The per-address connection cap counts across workers through the master's shared state.
  const cap =
    web.maxConnectionsPerAddress > 0
      ? new ConnectionCap({
          max: web.maxConnectionsPerAddress,
          exempt: web.maxConnectionsExempt,
          shared: ctx.shared,
          logger: ctx.logger,
        })
      : undefined;
  const engine = new WebEngine(handler, {
    ...pipeline.engineOptions,
    logger: ctx.logger,
    admit: cap?.admit,
  });
  if (ctx.listeners.length !== pipeline.listeners.length) {
    throw new Error(
      `the master gave ${ctx.listeners.length} listening sockets for ${pipeline.listeners.length} listeners`,
    );
  }
  await Promise.all(
    pipeline.listeners.map(async (l, i) => {
      const address = await engine.listen(l.plan, ctx.listeners[i]!);
      if (address !== null && typeof address === "object") pipeline.bound(l.plan.key, address.port);
    }),
  );
  ctx.onReopen(() => pipeline.reopen());
  ctx.onStop(async (graceful) => {
    // Tunnels (WebSocket, CONNECT) are the engine's no more: they run until they end or the
    // grace period is nearly over (a second left, so the worker exits by itself).
    const cutAt = performance.now() + web.gracefulTimeout * 1000 - 1000;
    if (!graceful) tunnels.closeAll(ctx.logger);
    await engine.stop(graceful);
    if (graceful) await tunnels.drain(Math.max(0, cutAt - performance.now()), ctx.logger);
    await options.stopped?.(graceful);
    await pipeline.close();
  });
  return { pipeline, engine };
}

export default async function main(ctx: WorkerContext): Promise<void> {
  const stats = ctx.stats;
  await startWebWorker(ctx, ctx.data as WebWorkerData, {
    handler: (base) => ({
      handle(req) {
        stats.requests++;
        return base.handle(req);
      },
      rejected: base.rejected,
    }),
  });
  ctx.ready();
}
