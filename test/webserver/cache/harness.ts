/**
 * Real processes for the cache tests: the tests' own origin (test/fixtures/cache/origin.ts) and
 * `brigade web` (the real CLI, the cache around the proxy module), plus a small HTTP client with
 * exact headers.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { freePort, type Spawned, spawnNode } from "../../helpers/process.ts";

const fixtures = new URL("../../fixtures/cache/", import.meta.url).pathname;
export const brigade = new URL("../../../bin/brigade.ts", import.meta.url).pathname;

export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-cache-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Origin {
  port: number;
  address: string;
  proc: Spawned;
  /** Requests the origin got for `path` (any query). */
  count(path: string): Promise<number>;
  log(): Promise<string[]>;
  kill(): Promise<void>;
}

export async function startOrigin(t: TestContext, port = 0): Promise<Origin> {
  const proc = spawnNode(t, [join(fixtures, "origin.ts"), String(port)]);
  const m = await proc.waitForLine(/origin listening (\d+)/);
  const p = Number(m.match[1]);
  const get = async (path: string): Promise<string> =>
    (await request(p, path, { agent: false })).body;
  return {
    port: p,
    address: `127.0.0.1:${p}`,
    proc,
    count: async (path) => Number(await get(`/__count?path=${encodeURIComponent(path)}`)),
    log: async () => JSON.parse(await get("/__log")) as string[],
    kill: async () => {
      process.kill(proc.pid, "SIGKILL");
      await proc.exited;
    },
  };
}

export interface Web {
  port: number;
  proc: Spawned;
  /** The config file it runs (a real brigade config: `brigade purge -c FILE` reads it). */
  configFile: string;
  stop(): Promise<void>;
}

type Block = Record<string, unknown> & { locations?: Block[] };

/**
 * Every server and location proxies to the origin (`/o2/...` locations to `origin2`), except
 * the cache admin endpoint and blocks that name their own `proxy`; servers tag each response
 * with the worker's pid (`x-worker-pid`) and let X-Accel-Expires through to the cache.
 */
function proxied(block: Block, origin: string, origin2: string, isServer: boolean): Block {
  const out: Block = { ...block };
  const match = typeof block.match === "string" ? block.match : "";
  if (out.cacheAdmin === undefined && out.proxy === undefined) {
    out.proxy = match.startsWith("/o2/") ? origin2 : origin;
  }
  if (isServer) {
    out.addHeaders = { "x-worker-pid": { value: "$pid", always: true } };
    out.proxyPassHeaders = ["X-Accel-Expires"];
  }
  if (block.locations)
    out.locations = block.locations.map((l) => proxied(l, origin, origin2, false));
  return out;
}

/**
 * Start `brigade web` (the real CLI) with `web` (the config's web section, `listen` added),
 * every location proxied to the test's origins.
 */
export async function startWeb(
  t: TestContext,
  web: Record<string, unknown>,
  origins: { origin: Origin; origin2?: Origin },
  dir = tempDir(t),
): Promise<Web> {
  const port = await freePort();
  const file = join(dir, `web-${port}.json`);
  const o1 = `http://${origins.origin.address}`;
  const o2 = `http://${(origins.origin2 ?? origins.origin).address}`;
  const servers = (web.servers as Block[] | undefined)?.map((b) => proxied(b, o1, o2, true));
  const section = servers ? { ...web, servers } : { ...web, proxy: [o1] };
  writeFileSync(
    file,
    JSON.stringify({ log: { level: "info" }, web: { listen: [`127.0.0.1:${port}`], ...section } }),
  );
  const proc = spawnNode(t, [brigade, "web", "-c", file]);
  await proc.waitForLine(/master ready/, { timeoutMs: 30_000 });
  return {
    port,
    proc,
    configFile: file,
    stop: async () => {
      try {
        process.kill(proc.pid, "SIGTERM");
      } catch {
        return;
      }
      await proc.exited;
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request; `agent: false` opens a new connection (so another worker may take it). */
export function request(
  port: number,
  path: string,
  options: {
    method?: string;
    headers?: Record<string, string>;
    agent?: http.Agent | false;
    body?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: options.method ?? "GET",
        headers: { host: `127.0.0.1:${port}`, ...options.headers },
        agent: options.agent ?? false,
        timeout: 10_000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          body += c;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    r.on("timeout", () => r.destroy(new Error(`no answer for ${path} within 10 s`)));
    r.on("error", reject);
    r.end(options.body);
  });
}

/** `X-Cache-Status` of a reply. */
export const xcs = (r: Reply): string | undefined =>
  r.headers["x-cache-status"] as string | undefined;
