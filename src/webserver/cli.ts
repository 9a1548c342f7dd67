/**
 * `brigade web`: compiles the pipeline in the master first (so a bad config, an unreadable
 * certificate or a module's refusal stops everything before a socket is bound, with every problem
 * listed), then runs the master from src/process/ with the web worker (worker.ts). On HUP the
 * config is loaded and compiled again; a failure keeps the running workers and is logged.
 *
 * `check` is what `brigade check` runs for the web section: the same compilation, nothing started.
 */
import { dirname } from "node:path";
import { displayPath } from "../config/load.ts";
import { ConfigError } from "../config/problems.ts";
import type { Config } from "../config/schema.ts";
import type { TierContext } from "../config/tier.ts";
import { ExitCode } from "../core/exitCodes.ts";
import type { Logger } from "../core/logger.ts";
import { type BoundListener, formatListen } from "../process/listen.ts";
import { type MasterOptions, runMaster } from "../process/master.ts";
import { WEB_ACCEPTORS } from "./engine/listener.ts";
import { Pipeline } from "./pipeline.ts";
import type { WebWorkerData } from "./worker.ts";

const workerModule = new URL("./worker.ts", import.meta.url).pathname;

function workerData(config: Config, file: string | undefined): WebWorkerData {
  return {
    web: config.web,
    baseDir: file ? dirname(file) : process.cwd(),
    source: file ? displayPath(file, process.cwd()) : "config",
  };
}

async function compile(config: Config, file: string | undefined, logger: Logger) {
  const data = workerData(config, file);
  return Pipeline.compile({ ...data, serving: false, logger });
}

/** Compile the web section without starting anything; the problems, or undefined when fine. */
export async function check(
  config: Config,
  file: string | undefined,
  logger: Logger,
): Promise<ConfigError | undefined> {
  try {
    const p = await compile(config, file, logger);
    await p.close();
    return undefined;
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
}

function masterOptions(config: Config, file: string | undefined, pipeline: Pipeline) {
  const web = config.web;
  return {
    workers: web.workers,
    workerData: workerData(config, file),
    listen: pipeline.listeners.map((l) => l.spec),
    timeout: web.timeout,
    gracefulTimeout: web.gracefulTimeout,
    pidfile: web.pidfile,
    mode: web.workerMode,
    execArgv: web.nodeArgs,
    acceptors: webAcceptors(pipeline),
  };
}

/**
 * `PoolOptions.acceptors` for web workers: `WEB_ACCEPTORS` descriptors of each plain-HTTP
 * listener, one of each TLS listener (each `tls.Server` has its own session ticket keys, so a
 * client resuming through another handle would get a full handshake). Matched by the address as
 * asked for (`BoundListener.key`); an address listed twice (port 0) gets one if either is TLS.
 */
export function webAcceptors(pipeline: Pipeline): (listener: BoundListener) => number {
  const tls = new Set(
    pipeline.listeners.filter((l) => l.plan.tls).map((l) => formatListen(l.spec)),
  );
  return (listener) => (tls.has(listener.key) ? 1 : WEB_ACCEPTORS);
}

/** Problems with combinations of the web tier's process settings, before anything starts. */
export function conflicts(web: Config["web"]): string[] {
  if (web.workerMode === "thread" && web.nodeArgs.length > 0) {
    return ["web.nodeArgs: thread workers share the master's Node; use workerMode process"];
  }
  return [];
}

export async function run(config: Config, ctx: TierContext): Promise<number> {
  const problems = conflicts(config.web);
  if (problems.length > 0) {
    for (const p of problems) ctx.logger.fatal(p);
    return ExitCode.config;
  }
  let pipeline: Pipeline;
  try {
    pipeline = await compile(config, ctx.file, ctx.logger);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const n = e.problems.length;
    process.stderr.write(
      `${e.message}\nbrigade web: ${n} problem${n === 1 ? "" : "s"} in the config\n`,
    );
    return ExitCode.config;
  }
  await pipeline.close();
  const options: MasterOptions = {
    name: "web",
    workerModule,
    ...masterOptions(config, ctx.file, pipeline),
    logger: ctx.logger,
    log: {
      level: config.log.level,
      format: config.log.format,
      file: config.log.errorLog === "-" ? undefined : config.log.errorLog,
    },
    reload: async () => {
      const next = await ctx.reload();
      const problems = conflicts(next.web);
      if (problems.length > 0) throw new Error(problems.join("; "));
      const p = await compile(next, ctx.file, ctx.logger);
      await p.close();
      return masterOptions(next, ctx.file, p);
    },
  };
  return runMaster(options);
}
