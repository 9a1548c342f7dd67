/**
 * A web worker of `brigade up` (a `WorkerMain`): the web server's worker (`startWebWorker` of
 * src/webserver/worker.ts: the pipeline on the engine, its services, connection cap, reopen and
 * stop), plus what the stack adds through its options:
 *
 * - The `app` upstream group's peers are the app workers, as the master tells them: a table of
 *   the ready app workers' sockets (topic `stack.peers`), applied as it comes. A worker that is
 *   not in the table any more is drained at once (no new request; those in flight finish) and
 *   removed when idle; a new one is added. Each table is acknowledged (`stack.ack` with its
 *   version), so the master stops an app worker only once no web worker will send it more.
 * - Load (`stack.load`): the requests each app worker has in flight over all web workers, less
 *   this worker's own, as the group's `setLoad`, so least-connections sees the others' traffic.
 * - Sync app workers (`appLeases`): the group's selection is the master's, through a lease per
 *   request (src/stack/leases.ts), so a sync app worker gets one request at a time over all web
 *   workers.
 * - Metrics: the request counters of src/appserver/metrics.ts (status classes, latency
 *   buckets, in flight, event-loop lag) plus bytes and cache results, in `ctx.stats`; and the
 *   group's view of each peer (`stack.upstream`, every second) for status and metrics.
 *
 * The worker waits for the first table before it compiles (a group needs its peers) and listens
 * only after applying it, so it never serves without knowing the app workers.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { RequestMetrics } from "../appserver/metrics.ts";
import type { WorkerContext } from "../process/worker.ts";
import {
  type GroupMessage,
  groupChannel,
  normalizeGroup,
  type UpstreamGroup,
} from "../upstream/index.ts";
import type { Outcome } from "../webserver/engine/types.ts";
import { startWebWorker, type WebWorkerData } from "../webserver/worker.ts";
import { LeaseClient } from "./leases.ts";
import { APP_GROUP } from "./plan.ts";

/** `workerData` of the stack's web pool. */
export interface StackWebData extends WebWorkerData {
  /** The `app` group in config input form, without peers. */
  appGroup: Record<string, unknown>;
  /** Per-peer options of every app worker (`maxConns`). */
  appPeer: Record<string, unknown>;
  /** A socket path no one listens on: the group's only peer, marked down, while there is none. */
  nobody: string;
  /** Sync app workers: take a lease from the master before sending (src/stack/leases.ts). */
  appLeases?: boolean;
}

/** The master's table of app workers that may take requests. */
export interface PeerTable {
  version: number;
  /** `unix:/...` addresses of ready app workers. */
  peers: string[];
}

/** What a web worker reports of one peer (its own group's view). */
export interface PeerView {
  server: string;
  state: string;
  active: number;
  requests: number;
  failures: number;
}

const cacheStatuses = ["HIT", "MISS", "EXPIRED", "STALE", "UPDATING", "REVALIDATED", "BYPASS"];

export default async function main(ctx: WorkerContext): Promise<void> {
  const data = ctx.data as StackWebData;
  let table: PeerTable | undefined;
  let group: UpstreamGroup | undefined;
  let gotFirst: (() => void) | undefined;
  const first = new Promise<void>((resolve) => {
    gotFirst = resolve;
  });
  const known = new Set<string>();
  const leases = data.appLeases ? new LeaseClient(ctx) : undefined;

  const apply = (t: PeerTable): void => {
    const g = group;
    if (!g) return;
    const wanted = new Set(t.peers);
    for (const address of wanted) {
      if (known.has(address)) continue;
      known.add(address);
      void g.addPeer({ ...data.appPeer, address }).catch((error: unknown) => {
        ctx.logger.error("cannot add an app worker to the upstream group", { address, error });
      });
    }
    for (const address of [...known]) {
      if (wanted.has(address)) continue;
      known.delete(address);
      // Drain first (synchronous: no new request from now on), then remove once idle.
      void g
        .drainPeer(address)
        .then(() => g.removePeer(address, { drain: false }))
        .catch(() => {
          // already removed
        });
    }
  };
  ctx.onMessage("stack.peers", (body) => {
    const t = body as PeerTable;
    if (table !== undefined && t.version <= table.version) return;
    table = t;
    apply(t);
    ctx.send("stack.ack", t.version);
    gotFirst?.();
    gotFirst = undefined;
  });
  ctx.onMessage("stack.load", (body) => {
    const g = group;
    if (!g) return;
    const load = body as Record<string, number>;
    const own = new Map(g.snapshot().peers.map((p) => [p.server, p.active]));
    for (const [address, inflight] of Object.entries(load)) {
      if (!known.has(address)) continue;
      try {
        g.setLoad(address, Math.max(0, inflight - (own.get(address) ?? 0)));
      } catch {
        // removed meanwhile
      }
    }
  });
  await first;

  const initial = table!.peers;
  const web = structuredClone(data.web);
  (web.upstreams as Record<string, unknown>)[APP_GROUP] = normalizeGroup(
    {
      ...data.appGroup,
      peers:
        initial.length > 0
          ? initial.map((address) => ({ ...data.appPeer, address }))
          : [{ address: data.nobody, down: true }],
    },
    `web.upstreams.${APP_GROUP}`,
  );
  for (const a of initial) known.add(a);
  const capture = (message: unknown): void => {
    const m = message as GroupMessage;
    if (m.event === "created" && m.group.name === APP_GROUP) {
      group = m.group;
      group.arbiter = leases;
    }
  };
  const stats = ctx.stats;
  const metrics = new RequestMetrics(stats);
  stats.bytes_sent = 0;
  stats.bytes_received = 0;
  for (const s of cacheStatuses) stats[`cache_${s}`] = 0;
  let report: NodeJS.Timeout | undefined;
  subscribe(groupChannel.name, capture);
  try {
    await startWebWorker(ctx, data, {
      web,
      compiled() {
        unsubscribe(groupChannel.name, capture);
        if (group && initial.length === 0) known.add(data.nobody);
        // Tables that came while compiling.
        if (table) apply(table);
      },
      handler: (base) => ({
        handle(req) {
          metrics.requestStarted();
          const pending = base.handle(req);
          return pending instanceof Promise ? pending.then(counted) : counted(pending);
          function counted(outcome: Outcome): Outcome {
            const complete = outcome.complete;
            outcome.complete = (done) => {
              metrics.requestEnded(done.status, done.durationMs / 1000);
              stats.bytes_sent! += done.bytesSent;
              stats.bytes_received! += done.bodyBytesReceived;
              // hasVars first: reading `vars` makes a map for every request.
              const cache = req.hasVars ? req.vars.get("upstream_cache_status") : undefined;
              if (cache !== undefined) {
                const key = `cache_${cache}`;
                if (stats[key] !== undefined) stats[key]!++;
              }
              complete.call(outcome, done);
            };
            return outcome;
          }
        },
        rejected(conn, status, reason) {
          metrics.badRequest(status);
          base.rejected(conn, status, reason);
        },
      }),
      stopped() {
        clearInterval(report);
        metrics.stop();
      },
    });
  } finally {
    unsubscribe(groupChannel.name, capture);
  }
  const sendView = (): void => {
    if (!group) return;
    const peers: PeerView[] = group.snapshot().peers.map((p) => ({
      server: p.server,
      state: p.state,
      active: p.active,
      requests: p.requests,
      failures: p.failures,
    }));
    ctx.send("stack.upstream", peers);
  };
  sendView();
  report = setInterval(sendView, 1000);
  report.unref();
  ctx.ready();
}
