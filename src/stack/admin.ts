/**
 * The admin listener of `brigade up` (`stack.admin`), served by the master itself, so it answers
 * while workers come and go:
 * - `GET /livez`: 200 while the master runs (its loop is what a liveness probe should watch).
 * - `GET /readyz`: 200 once every worker of both tiers is up and an app worker can take
 *   requests; 503 while starting, and from the first moment of a graceful stop (TERM), so a
 *   load balancer stops sending before the web workers stop accepting (`stack.stopDelay`).
 * - `GET /metrics`: Prometheus text, both tiers (metrics.ts).
 * - `GET /dashboard`: a live page (dashboard.ts), fed by `GET /dashboard/data` (JSON).
 * Every other path: 404. HEAD is answered like GET without the body.
 */
import { renameSync, rmSync } from "node:fs";
import http from "node:http";
import type { Logger } from "../core/logger.ts";
import { parseListen } from "../process/master.ts";
import { dashboardPage } from "./dashboard.ts";

export interface AdminHandlers {
  /** Undefined when ready, else why not ("starting", "stopping", "no app worker ready"). */
  notReady(): string | undefined;
  metrics(): string;
  data(): unknown;
}

export async function startAdmin(
  address: string,
  handlers: AdminHandlers,
  logger: Logger,
  options: { fd?: number | undefined } = {},
): Promise<{ server: http.Server; address: string; fd: number | undefined }> {
  const page = dashboardPage();
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const reply = (
      status: number,
      type: string,
      body: string,
      extra: http.OutgoingHttpHeaders = {},
    ) => {
      res.writeHead(status, {
        "content-type": type,
        "content-length": Buffer.byteLength(body),
        "cache-control": "no-store",
        ...extra,
      });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      return reply(405, "text/plain", "GET only\n", { allow: "GET, HEAD" });
    }
    try {
      switch (path) {
        case "/livez":
          return reply(200, "text/plain", "ok\n");
        case "/readyz": {
          const why = handlers.notReady();
          return why === undefined
            ? reply(200, "text/plain", "ready\n")
            : reply(503, "text/plain", `not ready: ${why}\n`);
        }
        case "/metrics":
          return reply(200, "text/plain; version=0.0.4; charset=utf-8", handlers.metrics());
        case "/":
          res.writeHead(302, { location: "/dashboard", "content-length": 0 });
          return res.end();
        case "/dashboard":
          return reply(200, "text/html; charset=utf-8", page);
        case "/dashboard/data":
          return reply(200, "application/json", JSON.stringify(handlers.data()));
        default:
          return reply(404, "text/plain", "try /livez, /readyz, /metrics or /dashboard\n");
      }
    } catch (error) {
      logger.error("admin request failed", { path, error });
      return reply(500, "text/plain", "internal error\n");
    }
  });
  server.keepAliveTimeout = 5000;
  const spec = parseListen(address);
  // A unix socket is bound at `<path>.<pid>` and renamed into place (as the control socket):
  // a USR2 successor renames its own over it, and closing never unlinks the path. A TCP one is
  // handed to the successor as a descriptor (`fd`), so no connection is refused meanwhile.
  const at = spec.kind === "unix" ? `${spec.path}.${process.pid}` : undefined;
  if (at !== undefined) rmSync(at, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if (options.fd !== undefined) server.listen({ fd: options.fd }, () => resolve());
    else if (at !== undefined) server.listen(at, () => resolve());
    else if (spec.kind === "tcp") server.listen(spec.port, spec.host, () => resolve());
  });
  if (at !== undefined && spec.kind === "unix") renameSync(at, spec.path);
  const where = server.address();
  const bound =
    spec.kind === "unix"
      ? `unix:${spec.path}`
      : typeof where === "string"
        ? `unix:${where}`
        : where?.family === "IPv6"
          ? `[${where.address}]:${where.port}`
          : `${where?.address}:${where?.port}`;
  logger.info("admin listening", { address: bound });
  // The descriptor a USR2 successor inherits (TCP only; see above).
  const fd =
    spec.kind === "tcp"
      ? (server as unknown as { _handle?: { fd?: number } })._handle?.fd
      : undefined;
  return { server, address: bound, fd: fd !== undefined && fd >= 0 ? fd : undefined };
}
