/** Config problems and the error that carries all of them at once. */
import { formatPath, type Path } from "./types.ts";

/** One thing wrong with the config, and where it came from. */
export interface Problem {
  /** The config file path, the env var name, the flag (`--workers`), or `default`. */
  source: string;
  /** The key path (`["app", "workers"]`); empty when the problem is the source as a whole. */
  path: Path;
  /** What was expected and what was found. */
  message: string;
}

/** `brigade.config.ts: app.workers: expected an integer ≥ 1 or "auto", found 0` */
export function formatProblem(p: Problem): string {
  const path = formatPath(p.path);
  return path === "" ? `${p.source}: ${p.message}` : `${p.source}: ${path}: ${p.message}`;
}

/**
 * Thrown by `loadConfig` when the config is bad: `problems` lists every problem found (not just
 * the first), and the message is them, one per line.
 */
export class ConfigError extends Error {
  readonly problems: readonly Problem[];
  constructor(problems: readonly Problem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "ConfigError";
    this.problems = problems;
  }
}
