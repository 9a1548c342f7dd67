/**
 * `brigade app`: the app server's master. The command line has validated the config; this
 * applies the process-wide settings, runs the master of src/process with the app worker
 * (./worker.ts), and adds what only the app tier has: server hooks, preload, the development
 * reloader and the metrics endpoint.
 *
 * Order (gunicorn's arbiter): `chdir`, `umask`, `env`; `onStarting`; `preload` (an app that
 * cannot load stops here, exit 4, before anything listens); the metrics endpoint; then the
 * master binds, spawns, and supervises until stopped; `whenReady` once all workers are ready;
 * `childExit` after every worker exit; `onReload` on HUP; `onExit` last.
 *
 * A reload (HUP, or a file change with `reload`) reads the config again: the sockets, the worker
 * count, the timeouts and every setting workers use take effect with the new generation of
 * workers; the master's own settings (`chdir`, `umask`, `user`, `group`, `workerMode`,
 * `metricsBind`, `pidfile`, `reload`) need a restart, and a change to one is logged.
 */
import http from "node:http";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "../config/schema.ts";
import type { HookExitedWorker, HookServer } from "../config/settings/app.ts";
import { workerHookNames } from "../config/settings/app.ts";
import type { TierContext } from "../config/tier.ts";
import { ExitCode } from "../core/exitCodes.ts";
import type { Logger } from "../core/logger.ts";
import {
  Master,
  type MasterOptions,
  parseListen,
  type ReloadableOptions,
  type WorkerExit,
  type WorkerInfo,
} from "../process/master.ts";
import { APP_ACCEPTORS } from "./accept.ts";
import { Hooks, hooksFrom } from "./hooks.ts";
import { AppLoadError, formatAppLoadError, loadApp } from "./load.ts";
import { MetricsAggregator } from "./metrics.ts";
import { type ReloadWatch, watchForReload } from "./reloader.ts";
import type { AppWorkerData } from "./worker.ts";

/** The app worker module (also what `brigade up` runs in its app pool). */
export const workerModule = fileURLToPath(new URL("./worker.ts", import.meta.url));
const masterHookNames = ["onStarting", "onReload", "whenReady", "childExit", "onExit"] as const;
/** Settings only a restart applies. */
const restartOnly = [
  "chdir",
  "umask",
  "user",
  "group",
  "workerMode",
  "metricsBind",
  "pidfile",
  "reload",
  "preload",
] as const;

/** Problems with combinations of settings, before anything starts. */
export function conflicts(a: Config["app"]): string[] {
  const out: string[] = [];
  if (a.workerMode === "thread") {
    if (a.workerClass === "sync") {
      out.push("app.workerClass: sync workers need workerMode process (they pause accepting)");
    }
    if (a.user !== undefined || a.group !== undefined) {
      out.push("app.user/app.group: threads share the master's process; use workerMode process");
    }
    if (a.bind.some((b) => b.startsWith("unix:"))) {
      out.push("app.bind: thread workers cannot share a unix socket; use workerMode process");
    }
    if (a.nodeArgs.length > 0) {
      out.push("app.nodeArgs: thread workers share the master's Node; use workerMode process");
    }
  }
  return out;
}

/** Apply `app.env` (KEY=value) to this process, so workers inherit it. */
export function setEnv(assignments: readonly string[]): void {
  for (const kv of assignments) {
    const eq = kv.indexOf("=");
    process.env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
}

/** The validated config as JSON (hooks are functions and stay behind). */
function jsonConfig(config: Config): Record<string, unknown> {
  return JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
}

/**
 * What each app worker gets as `ctx.data` (also for `brigade up`'s app pool, which passes the
 * app tier's directory and umask: its master does not change its own).
 */
export function workerData(
  config: Config,
  file: string | undefined,
  place: { cwd?: string; umask?: number | undefined } = {},
): AppWorkerData {
  const json = jsonConfig(config);
  return {
    app: json.app as Config["app"],
    config: json,
    cwd: place.cwd ?? process.cwd(),
    ...(place.umask !== undefined ? { umask: place.umask } : {}),
    configFile: file,
    workerHooks: workerHookNames.filter(
      (n) => typeof (config.app as Record<string, unknown>)[n] === "function",
    ),
    masterPid: process.pid,
  };
}

function masterOptions(config: Config, file: string | undefined): ReloadableOptions {
  const a = config.app;
  return {
    workers: a.workers,
    workerData: workerData(config, file),
    listen: a.bind.map(parseListen),
    timeout: a.timeout,
    gracefulTimeout: a.gracefulTimeout,
    stackOnTimeout: a.stackOnTimeout,
    log: { level: config.log.level, format: config.log.format, file: config.log.errorLog },
    execArgv: a.nodeArgs,
    // Async workers take a burst of new connections several per turn (docs/appserver.md); a
    // sync worker takes one at a time anyway.
    acceptors: a.workerClass === "async" ? APP_ACCEPTORS : 1,
  };
}

/** Serve `/metrics` from the master; resolves once listening. */
async function startMetrics(
  address: string,
  render: () => string,
  logger: Logger,
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("see /metrics\n");
      return;
    }
    let body: string;
    try {
      body = render();
    } catch (error) {
      logger.error("cannot render metrics", { error });
      res.writeHead(500).end();
      return;
    }
    res.writeHead(200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
      "content-length": Buffer.byteLength(body),
    });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  server.keepAliveTimeout = 5000;
  const spec = parseListen(address);
  await new Promise<void>((resolvePromise, reject) => {
    server.once("error", reject);
    if (spec.kind === "unix") server.listen(spec.path, () => resolvePromise());
    else server.listen(spec.port, spec.host, () => resolvePromise());
  });
  const where = server.address();
  logger.info("metrics at /metrics", {
    address: typeof where === "string" ? `unix:${where}` : `${where?.address}:${where?.port}`,
  });
  return server;
}

/**
 * The app tier's master side, for `brigade app` and for `brigade up`'s app pool, with the same
 * meaning under both: the master hooks (`onStarting`, `whenReady`, `onReload`, `childExit`,
 * `onExit`), preload, the development reloader, and the warnings for settings that only a
 * restart applies. The caller runs the master and calls each step at its moment.
 */
export class AppMasterSide {
  private current: Config;
  private hooks: Hooks;
  private readonly file: string | undefined;
  private readonly logger: Logger;
  /** Where the app spec and the reloader's paths are resolved. */
  readonly cwd: string;

  constructor(config: Config, file: string | undefined, logger: Logger, cwd = process.cwd()) {
    this.current = config;
    this.file = file;
    this.logger = logger;
    this.cwd = cwd;
    this.hooks = new Hooks(hooksFrom(config, masterHookNames), logger);
  }

  /** What master hooks get as `server`. */
  server(): HookServer {
    return { pid: process.pid, config: this.current, logger: this.logger };
  }

  /**
   * Before anything is bound: `onStarting`, then `preload`. Resolves with an exit code when the
   * app cannot be loaded (ExitCode.appLoad, its error logged with its stack), else undefined.
   */
  async starting(): Promise<number | undefined> {
    await this.hooks.call("onStarting", this.server());
    const a = this.current.app;
    if (!a.preload) return undefined;
    try {
      await loadApp(a.app!, { cwd: this.cwd });
      this.logger.info("app preloaded in the master", { app: a.app });
    } catch (error) {
      if (!(error instanceof AppLoadError)) throw error;
      const e = new AppLoadError(error.reason, error.file, error.message, error.cause);
      e.stack = formatAppLoadError(error);
      this.logger.fatal("the app cannot be loaded (preload)", { error: e });
      return ExitCode.appLoad;
    }
    return undefined;
  }

  /**
   * A reload read `next` (already validated): warn about what needs a restart, apply `env`, take
   * the new config's hooks, and run `onReload`.
   */
  async reloaded(next: Config): Promise<void> {
    for (const key of restartOnly) {
      if (JSON.stringify(next.app[key]) !== JSON.stringify(this.current.app[key])) {
        this.logger.warn(`app.${key} changed; it takes effect on a restart, not a reload`);
      }
    }
    setEnv(next.app.env);
    this.current = next;
    this.hooks = new Hooks(hooksFrom(next, masterHookNames), this.logger);
    await this.hooks.call("onReload", this.server());
  }

  /** The first full set of workers is ready: `whenReady`. */
  ready(): void {
    void this.hooks.call("whenReady", this.server());
  }

  /** An app worker ended: `childExit`. */
  workerExited(info: WorkerInfo, exit: WorkerExit): void {
    if (!this.hooks.has("childExit")) return;
    const w: HookExitedWorker = {
      id: info.id,
      pid: info.pid,
      generation: info.generation,
      code: exit.code,
      signal: exit.signal,
      reason: exit.reason,
    };
    this.hooks.callSync("childExit", this.server(), w);
  }

  /** With `reload` (development), watch the sources and call `reload` on a change. */
  watch(reload: () => void): ReloadWatch | undefined {
    const a = this.current.app;
    if (!a.reload) return undefined;
    return watchForReload({
      app: a.app!,
      cwd: this.cwd,
      configFile: this.file,
      extra: a.reloadExtraFiles,
      logger: this.logger,
      onChange: reload,
    });
  }

  /** Last: `onExit`. */
  async exit(): Promise<void> {
    await this.hooks.call("onExit", this.server());
  }
}

export async function run(config: Config, ctx: TierContext): Promise<number> {
  const logger = ctx.logger.child({ tier: "app" });
  const a = config.app;
  const problems = conflicts(a);
  if (problems.length > 0) {
    for (const p of problems) logger.fatal(p);
    return ExitCode.config;
  }
  try {
    if (a.chdir !== undefined) process.chdir(resolve(a.chdir));
  } catch (error) {
    logger.fatal("cannot change directory (app.chdir)", { dir: a.chdir, error });
    return ExitCode.config;
  }
  if (a.umask !== undefined) process.umask(a.umask);
  setEnv(a.env);

  const side = new AppMasterSide(config, ctx.file, logger);
  const failed = await side.starting();
  if (failed !== undefined) return failed;

  const aggregator = new MetricsAggregator();
  let master: Master | undefined;
  let metricsServer: http.Server | undefined;
  if (a.metricsBind !== undefined) {
    try {
      metricsServer = await startMetrics(
        a.metricsBind,
        () => aggregator.render(master!.snapshot()),
        logger,
      );
    } catch (error) {
      logger.fatal("cannot serve metrics (app.metricsBind)", { address: a.metricsBind, error });
      return ExitCode.failure;
    }
  }

  const options: MasterOptions = {
    name: "app",
    workerModule,
    mode: a.workerMode,
    pidfile: a.pidfile,
    logger,
    ...(masterOptions(config, ctx.file) as Required<
      Pick<MasterOptions, "workers" | "workerData" | "listen" | "timeout" | "gracefulTimeout">
    >),
    stackOnTimeout: a.stackOnTimeout,
    log: { level: config.log.level, format: config.log.format, file: config.log.errorLog },
    reload: async () => {
      const next = await ctx.reload();
      const problems = conflicts(next.app);
      if (problems.length > 0) throw new Error(problems.join("; "));
      await side.reloaded(next);
      return masterOptions(next, ctx.file);
    },
    hooks: {
      onReady: () => side.ready(),
      onWorkerExit: (info, exit) => {
        aggregator.workerExited(info, exit);
        side.workerExited(info, exit);
      },
    },
  };
  master = new Master(options);
  const watcher = side.watch(() => master?.enqueue("reload"));
  let code: number;
  try {
    code = await master.run();
  } finally {
    watcher?.close();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
  }
  await side.exit();
  return code;
}
