/**
 * Development reload (`app.reload`, gunicorn's `--reload`): watch the app's source and replace
 * the workers when it changes, as HUP does (the config is read again too).
 *
 * Watched: the folder of the app module, recursively (source extensions only; `node_modules`
 * and dot-folders ignored), the config file, and `reloadExtraFiles` (files or folders). Events
 * are debounced, so saving several files at once reloads once. Recursive `fs.watch` is inotify
 * on Linux (one watch per folder): meant for a source tree, not for production.
 */
import { type FSWatcher, statSync, watch } from "node:fs";
import { dirname, extname, resolve, sep } from "node:path";
import type { Logger } from "../core/logger.ts";
import { parseAppSpec } from "./load.ts";

const sourceExtensions = new Set([".ts", ".mts", ".cts", ".js", ".mjs", ".cjs", ".json"]);
const debounceMs = 150;

export interface ReloadWatch {
  close(): void;
}

/** Is a changed path (relative to a watched folder) one that should reload? */
export function isSourceChange(relative: string): boolean {
  const parts = relative.split(sep);
  if (parts.some((p) => p === "node_modules" || (p.startsWith(".") && p !== "." && p !== ".."))) {
    return false;
  }
  return sourceExtensions.has(extname(relative));
}

export function watchForReload(options: {
  app: string;
  cwd: string;
  configFile: string | undefined;
  extra: readonly string[];
  logger: Logger;
  onChange: () => void;
}): ReloadWatch {
  const { logger } = options;
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let changed: string | undefined;
  const fire = (what: string): void => {
    changed ??= what;
    clearTimeout(timer);
    timer = setTimeout(() => {
      logger.info("source changed; reloading", { file: changed });
      changed = undefined;
      options.onChange();
    }, debounceMs);
  };
  const add = (path: string, filter: (name: string) => boolean): void => {
    let isDir = false;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      logger.warn("reload: cannot watch a path that does not exist", { path });
      return;
    }
    try {
      const w = watch(path, { recursive: isDir, persistent: false }, (_event, name) => {
        const rel = name === null ? "" : String(name);
        if (!isDir || filter(rel)) fire(isDir ? resolve(path, rel) : path);
      });
      w.on("error", (error) => logger.warn("reload: watch failed", { path, error }));
      watchers.push(w);
    } catch (error) {
      logger.warn("reload: cannot watch", { path, error });
    }
  };
  const appDir = dirname(resolve(options.cwd, parseAppSpec(options.app).path));
  add(appDir, isSourceChange);
  if (options.configFile !== undefined) add(options.configFile, () => true);
  for (const extra of options.extra) add(resolve(options.cwd, extra), () => true);
  logger.info("reload: watching for changes", { dir: appDir });
  return {
    close() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
