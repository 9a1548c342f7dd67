/**
 * Real processes for the cache tests: the tests' own origin (test/fixtures/cache/origin.ts) and
 * web servers (the real master and pipeline with the cache module, and a test-only proxy
 * content handler: test/fixtures/cache/web.ts), plus a small HTTP client with exact headers.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { freePort, type Spawned, spawnNode } from "../../helpers/process.ts";

const fixtures = new URL("../../fixtures/cache/", import.meta.url).pathname;

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

/** Start a web server with `web` (the config's web section, `listen` added) and the origins. */
export async function startWeb(
  t: TestContext,
  web: Record<string, unknown>,
  origins: { origin: Origin; origin2?: Origin },
  dir = tempDir(t),
  env: Record<string, string> = {},
): Promise<Web> {
  const port = await freePort();
  const file = join(dir, `web-${port}.json`);
  writeFileSync(
    file,
    JSON.stringify({ log: { level: "warn" }, web: { listen: [`127.0.0.1:${port}`], ...web } }),
  );
  const proc = spawnNode(t, [join(fixtures, "web.ts"), file], {
    env: {
      ...process.env,
      CACHE_TEST_ORIGIN: origins.origin.address,
      CACHE_TEST_ORIGIN2: origins.origin2?.address ?? origins.origin.address,
      ...env,
    },
  });
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
