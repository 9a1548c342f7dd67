/**
 * The one test command (`npm test`): lint and format check, type check, then every test with
 * `node --test`, whose summary closes the output. Stops at the first failing step.
 *
 * `npm test -- <files or --test-name-pattern=...>` passes the rest to `node --test` and skips the
 * static checks, for quick local runs.
 */
import { spawnSync } from "node:child_process";
import { globSync } from "node:fs";

const bin = (name: string) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;
const args = process.argv.slice(2);

function step(label: string, cmd: string, cmdArgs: string[]): void {
  process.stdout.write(`\n> ${label}\n`);
  const r = spawnSync(cmd, cmdArgs, { stdio: "inherit" });
  if (r.status !== 0) {
    process.stdout.write(`\n${label} failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status ?? 1);
  }
}

if (args.length === 0) {
  step("lint and format (biome ci)", bin("biome"), ["ci", "."]);
  step("type check (tsc --noEmit)", bin("tsc"), ["--noEmit", "-p", "."]);
}

const files =
  args.filter((a) => !a.startsWith("-")).length > 0
    ? args.filter((a) => !a.startsWith("-"))
    : [...globSync("test/**/*.test.ts"), ...globSync("src/**/*.test.ts")].sort();
const flags = args.filter((a) => a.startsWith("-"));
const concurrency = process.env.BRIGADE_TEST_CONCURRENCY ?? "3";
step("tests (node --test)", process.execPath, [
  "--test",
  `--test-concurrency=${concurrency}`,
  "--test-timeout=120000",
  ...flags,
  ...files,
]);
