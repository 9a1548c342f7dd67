/**
 * Loading the user's app from a gunicorn-style spec: `path/to/app.ts` (its default export),
 * `path/to/app.ts:name` (a named export), `path/to/app.ts:create()` (a factory, possibly
 * async, called once per worker).
 *
 * Runs in the worker, after fork. Any failure is an {@link AppLoadError} naming the file and
 * the reason; the app server prints it once and exits with `ExitCode.appLoad` instead of
 * respawning workers that would fail the same way.
 */
import { existsSync, statSync } from "node:fs";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { LoadedApp } from "../gateway/index.ts";
import { AppShapeError, resolveApp } from "../gateway/index.ts";
import { AppLoadError as WorkerAppLoadError } from "../process/worker.ts";

export type { LoadedApp } from "../gateway/index.ts";
export { toNodeListener } from "../gateway/index.ts";

/** Why an app could not be loaded. */
export type AppLoadReason =
  | "spec"
  | "not-found"
  | "syntax"
  | "import-failed"
  | "missing-export"
  | "factory-failed"
  | "shape";

/**
 * The app could not be loaded. `message` says which file and why; `cause` keeps the original.
 * It is the process machinery's AppLoadError, so a worker that throws it makes the master exit
 * with ExitCode.appLoad instead of respawning.
 */
export class AppLoadError extends WorkerAppLoadError {
  readonly reason: AppLoadReason;
  /** Absolute path of the app file (as resolved, even when it does not exist). */
  readonly file: string;
  constructor(reason: AppLoadReason, file: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.reason = reason;
    this.file = file;
  }
}

/**
 * The text an app server prints once before exiting with `ExitCode.appLoad`: the message, then
 * the cause's stack when there is one (a throw at import, a factory's throw, a syntax error).
 */
export function formatAppLoadError(err: AppLoadError): string {
  const cause = err.cause;
  if (cause instanceof Error && cause.stack) return `${err.message}\ncaused by: ${cause.stack}`;
  return err.message;
}

/** A parsed spec. */
export interface AppSpec {
  /** The module path as written. */
  path: string;
  /** Export to use; `default` when the spec names none. */
  exportName: string;
  /** Whether the export is a factory to call (`name()`). */
  call: boolean;
}

const extensions = [".ts", ".mts", ".js", ".mjs", ".cjs"];
const exportRe = /^([A-Za-z_$][\w$]*)(\(\s*\))?$/;

/**
 * Parse `path`, `path:name` or `path:name()`.
 * @throws AppLoadError (reason `spec`) on a malformed spec.
 */
export function parseAppSpec(spec: string): AppSpec {
  const trimmed = spec.trim();
  const colon = trimmed.lastIndexOf(":");
  const tail = colon >= 0 ? trimmed.slice(colon + 1) : "";
  const m = colon >= 0 ? exportRe.exec(tail) : null;
  if (colon >= 0 && !m) {
    throw new AppLoadError(
      "spec",
      trimmed.slice(0, colon),
      `bad app spec "${spec}": after ":" expected an export name or a factory call like create()`,
    );
  }
  const path = m ? trimmed.slice(0, colon) : trimmed;
  if (path === "") throw new AppLoadError("spec", "", `bad app spec "${spec}": no module path`);
  return { path, exportName: m?.[1] ?? "default", call: m?.[2] !== undefined };
}

/** The file a module path names: as written, else with a known extension or as a folder index. */
function resolveFile(path: string, cwd: string): string | undefined {
  const abs = resolve(cwd, path);
  const isFile = (p: string) => existsSync(p) && statSync(p).isFile();
  if (isFile(abs)) return abs;
  if (extname(abs) === "" || !extensions.includes(extname(abs))) {
    for (const ext of extensions) if (isFile(abs + ext)) return abs + ext;
    for (const ext of extensions)
      if (isFile(resolve(abs, `index${ext}`))) return resolve(abs, `index${ext}`);
  }
  return undefined;
}

function errText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function importFailure(file: string, err: unknown): AppLoadError {
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof SyntaxError || code === "ERR_INVALID_TYPESCRIPT_SYNTAX") {
    return new AppLoadError(
      "syntax",
      file,
      `syntax error in ${file} (or a module it imports): ${errText(err)}`,
      err,
    );
  }
  if (code === "ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX") {
    return new AppLoadError(
      "syntax",
      file,
      `${file} uses TypeScript syntax Node cannot strip (enum, namespace, parameter property): ${errText(err)}`,
      err,
    );
  }
  if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") {
    return new AppLoadError(
      "import-failed",
      file,
      `${file} imports a module that cannot be found: ${errText(err)}`,
      err,
    );
  }
  return new AppLoadError(
    "import-failed",
    file,
    `${file} threw while being imported: ${errText(err)}`,
    err,
  );
}

/**
 * Import the app module named by `spec` (relative to `opts.cwd`), pick the export, call it if
 * it is a factory, and detect its shape.
 *
 * @example
 * const app = await loadApp("examples/hono.ts", { cwd: process.cwd() });
 * http.createServer(toNodeListener(app, { logger }));
 * @throws AppLoadError naming the file and the reason.
 */
export async function loadApp(spec: string, opts: { cwd: string }): Promise<LoadedApp> {
  const parsed = parseAppSpec(spec);
  const file = resolveFile(parsed.path, opts.cwd);
  if (file === undefined) {
    const abs = resolve(opts.cwd, parsed.path);
    throw new AppLoadError(
      "not-found",
      abs,
      `app module not found: ${abs} (from "${spec}" in ${opts.cwd}; tried ${extensions.join(", ")})`,
    );
  }
  let ns: Record<string, unknown>;
  try {
    ns = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw importFailure(file, err);
  }
  const where = parsed.exportName === "default" ? file : `${file}:${parsed.exportName}`;
  let value: unknown = ns[parsed.exportName];
  if (value === undefined && parsed.exportName !== "default") {
    // A CommonJS module whose exports the loader could not list statically.
    const cjs = ns.default as Record<string, unknown> | undefined;
    if (cjs !== null && typeof cjs === "object") value = cjs[parsed.exportName];
  }
  if (value === undefined) {
    const names = Object.keys(ns);
    const has = names.length > 0 ? `it exports: ${names.join(", ")}` : "it exports nothing";
    const what =
      parsed.exportName === "default" ? "no default export" : `no export "${parsed.exportName}"`;
    const hint =
      names.length > 0 && parsed.exportName === "default"
        ? ` (pick one with "${parsed.path}:${names[0]}")`
        : "";
    throw new AppLoadError("missing-export", file, `${file} has ${what}; ${has}${hint}`);
  }
  if (parsed.call) {
    if (typeof value !== "function") {
      throw new AppLoadError(
        "shape",
        file,
        `${where} is not a function, so it cannot be called as a factory (${parsed.exportName}())`,
      );
    }
    try {
      value = await (value as () => unknown)();
    } catch (err) {
      throw new AppLoadError(
        "factory-failed",
        file,
        `${where}() threw while creating the app: ${errText(err)}`,
        err,
      );
    }
  }
  try {
    return await resolveApp(value);
  } catch (err) {
    if (err instanceof AppShapeError) {
      const what = parsed.call ? `what ${where}() returned` : where;
      throw new AppLoadError("shape", file, `${what} is not an app: ${err.message}`, err);
    }
    throw new AppLoadError(
      "factory-failed",
      file,
      `${where}: preparing the app failed: ${errText(err)}`,
      err,
    );
  }
}
