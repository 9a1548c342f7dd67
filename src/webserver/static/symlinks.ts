/**
 * The symbolic-link policy (nginx `disable_symlinks`), checked on every path component below the
 * location's directory, not only the last one.
 *
 * - `on`: links are followed (nginx `disable_symlinks off`, its default).
 * - `off`: no component below the directory may be a link (nginx `disable_symlinks on`).
 * - `ifOwnerMatch`: a component may be a link only if the link and what it points to have the
 *   same owner (nginx `disable_symlinks if_not_owner`).
 *
 * The directory itself (and its parents) may be links: deploying by switching a `current` link
 * to a new release is common, and nginx's `from=$document_root` means the same.
 *
 * How: once the file is open, the kernel says where the descriptor really is
 * (`/proc/self/fd/N`); when that is the directory's real path plus the requested rest, no
 * component was a link, whatever happened between lookup and open. Only when it differs (or
 * without /proc) are the components walked with lstat.
 */
import { lstat, readlink, realpath, stat } from "node:fs/promises";

export type SymlinkPolicy = "on" | "off" | "ifOwnerMatch";

let procFd: boolean | undefined;

async function realPathOfFd(fd: number): Promise<string | undefined> {
  if (procFd === false) return undefined;
  try {
    const p = await readlink(`/proc/self/fd/${fd}`);
    procFd = true;
    return p;
  } catch {
    procFd = false;
    return undefined;
  }
}

/** The real path of a directory, memoised for `ttlMs` (a deploy may re-point a link). */
export class RealDirs {
  readonly #ttlMs: number;
  readonly #known = new Map<string, { real: string; at: number }>();

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs;
  }

  async get(dir: string, now = Date.now()): Promise<string> {
    const hit = this.#known.get(dir);
    if (hit && now - hit.at < this.#ttlMs) return hit.real;
    const real = await realpath(dir);
    if (this.#known.size > 1024) this.#known.clear();
    this.#known.set(dir, { real, at: now });
    return real;
  }
}

/**
 * Whether `file` (absolute, normalised, inside `dir`), already opened as `fd` (or undefined when
 * not opened), may be served under `policy`. `realDir` is `dir`'s real path.
 */
export async function symlinksAllowed(
  policy: SymlinkPolicy,
  dir: string,
  realDir: string,
  file: string,
  fd: number | undefined,
): Promise<boolean> {
  if (policy === "on") return true;
  const rest = file.slice(dir.length).replace(/\/+$/, "");
  if (rest === "") return true;
  if (fd !== undefined) {
    const real = await realPathOfFd(fd);
    if (real !== undefined && real === (realDir === "/" ? rest : realDir + rest)) return true;
  }
  // Some component is a link (or /proc is not there): look at each.
  const segments = rest.split("/").filter((s) => s !== "");
  let current = dir === "/" ? "" : dir;
  for (const segment of segments) {
    current = `${current}/${segment}`;
    let link: Awaited<ReturnType<typeof lstat>>;
    try {
      link = await lstat(current);
    } catch {
      return false;
    }
    if (!link.isSymbolicLink()) continue;
    if (policy === "off") return false;
    try {
      const target = await stat(current);
      if (target.uid !== link.uid) return false;
    } catch {
      return false;
    }
  }
  return true;
}
