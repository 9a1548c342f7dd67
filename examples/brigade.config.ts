/**
 * A production-shaped app server config, with server hooks (gunicorn's config.py, typed):
 *
 *   brigade app -c examples/brigade.config.ts
 *   brigade check -c examples/brigade.config.ts      # validates, and loads the app
 *
 * Every setting: docs/settings.md. How they fit together: docs/appserver.md.
 */
import { defineConfig } from "../src/config/schema.ts";

export default defineConfig({
  log: { level: "info" },
  app: {
    app: "examples/hono.ts",
    bind: ["127.0.0.1:8000"],
    workers: 2,
    workerClass: "async",
    timeout: "30s",
    gracefulTimeout: "30s",
    requestTimeout: "20s",
    maxRequests: 10_000,
    maxRequestsJitter: 1_000,
    maxWorkerMemory: "512m",
    limitRequestBody: "10m",
    accessLog: "-",
    metricsBind: "127.0.0.1:9100",
    postFork: (server, worker) => worker.logger.info("worker booting", { master: server.pid }),
    whenReady: (server) => server.logger.info("all workers ready"),
    postRequest: (worker, req, _res, { status, durationMs }) => {
      if (durationMs > 1000)
        worker.logger.warn("slow request", { url: req.url, status, durationMs });
    },
    workerAbort: () => ({ note: "killed for a timeout: see the stack below" }),
    childExit: (server, worker) =>
      server.logger.info("worker gone", { pid: worker.pid, reason: worker.reason }),
  },
});
