/**
 * A web server worker (the `WorkerMain` src/process/ starts): compiles the pipeline from the
 * config the master validated, serves each inherited listening socket with the engine, and on
 * stop drains (graceful) or drops (fast) its connections before closing the modules' files.
 */
import type { WorkerContext } from "../process/worker.ts";
import { WebEngine } from "./engine/listener.ts";
import type { EngineHandler } from "./engine/types.ts";
import { ConnectionCap } from "./limits/connections.ts";
import { Pipeline } from "./pipeline.ts";

/** `MasterOptions.workerData` of the web tier (JSON). */
export interface WebWorkerData {
  web: Parameters<typeof Pipeline.compile>[0]["web"];
  baseDir: string;
  source: string;
}

export default async function main(ctx: WorkerContext): Promise<void> {
  const data = ctx.data as WebWorkerData;
  const pipeline = await Pipeline.compile({
    web: data.web,
    baseDir: data.baseDir,
    serving: true,
    logger: ctx.logger,
    source: data.source,
    services: new Map<string, unknown>([
      ["sharedState", ctx.shared],
      ["stats", ctx.stats],
    ]),
  });
  const stats = ctx.stats;
  const handler: EngineHandler = {
    handle(req) {
      stats.requests++;
      return pipeline.handle(req);
    },
    rejected: (conn, status, reason) => pipeline.rejected(conn, status, reason),
  };
  const web = data.web;
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
    await engine.stop(graceful);
    await pipeline.close();
  });
  ctx.ready();
}
