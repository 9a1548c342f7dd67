/**
 * `brigade up`: both tiers on one machine under one master (src/process with two pools).
 *
 * - The `app` pool runs the app server's workers (src/appserver/worker.ts, unchanged), each on
 *   a unix socket of its own in the runtime directory (`workerListen`), reloaded one at a time
 *   with a canary (`reloadStrategy: "rolling"`, canary.ts judges).
 * - The `web` pool runs the stack's web workers (webWorker.ts) on the web listeners; it starts
 *   once the app pool is ready, and stops first.
 * - The master feeds the web workers the table of ready app workers (peers.ts) and their load,
 *   aggregates both tiers' metrics (metrics.ts), serves the admin listener (admin.ts: liveness,
 *   readiness, metrics, dashboard) and the control socket (control.ts), and prints a readiness
 *   summary on standard output once everything is up.
 *
 * Before anything starts, the config is checked as `brigade web` and `brigade app` would (the
 * web pipeline compiled in the master, the app tier's conflicts) plus what only the stack has
 * (plan.ts); each problem is printed with its setting, exit 2.
 */
import { mkdirSync, statSync } from "node:fs";
import type http from "node:http";
import { dirname, resolve } from "node:path";
import {
  AppMasterSide,
  conflicts as appConflicts,
  workerData as appWorkerData,
  workerModule as appWorkerModule,
  setEnv,
} from "../appserver/cli.ts";
import { displayPath } from "../config/load.ts";
import { ConfigError } from "../config/problems.ts";
import type { Config } from "../config/schema.ts";
import type { TierContext } from "../config/tier.ts";
import { ExitCode } from "../core/exitCodes.ts";
import type { Logger } from "../core/logger.ts";
import { peekInheritedFds } from "../process/listen.ts";
import { Master, type PoolChanges, type PoolSpec, type WorkerInfo } from "../process/master.ts";
import { normalizeGroup } from "../upstream/index.ts";
import { webAcceptors, conflicts as webConflicts } from "../webserver/cli.ts";
import { Pipeline } from "../webserver/pipeline.ts";
import { startAdmin } from "./admin.ts";
import { CanaryJudge } from "./canary.ts";
import { type StackStatus, startControl, type TierStatus } from "./control.ts";
import { AppLeases, LEASE_TOPIC } from "./leases.ts";
import { StackMetrics } from "./metrics.ts";
import { AppPeers } from "./peers.ts";
import {
  APP_GROUP,
  appGroup,
  appPeer,
  appSocket,
  controlSocket,
  problems,
  runtimeDir,
  staticRoot,
  webSection,
} from "./plan.ts";
import type { PeerView, StackWebData } from "./webWorker.ts";

const webWorkerModule = new URL("./webWorker.ts", import.meta.url).pathname;
/** The admin listener's key among the descriptors handed to a USR2 successor. */
const ADMIN_FD_KEY = "stack:admin";

function webData(config: Config, file: string | undefined, dir: string): StackWebData {
  return {
    web: webSection(config),
    baseDir: file ? dirname(file) : process.cwd(),
    source: file ? displayPath(file, process.cwd()) : "config",
    appGroup: appGroup(config),
    appPeer: appPeer(config, "unix:/"),
    nobody: `unix:${dir}/none.sock`,
    appLeases: config.app.workerClass === "sync" && config.stack.appLeases,
  };
}

/** Compile the web tier as its workers will (nothing opened): every config problem, at once. */
async function compileWeb(data: StackWebData, logger: Logger): Promise<Pipeline> {
  const web = structuredClone(data.web);
  (web.upstreams as Record<string, unknown>)[APP_GROUP] = normalizeGroup(
    { ...data.appGroup, peers: [{ address: data.nobody, down: true }] },
    `web.upstreams.${APP_GROUP}`,
  );
  return Pipeline.compile({
    web,
    baseDir: data.baseDir,
    serving: false,
    logger,
    source: data.source,
  });
}

/** `brigade check` of a config that names an app: its web section as `brigade up` compiles it. */
export async function checkWeb(
  config: Config,
  file: string | undefined,
  logger: Logger,
): Promise<ConfigError | undefined> {
  try {
    const p = await compileWeb(webData(config, file, runtimeDir(config, file)), logger);
    await p.close();
    return undefined;
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
}

/** The problems of a config for `brigade up`, as lines naming each setting; empty when fine. */
async function check(config: Config, file: string | undefined, dir: string, logger: Logger) {
  const out = [...problems(config), ...appConflicts(config.app), ...webConflicts(config.web)];
  let pipeline: Pipeline | undefined;
  try {
    pipeline = await compileWeb(webData(config, file, dir), logger);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    out.push(e.message);
  }
  return { problems: out, pipeline };
}

/** Where the app tier runs (`app.chdir`, `app.umask`): fixed at start, as under `brigade app`. */
interface AppPlace {
  cwd: string;
  umask: number | undefined;
}

function pools(
  config: Config,
  file: string | undefined,
  dir: string,
  pipeline: Pipeline,
  place: AppPlace,
) {
  const log = {
    level: config.log.level,
    format: config.log.format,
    file: config.log.errorLog === "-" ? undefined : config.log.errorLog,
  };
  const a = config.app;
  const w = config.web;
  const app: PoolChanges = {
    workers: a.workers,
    workerModule: appWorkerModule,
    workerData: appWorkerData(config, file, place),
    listen: [],
    workerListen: (slot, serial) => [{ kind: "unix", path: appSocket(dir, slot, serial) }],
    timeout: a.timeout,
    gracefulTimeout: a.gracefulTimeout,
    stackOnTimeout: a.stackOnTimeout,
    reloadStrategy: "rolling",
    canaryMs: config.stack.canary * 1000,
    log,
    execArgv: a.nodeArgs,
  };
  const web: PoolChanges = {
    workers: w.workers,
    workerModule: webWorkerModule,
    workerData: webData(config, file, dir),
    listen: pipeline.listeners.map((l) => l.spec),
    timeout: w.timeout,
    gracefulTimeout: w.gracefulTimeout,
    mode: w.workerMode,
    log,
    execArgv: w.nodeArgs,
    acceptors: webAcceptors(pipeline),
  };
  return { app, web };
}

function tierStatus(snap: ReturnType<Master["snapshot"]>, tier: "web" | "app"): TierStatus {
  const p = snap.pools.find((x) => x.name === tier)!;
  return {
    generation: p.generation,
    target: p.workers,
    reloading: p.reloading,
    workers: p.workerList.map((w) => ({
      id: w.id,
      pid: w.pid,
      state: w.state,
      generation: w.generation,
      ageMs: w.ageMs,
      requests: w.requests,
      rss: w.rss,
      inflight: w.stats.inflight ?? 0,
      lagP99: w.stats.lag_p99 ?? 0,
    })),
  };
}

export async function run(config: Config, ctx: TierContext): Promise<number> {
  const logger = ctx.logger;
  const dir = runtimeDir(config, ctx.file);
  const checked = await check(config, ctx.file, dir, logger);
  if (checked.problems.length > 0) {
    const n = checked.problems.length;
    process.stderr.write(
      `${checked.problems.join("\n")}\nbrigade up: ${n} problem${n === 1 ? "" : "s"} in the config\n`,
    );
    return ExitCode.config;
  }
  const pipeline = checked.pipeline!;
  await pipeline.close();
  if (config.app.bind.join() !== "127.0.0.1:8000") {
    logger.warn(
      "app.bind is not used by brigade up: app workers listen on their own unix sockets",
      {
        runtimeDir: dir,
      },
    );
  }
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    logger.fatal("cannot create the runtime directory (stack.runtimeDir)", { dir, error });
    return ExitCode.failure;
  }
  const place: AppPlace = {
    cwd: resolve(config.app.chdir ?? "."),
    umask: config.app.umask,
  };
  if (!isDirectory(place.cwd)) {
    process.stderr.write(
      `app.chdir: ${config.app.chdir} is not a directory\nbrigade up: 1 problem in the config\n`,
    );
    return ExitCode.config;
  }
  setEnv(config.app.env);
  // The app tier's master side (hooks, preload, the reloader), as under brigade app.
  const side = new AppMasterSide(config, ctx.file, logger, place.cwd);
  const failed = await side.starting();
  if (failed !== undefined) return failed;

  let current = config;
  const metrics = new StackMetrics();
  const peers = new AppPeers();
  const leases = new AppLeases(
    () => peers.table().peers,
    (slot, body) => master?.send("web", LEASE_TOPIC, body, slot),
  );
  /** Whether the web tier leases sync app workers from the master (it follows reloads). */
  const leasing = (): boolean => current.app.workerClass === "sync" && current.stack.appLeases;
  const judge = new CanaryJudge(config.stack.canaryMinRequests);
  const views = peers.views;
  let master: Master | undefined;
  let ready = false;
  let lastReload: StackStatus["lastReload"] = null;
  let reloadWaiters: ((r: { ok: boolean; generation: number; reason?: string }) => void)[] = [];
  let admin: { server: http.Server; address: string; fd: number | undefined } | undefined;
  let control: http.Server | undefined;
  // A USR2 successor (src/process/master.ts) inherits the web listeners, which its master
  // adopts, and the admin listener, adopted here; it takes the control socket's path over.
  const inherited = peekInheritedFds();
  const successor = inherited.size > 0;

  const status = (): StackStatus => {
    const snap = master!.snapshot();
    const web = metrics.totals(snap, "web");
    const cacheKeys = Object.keys(web).filter((k) => k.startsWith("cache_"));
    const cacheUsed = cacheKeys.some((k) => (web[k] ?? 0) > 0);
    const byAddress = new Map<string, PeerStatus>();
    type PeerStatus = StackStatus["peers"][number];
    for (const w of snap.workerList) {
      if (w.pool !== "app") continue;
      const address = peers.addressOf(w.pid);
      if (address) byAddress.set(address, { address, pid: w.pid, views: [] });
    }
    for (const [webPid, list] of views) {
      for (const v of list) {
        if (v.server === `unix:${dir}/none.sock`) continue;
        const p = byAddress.get(v.server) ?? { address: v.server, pid: undefined, views: [] };
        p.views.push({
          webPid,
          state: v.state,
          active: v.active,
          requests: v.requests,
          failures: v.failures,
        });
        byAddress.set(v.server, p);
      }
    }
    return {
      pid: process.pid,
      startedAt: snap.startedAt,
      ready: ready && !master!.isStopping,
      stopping: master!.isStopping,
      config: ctx.file ? displayPath(ctx.file, process.cwd()) : null,
      app: current.app.app ?? "",
      workerClass: current.app.workerClass,
      runtimeDir: dir,
      listeners: snap.pools.find((p) => p.name === "web")!.listeners,
      admin: admin?.address ?? null,
      tiers: { web: tierStatus(snap, "web"), app: tierStatus(snap, "app") },
      peers: [...byAddress.values()].sort((a, b) => a.address.localeCompare(b.address)),
      cache: cacheUsed ? Object.fromEntries(cacheKeys.map((k) => [k.slice(6), web[k] ?? 0])) : null,
      leases: leasing() ? leases.stats() : null,
      lastReload,
    };
  };

  const specs = pools(config, ctx.file, dir, pipeline, place);
  const poolSpecs: PoolSpec[] = [
    { name: "app", ...(specs.app as Omit<PoolSpec, "name">) },
    { name: "web", startAfter: "app", ...(specs.web as Omit<PoolSpec, "name">) },
  ];
  master = new Master({
    name: "stack",
    pools: poolSpecs,
    logger,
    pidfile: config.web.pidfile ?? config.app.pidfile,
    stopDelay: config.stack.stopDelay,
    handover: {
      fds: () => {
        const fd = admin !== undefined ? admin.fd : inherited.get(ADMIN_FD_KEY);
        return fd !== undefined && !adminClosed ? [{ key: ADMIN_FD_KEY, fd }] : [];
      },
      changed: (next) => {
        handover(next).catch((error: unknown) =>
          logger.error("cannot take the admin listener and control socket back", { error }),
        );
      },
    },
    reload: async () => {
      let next: Config;
      let c: Awaited<ReturnType<typeof check>>;
      try {
        next = await ctx.reload();
        c = await check(next, ctx.file, dir, logger);
        if (c.problems.length > 0) throw new Error(c.problems.join("; "));
      } catch (error) {
        // Nothing was reloaded: a `brigade reload` waiting for the outcome gets this one.
        const reason = `the new config is bad: ${(error as Error).message}`;
        for (const w of reloadWaiters.splice(0)) w({ ok: false, generation: 0, reason });
        throw error;
      }
      await c.pipeline!.close();
      await side.reloaded(next);
      const before = pools(current, ctx.file, dir, c.pipeline!, place);
      current = next;
      const after = pools(next, ctx.file, dir, c.pipeline!, place);
      // The app workers are always replaced (that is a deploy: the code may have changed); the
      // web workers only when their settings did.
      const same = JSON.stringify(before.web) === JSON.stringify(after.web);
      if (same) logger.info("web settings unchanged; the web workers stay");
      return { pools: same ? { app: after.app } : after };
    },
    hooks: {
      onReady(m) {
        ready = true;
        const announce = () => {
          printSummary(m, current, ctx.file, dir, admin?.address);
          side.ready();
        };
        if (!successor) return announce();
        publish().then(announce, (error: unknown) =>
          logger.error("cannot take the admin listener and control socket over", { error }),
        );
      },
      onWorkerSpawn(info) {
        if (info.pool === "web") peers.webSpawned(info);
      },
      onWorkerReady(info) {
        if (info.pool === "app") {
          peers.ready(info);
          leases.pump();
        }
      },
      onWorkerStopping(info: WorkerInfo) {
        if (info.pool === "app") return peers.leaving(info);
        return undefined;
      },
      onWorkerExit(info, exit) {
        metrics.workerExited(info, exit);
        if (info.pool === "app") {
          void peers.leaving(info);
          side.workerExited(info, exit);
        } else {
          peers.webExited(info);
          leases.webExited(info);
        }
      },
      onWorkerMessage(info, topic, body) {
        if (topic === LEASE_TOPIC) leases.receive(info, body);
        else if (topic === "stack.ack") peers.ack(info, Number(body));
        else if (topic === "stack.upstream") views.set(info.pid, body as PeerView[]);
      },
      canary(candidate, incumbents, look) {
        return judge.look(candidate, incumbents, look.final);
      },
      onReloadEnd(pool, result) {
        if (pool !== "app") return;
        metrics.reloaded(result.ok);
        lastReload = {
          at: Date.now(),
          ok: result.ok,
          generation: result.generation,
          ...(result.reason ? { reason: result.reason } : {}),
        };
        if (result.ok) logger.info("deploy complete", { generation: result.generation });
        else {
          logger.error("deploy rolled back", {
            generation: result.generation,
            reason: result.reason,
          });
        }
        const r = {
          ok: result.ok,
          generation: result.generation,
          ...(result.reason ? { reason: result.reason } : {}),
        };
        for (const w of reloadWaiters.splice(0)) w(r);
      },
      onStopping() {
        logger.info("stopping: readiness is 503 from now on");
      },
    },
  });
  peers.attach(master);

  const notReady = (): string | undefined => {
    if (master!.isStopping) return "stopping";
    if (!ready) return "starting";
    if (peers.table().peers.length === 0) return "no app worker ready";
    return undefined;
  };
  const adminHandlers = {
    notReady,
    metrics: () =>
      metrics.render(master!.snapshot(), views, leasing() ? leases.stats() : undefined),
    data: () => ({ now: Date.now(), status: status(), samples: metrics.history() }),
  };
  const openControl = (takeOver: boolean) =>
    startControl(
      controlSocket(dir),
      {
        status,
        reload: () =>
          new Promise((resolve) => {
            reloadWaiters.push(resolve);
            master!.enqueue("reload");
          }),
        stop: () => master!.enqueue("stop"),
        scale: (pool, delta) => {
          master!.scale(pool, delta);
          const p = master!.snapshot().pools.find((x) => x.name === pool);
          return Math.max(0, (p?.workers ?? 0) + delta);
        },
      },
      logger,
      { successor: takeOver },
    );
  // USR2 (src/process/master.ts): a successor inherits the web listeners (its master adopts
  // them) and the admin listener's descriptor. It publishes both the admin listener and its
  // control socket (renamed over this one's) only once ready, so a probe never hears "starting"
  // from it while this master serves; this master, seeing the control socket replaced, stops
  // answering on the admin listener. If the successor exits while this master goes on, this
  // master publishes both again.
  let controlIno: number | undefined;
  let adminClosed = false;
  let watchHandover: NodeJS.Timeout | undefined;
  const controlReplaced = (): boolean => {
    try {
      return statSync(controlSocket(dir)).ino !== controlIno;
    } catch {
      return true;
    }
  };
  const publish = async (): Promise<void> => {
    if (config.stack.admin !== "off") {
      admin = await startAdmin(config.stack.admin, adminHandlers, logger, {
        fd: inherited.get(ADMIN_FD_KEY),
      });
    }
    control = await openControl(successor);
    controlIno = statSync(controlSocket(dir)).ino;
  };
  const handover = async (next: boolean): Promise<void> => {
    clearInterval(watchHandover);
    if (next) {
      watchHandover = setInterval(() => {
        if (!controlReplaced()) return;
        clearInterval(watchHandover);
        logger.info("the new master is ready; it answers on the admin listener from now on");
        adminClosed = admin !== undefined;
        admin?.server.close();
        admin?.server.closeAllConnections();
      }, 250);
      watchHandover.unref();
      return;
    }
    if (adminClosed && admin !== undefined) {
      admin = await startAdmin(admin.address, adminHandlers, logger);
      adminClosed = false;
    }
    if (controlReplaced()) {
      control?.close();
      control = await openControl(true);
      controlIno = statSync(controlSocket(dir)).ino;
    }
    logger.info("admin listener and control socket are this master's again");
  };
  try {
    if (!successor) await publish();
  } catch (error) {
    logger.fatal("cannot start", { error });
    admin?.server.close();
    return ExitCode.failure;
  }

  const sampler = setInterval(() => {
    const snap = master!.snapshot();
    metrics.sample(snap);
    master!.send("web", "stack.load", peers.load(snap.workerList.filter((w) => w.pool === "app")));
  }, 1000);
  sampler.unref();

  const watcher = side.watch(() => master!.enqueue("reload"));
  let code: number;
  try {
    code = await master.run();
  } finally {
    watcher?.close();
    clearInterval(sampler);
    clearInterval(watchHandover);
    for (const w of reloadWaiters.splice(0))
      w({ ok: false, generation: 0, reason: "the stack stopped" });
    control?.close();
    control?.closeAllConnections();
    admin?.server.close();
    admin?.server.closeAllConnections();
    reloadWaiters = [];
  }
  await side.exit();
  return code;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function printSummary(
  master: Master,
  config: Config,
  file: string | undefined,
  dir: string,
  admin: string | undefined,
): void {
  const snap = master.snapshot();
  const web = snap.pools.find((p) => p.name === "web")!;
  const app = snap.pools.find((p) => p.name === "app")!;
  const root = config.web.servers.length === 0 ? staticRoot(config) : undefined;
  const urls = web.listeners.map((l) => (l.startsWith("unix:") ? l : `http://${l}`)).join(", ");
  const lines = [
    `brigade up: ready (master pid ${process.pid})`,
    `  web    ${urls}: ${web.workers} worker${web.workers === 1 ? "" : "s"}${
      config.web.servers.length > 0
        ? `, ${config.web.servers.length} server block${config.web.servers.length === 1 ? "" : "s"}`
        : root !== undefined
          ? `, files from ${root}, everything else from the app`
          : ", everything to the app (no ./public)"
    }`,
    `  app    ${config.app.app}: ${app.workers} ${config.app.workerClass} worker${app.workers === 1 ? "" : "s"}, on unix sockets in ${dir}`,
    `  admin  ${admin ? `http://${admin}/dashboard (also /livez /readyz /metrics)` : "off"}`,
    `  config ${file ? displayPath(file, process.cwd()) : "none (embedded defaults)"}`,
    "  brigade status | reload | stop | scale app +1   (from this directory)",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
