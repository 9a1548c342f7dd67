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
} from "../process/master.ts";
import { Hooks, hooksFrom } from "./hooks.ts";
import { AppLoadError, formatAppLoadError, loadApp } from "./load.ts";
import { MetricsAggregator } from "./metrics.ts";
import { watchForReload } from "./reloader.ts";
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

/** What each app worker gets as `ctx.data` (also for `brigade up`'s app pool). */
export function workerData(config: Config, file: string | undefined): AppWorkerData {
  const json = jsonConfig(config);
  return {
    app: json.app as Config["app"],
    config: json,
    cwd: process.cwd(),
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

  let current = config;
  const serverInfo = (): HookServer => ({ pid: process.pid, config: current, logger });
  let hooks = new Hooks(hooksFrom(config, masterHookNames), logger);
  await hooks.call("onStarting", serverInfo());

  if (a.preload) {
    try {
      await loadApp(a.app!, { cwd: process.cwd() });
      logger.info("app preloaded in the master", { app: a.app });
    } catch (error) {
      if (!(error instanceof AppLoadError)) throw error;
      const e = new AppLoadError(error.reason, error.file, error.message, error.cause);
      e.stack = formatAppLoadError(error);
      logger.fatal("the app cannot be loaded (preload)", { error: e });
      return ExitCode.appLoad;
    }
  }

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
      for (const key of restartOnly) {
        if (JSON.stringify(next.app[key]) !== JSON.stringify(current.app[key])) {
          logger.warn(`app.${key} changed; it takes effect on a restart, not a reload`);
        }
      }
      setEnv(next.app.env);
      current = next;
      hooks = new Hooks(hooksFrom(next, masterHookNames), logger);
      await hooks.call("onReload", serverInfo());
      return masterOptions(next, ctx.file);
    },
    hooks: {
      onReady: () => {
        void hooks.call("whenReady", serverInfo());
      },
      onWorkerExit: (info, exit) => {
        aggregator.workerExited(info, exit);
        if (hooks.has("childExit")) {
          const w: HookExitedWorker = {
            id: info.id,
            pid: info.pid,
            generation: info.generation,
            code: exit.code,
            signal: exit.signal,
            reason: exit.reason,
          };
          hooks.callSync("childExit", serverInfo(), w);
        }
      },
    },
  };
  master = new Master(options);
  const watcher = a.reload
    ? watchForReload({
        app: a.app!,
        cwd: process.cwd(),
        configFile: ctx.file,
        extra: a.reloadExtraFiles,
        logger,
        onChange: () => master?.enqueue("reload"),
      })
    : undefined;
  let code: number;
  try {
    code = await master.run();
  } finally {
    watcher?.close();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
  }
  await hooks.call("onExit", serverInfo());
  return code;
}
