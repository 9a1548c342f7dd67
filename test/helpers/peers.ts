/**
 * Real nginx and gunicorn for tests, each stopped in `t.after` even when the test fails.
 *
 * The launchers live in bench/lib/peers.ts (test/ imports bench/, never the other way round);
 * this module only ties them to a test's lifetime and decides what a missing tool means.
 *
 * @example
 * test("proxies to gunicorn", async (t) => {
 *   if (!requireTool(t, "gunicorn")) return;
 *   const app = await startGunicorn(t, { app: "def application(e, s): ..." });
 *   const res = await fetch(app.url);
 * });
 */
import type { TestContext } from "node:test";
import {
  type GunicornOptions,
  startGunicorn as launchGunicorn,
  startNginx as launchNginx,
  type NginxOptions,
  type RunningServer,
} from "../../bench/lib/peers.ts";
import { findTool, installHint, type Tool } from "../../bench/lib/tools.ts";

export type { GunicornOptions, NginxOptions, RunningServer };

/**
 * True when `tool` is installed. Otherwise the test is skipped and false returned, except under
 * `CI=true`, where it throws: in CI a test may not skip for a missing tool.
 */
export function requireTool(t: Pick<TestContext, "skip">, tool: Tool | (string & {})): boolean {
  if (findTool(tool)) return true;
  const hint = installHint[tool as Tool] ?? "install it";
  const message = `${tool} is not installed (${hint})`;
  if (process.env.CI === "true") {
    throw new Error(`${message}: in CI a test may not skip for a missing tool`);
  }
  t.skip(message);
  return false;
}

/** Real nginx on a free loopback port; see `NginxOptions`. Stopped when the test ends. */
export async function startNginx(
  t: Pick<TestContext, "after">,
  options: NginxOptions = {},
): Promise<RunningServer> {
  const server = await launchNginx(options);
  t.after(() => server.stop());
  return server;
}

/** Real gunicorn serving `options.app` on a free loopback port. Stopped when the test ends. */
export async function startGunicorn(
  t: Pick<TestContext, "after">,
  options: GunicornOptions,
): Promise<RunningServer> {
  const server = await launchGunicorn(options);
  t.after(() => server.stop());
  return server;
}
