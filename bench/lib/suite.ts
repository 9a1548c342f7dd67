/**
 * The suite format: `bench/suites/<name>.ts` default-exports a `Suite` (use `defineSuite` for
 * the types). `npm run bench -- <name>` starts every case's server side by side, drives each
 * with wrk in turn, and compares them to the case named `baseline`.
 *
 * @example
 * export default defineSuite({
 *   description: "hello world",
 *   baseline: "nginx",
 *   tools: ["nginx"],
 *   cases: [
 *     { name: "nginx", start: () => startNginx({ serverBlock: 'return 200 "hello";' }) },
 *     nodeCase("node http", "bench/servers/nodeHttp.ts"),
 *   ],
 * });
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type RunningServer, startCommand } from "./peers.ts";
import type { Tool } from "./tools.ts";

/** A started server as a suite sees it. `RunningServer` from ./peers.ts is one. */
export interface Server {
  /** What wrk requests (path included), unless the suite lists `paths`. */
  url: string;
  /** Root PIDs; memory is reported over their process trees. */
  pids: number[];
  /**
   * A wrk Lua script (its source) used for this server's runs, e.g. `wrk.path =
   * "http://127.0.0.1:9000/"` to send absolute-form requests to a forward proxy.
   */
  wrkScript?: string;
  stop(): Promise<void>;
}

/** What a suite's own measurements (`Suite.extra`) are given. */
export interface ExtraContext {
  durationSec: number;
  repeats: number;
  signal: AbortSignal;
  /** Progress lines (stderr). */
  log(line: string): void;
}

/** What they give back: a markdown section for the report and the raw data for the JSON. */
export interface ExtraReport {
  markdown: string;
  data: unknown;
}

export interface Case {
  /** Short and unique within the suite: it is a row of the table. */
  name: string;
  /** One line for the report: what this case is. */
  description?: string;
  start(): Promise<Server>;
}

export interface Suite {
  description: string;
  /** Name of the case every ratio is relative to. */
  baseline: string;
  cases: Case[];
  /** Request these paths on every case (one row each) instead of each server's `url`. */
  paths?: string[];
  /** Header fields wrk sends to every case (credentials, say). */
  headers?: Record<string, string>;
  /** External tools the cases need besides wrk; checked before anything starts. */
  tools?: Tool[];
  /** Also write an SVG bar chart of the results (bench/lib/chart.ts) beside the table. */
  chart?: boolean;
  /**
   * Measurements wrk cannot make (tunnels, streams), run on the started servers after the wrk
   * rounds, with the same duration and repeats; their section is appended to the report.
   */
  extra?(servers: ReadonlyMap<string, Server>, ctx: ExtraContext): Promise<ExtraReport>;
  /**
   * The suite's Brigade cases run from another checkout at `dir` (bench/cpu.ts `--against`):
   * an A/B of two branches in one run, on the same machine at the same time.
   */
  against?(dir: string): Case[];
}

/** Identity, for type checking a suite where it is written. */
export function defineSuite(suite: Suite): Suite {
  return suite;
}

/** Absolute path of a file in bench/ (suites refer to their servers by `bench/...`). */
export function benchFile(rel: string): string {
  return fileURLToPath(new URL(`../../${rel}`, import.meta.url));
}

/**
 * Start `brigade web -c brigade.config.json --log-level warn`, one process tree: `config(port)`,
 * made once the port is chosen, is written as that file into the server's temp dir (paths in it
 * are relative to the dir, where `files` go too).
 */
export function startBrigadeWeb(options: {
  name?: string;
  config: (port: number) => object;
  files?: Record<string, string | Buffer>;
  env?: NodeJS.ProcessEnv;
  /** Another checkout to run `bin/brigade.ts` from (A/B runs); this one by default. */
  root?: string;
}): Promise<RunningServer> {
  return startCommand({
    name: options.name ?? "brigade web",
    command: process.execPath,
    args: [
      options.root === undefined
        ? benchFile("bin/brigade.ts")
        : join(options.root, "bin/brigade.ts"),
      "web",
      "-c",
      "{dir}/brigade.config.json",
      "--log-level",
      "warn",
    ],
    files: options.files,
    env: options.env,
    beforeSpawn(port, dir) {
      writeFileSync(join(dir, "brigade.config.json"), JSON.stringify(options.config(port)));
    },
  });
}

/**
 * A case running a Node script with `process.execPath`: `node <script> <port> ...args`.
 * `script` is relative to the repository root (e.g. `bench/servers/nodeHttp.ts`) or absolute.
 */
export function nodeCase(
  name: string,
  script: string,
  args: string[] = [],
  description?: string,
): Case {
  const file = script.startsWith("/") ? script : benchFile(script);
  return {
    name,
    description,
    start: () => startCommand({ name, command: process.execPath, args: [file, "{port}", ...args] }),
  };
}
