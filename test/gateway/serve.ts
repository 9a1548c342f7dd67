/** Test helper: serve a listener with node:http on an ephemeral loopback port. */
import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestContext } from "node:test";
import { createLogger, type Fields, type Logger } from "../../src/core/logger.ts";

export interface Served {
  server: Server;
  url: string;
  port: number;
}

/** Listen on 127.0.0.1:0; closed (connections too) when the test ends, even on failure. */
export async function serve(t: TestContext, listener: RequestListener): Promise<Served> {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

export interface Captured {
  logger: Logger;
  lines: { level: string; msg: string; fields: Fields }[];
}

/** A real Logger whose lines are kept in memory (a child of a logger writing to /dev/null). */
export function captureLogger(): Captured {
  const lines: Captured["lines"] = [];
  const base = createLogger({ file: "/dev/null", level: "debug" });
  const make = (extra: Fields): Logger => {
    const rec =
      (level: string) =>
      (msg: string, fields?: Fields): void => {
        lines.push({ level, msg, fields: { ...extra, ...fields } });
      };
    return {
      level: "debug",
      debug: rec("debug"),
      info: rec("info"),
      warn: rec("warn"),
      error: rec("error"),
      fatal: rec("fatal"),
      child: (f) => make({ ...extra, ...f }),
      reopen: () => base.reopen(),
      enabled: () => true,
    };
  };
  return { logger: make({}), lines };
}
