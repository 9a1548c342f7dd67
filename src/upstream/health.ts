/**
 * Active health checks (nginx plus's `health_check`, Caddy's active checks): every `interval`,
 * each peer (backups too; not those marked down) is sent `method path` on a connection of its
 * own (not from the pool: a check must prove that a new connection can be made), with a
 * timeout covering the whole exchange. It passes when the status is expected (any 2xx or 3xx
 * by default) and, if `expectBody` is set, the first 64 KiB of the body match it. `fails`
 * consecutive failures make a healthy peer unhealthy (out of selection); `passes` consecutive
 * passes bring it back (through slow start). Peers start healthy and are checked at once.
 *
 * Each result is published on `brigade:upstream:health`; state changes go through the group
 * (logged, and published on `brigade:upstream:peer`).
 */
import { request } from "node:http";
import type { HealthCheckConfig } from "../config/settings/upstream.ts";
import { healthChannel, publish } from "./events.ts";
import type { UpstreamGroup } from "./group.ts";
import type { Peer, PeerTarget } from "./peer.ts";
import { dial } from "./pool.ts";

const maxBody = 64 * 1024;

export interface CheckResult {
  ok: boolean;
  status?: number;
  error?: string;
}

/** Run one check of `target` (exported for tests and for `brigade check`-style probes). */
export function checkOnce(
  target: PeerTarget,
  config: HealthCheckConfig,
  hostHeader: string,
): Promise<CheckResult> {
  const timeoutMs = config.timeout * 1000;
  const bodyRe = config.expectBody !== undefined ? new RegExp(config.expectBody) : undefined;
  const statusOk = (s: number) =>
    config.expectStatus.length > 0 ? config.expectStatus.includes(s) : s >= 200 && s < 400;
  const t: PeerTarget =
    config.port !== undefined && target.kind === "tcp" ? { ...target, port: config.port } : target;
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: CheckResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const timer = setTimeout(
      () => finish({ ok: false, error: `timed out after ${config.timeout}s` }),
      timeoutMs,
    );
    const req = request({
      method: config.method,
      path: config.path,
      headers: {
        host: config.host ?? hostHeader,
        connection: "close",
        "user-agent": "brigade-health-check",
      },
      createConnection: (_o, cb) => {
        dial(t, timeoutMs).then(
          (socket) => cb?.(null, socket),
          (err: Error) => cb?.(err, undefined as never),
        );
        return undefined;
      },
    });
    req.on("error", (err) => finish({ ok: false, error: err.message }));
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      if (!statusOk(status)) {
        finish({ ok: false, status, error: `status ${status}` });
        return;
      }
      if (!bodyRe) {
        res.resume();
        res.on("end", () => finish({ ok: true, status }));
        res.on("error", (err) => finish({ ok: false, status, error: err.message }));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      const judge = () => {
        const body = Buffer.concat(chunks).subarray(0, maxBody).toString("utf8");
        finish(
          bodyRe.test(body)
            ? { ok: true, status }
            : { ok: false, status, error: `body does not match /${config.expectBody}/` },
        );
      };
      res.on("data", (c: Buffer) => {
        chunks.push(c);
        size += c.length;
        if (size >= maxBody) judge();
      });
      res.on("end", judge);
      res.on("error", (err) => finish({ ok: false, status, error: err.message }));
    });
    req.end();
  });
}

export class HealthChecker {
  private readonly group: UpstreamGroup;
  private readonly config: HealthCheckConfig;
  private readonly timers = new Map<Peer, NodeJS.Timeout>();
  private running = false;

  constructor(group: UpstreamGroup, config: HealthCheckConfig, _clock: () => number) {
    this.group = group;
    this.config = config;
  }

  /** Start checking every peer not yet checked (idempotent: new peers join). */
  start(): void {
    this.running = true;
    for (const peer of this.group.peers) {
      if (!this.timers.has(peer)) this.schedule(peer, 0);
    }
  }

  stop(): void {
    this.running = false;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  forget(peer: Peer): void {
    clearTimeout(this.timers.get(peer));
    this.timers.delete(peer);
  }

  private schedule(peer: Peer, delayMs: number): void {
    const timer = setTimeout(() => void this.run(peer), delayMs);
    timer.unref();
    this.timers.set(peer, timer);
  }

  private async run(peer: Peer): Promise<void> {
    if (!this.running || !this.timers.has(peer)) return;
    if (!peer.down) {
      const host = peer.target.kind === "unix" ? "localhost" : peer.name;
      const r = await checkOnce(peer.target, this.config, host);
      if (!this.running || !this.timers.has(peer)) return;
      publish(healthChannel, { group: this.group.name, peer: peer.name, ...r });
      if (r.ok) {
        peer.checkPasses++;
        peer.checkFails = 0;
        if (!peer.healthy && peer.checkPasses >= this.config.passes) {
          this.group.setHealthy(peer, true, `${peer.checkPasses} health checks passed`);
        }
      } else {
        peer.checkFails++;
        peer.checkPasses = 0;
        if (peer.healthy && peer.checkFails >= this.config.fails) {
          this.group.setHealthy(peer, false, `health check failed: ${r.error ?? "failed"}`);
        }
      }
    }
    this.schedule(peer, this.config.interval * 1000);
  }
}
