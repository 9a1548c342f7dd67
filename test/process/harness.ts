/**
 * Start the fixture master (test/fixtures/process/master.ts) with a JSON config in a temp dir,
 * and read what it prints: the bound port, `SNAPSHOT` lines, worker pids.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import type { MasterSnapshot } from "../../src/process/master.ts";
import { type Spawned, spawnNode } from "../helpers/process.ts";

export const masterScript = new URL("../fixtures/process/master.ts", import.meta.url).pathname;

export interface FixtureConfig {
  workers: number;
  listen: string[];
  timeout: number;
  gracefulTimeout: number;
  pidfile?: string;
  mode?: "process" | "thread";
  bootRetries?: number;
  worker: string;
  data?: unknown;
  logFile?: string;
}

export interface RunningMaster extends Spawned {
  dir: string;
  configFile: string;
  writeConfig(c: FixtureConfig): void;
  /** The first TCP port bound (from the `listening` log line). */
  port: number | undefined;
  /** The newest SNAPSHOT line printed from `from` on. */
  lastSnapshot(from?: number): MasterSnapshot | undefined;
}

/** A fresh temp dir, removed after the test. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-process-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Start the master; with `waitReady` (default) resolve once it logs "master ready". */
export async function startMaster(
  t: TestContext,
  config: FixtureConfig | ((dir: string) => FixtureConfig),
  { waitReady = true, dir = tempDir(t) }: { waitReady?: boolean; dir?: string } = {},
): Promise<RunningMaster> {
  const configFile = join(dir, "config.json");
  const writeConfig = (c: FixtureConfig): void => writeFileSync(configFile, JSON.stringify(c));
  writeConfig(typeof config === "function" ? config(dir) : config);
  const proc = spawnNode(t, [masterScript, configFile]);
  const m: RunningMaster = {
    ...proc,
    dir,
    configFile,
    writeConfig,
    port: undefined,
    lastSnapshot(from = 0) {
      for (let i = proc.lines.length - 1; i >= from; i--) {
        const line = proc.lines[i]!;
        if (line.startsWith("SNAPSHOT ")) return JSON.parse(line.slice(9)) as MasterSnapshot;
      }
      return undefined;
    },
  };
  // Workers are the master's children: none may outlive a failed test. (They also stop by
  // themselves when the master's IPC channel closes.)
  t.after(() => {
    for (const line of proc.lines) {
      if (!line.startsWith("SNAPSHOT ")) continue;
      for (const w of (JSON.parse(line.slice(9)) as MasterSnapshot).workerList) {
        if (w.pid === proc.pid) continue;
        try {
          process.kill(w.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  });
  if (waitReady) {
    const ready = await proc.waitForLine(/master ready/, { timeoutMs: 30_000 });
    await proc.waitForLine(/^SNAPSHOT /, { from: ready.index });
    const l = proc.lines.find((x) => / listening address=[^ ]*:(\d+)$/.test(x));
    const p = l?.match(/:(\d+)$/)?.[1];
    m.port = p === undefined ? undefined : Number(p);
  }
  return m;
}
