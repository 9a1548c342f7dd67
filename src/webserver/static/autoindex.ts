/**
 * Directory listings (nginx `autoindex`): reading a directory, and rendering it as HTML or as
 * nginx's `autoindex_format json`.
 */
import type { Dirent } from "node:fs";
import { lstat, opendir, stat } from "node:fs/promises";
import { httpDate } from "./conditional.ts";
import type { SymlinkPolicy } from "./symlinks.ts";

export interface DirEntry {
  readonly name: string;
  readonly directory: boolean;
  readonly size: number;
  readonly mtimeMs: number;
}

export interface ListOptions {
  /** List names starting with a dot (nginx never does; we do when dotfiles are allowed). */
  readonly showHidden: boolean;
  /** Links are listed only where the policy would let them be served. */
  readonly symlinks: SymlinkPolicy;
  /** Stop after this many entries (a huge directory must not take the worker's memory). */
  readonly limit: number;
}

async function describe(
  dir: string,
  d: Dirent,
  symlinks: SymlinkPolicy,
): Promise<DirEntry | undefined> {
  const path = `${dir}/${d.name}`;
  try {
    if (d.isSymbolicLink()) {
      if (symlinks === "off") return undefined;
      const [link, target] = await Promise.all([lstat(path), stat(path)]);
      if (symlinks === "ifOwnerMatch" && link.uid !== target.uid) return undefined;
      if (!target.isFile() && !target.isDirectory()) return undefined;
      return {
        name: d.name,
        directory: target.isDirectory(),
        size: target.size,
        mtimeMs: target.mtimeMs,
      };
    }
    if (!d.isFile() && !d.isDirectory()) return undefined;
    const st = await stat(path);
    return { name: d.name, directory: st.isDirectory(), size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    return undefined; // vanished or unreadable while listing
  }
}

/** Directories first, then files, each by name in code-point order (as nginx sorts). */
function order(a: DirEntry, b: DirEntry): number {
  if (a.directory !== b.directory) return a.directory ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The entries of `dir` (absolute path), sorted. */
export async function listDirectory(dir: string, options: ListOptions): Promise<DirEntry[]> {
  const handle = await opendir(dir, { bufferSize: 256 });
  const pending: Dirent[] = [];
  try {
    for await (const d of handle) {
      if (!options.showHidden && d.name.startsWith(".")) continue;
      pending.push(d);
      if (pending.length >= options.limit) break;
    }
  } catch (err) {
    // `break` closes the handle; a read error leaves it to us.
    await handle.close().catch(() => {});
    throw err;
  }
  const out: DirEntry[] = [];
  for (let i = 0; i < pending.length; i += 64) {
    const batch = await Promise.all(
      pending.slice(i, i + 64).map((d) => describe(dir, d, options.symlinks)),
    );
    for (const e of batch) if (e) out.push(e);
  }
  return out.sort(order);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function humanSize(size: number): string {
  if (size < 1024) return String(size);
  const units = ["K", "M", "G", "T"];
  let n = size;
  let unit = "";
  for (const u of units) {
    if (n < 1024) break;
    n /= 1024;
    unit = u;
  }
  return `${n < 10 ? n.toFixed(1) : Math.round(n)}${unit}`;
}

/** An HTML page listing `entries` of the directory at request path `uri` (ending in `/`). */
export function renderHtml(uri: string, entries: readonly DirEntry[]): string {
  const title = escapeHtml(`Index of ${uri}`);
  const rows: string[] = [];
  if (uri !== "/") rows.push('<tr><td><a href="../">../</a></td><td></td><td></td></tr>');
  for (const e of entries) {
    const name = e.directory ? `${e.name}/` : e.name;
    const href = encodeURIComponent(e.name.toWellFormed()) + (e.directory ? "/" : "");
    rows.push(
      `<tr><td><a href="${escapeHtml(href)}">${escapeHtml(name)}</a></td>` +
        `<td>${escapeHtml(httpDate(e.mtimeMs))}</td>` +
        `<td>${e.directory ? "-" : humanSize(e.size)}</td></tr>`,
    );
  }
  return `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>${title}</title>
<style>body{font-family:sans-serif}td{padding:0 1em 0 0}td:nth-child(3){text-align:right}</style>
</head>
<body>
<h1>${title}</h1>
<table>
${rows.join("\n")}
</table>
</body>
</html>
`;
}

/** nginx's `autoindex_format json`: name, type, mtime and (files only) size of each entry. */
export function renderJson(entries: readonly DirEntry[]): string {
  const items = entries.map((e) =>
    e.directory
      ? { name: e.name, type: "directory", mtime: httpDate(e.mtimeMs) }
      : { name: e.name, type: "file", mtime: httpDate(e.mtimeMs), size: e.size },
  );
  return `${JSON.stringify(items)}\n`;
}

/** q-value of the best media range in an `Accept` value that matches `type`. */
function acceptQuality(accept: string, type: string): number {
  const [major] = type.split("/");
  let best = -1;
  let bestSpecificity = -1;
  for (const member of accept.split(",")) {
    const [range, ...params] = member.split(";");
    const r = range!.trim().toLowerCase();
    let specificity: number;
    if (r === type) specificity = 2;
    else if (r === `${major}/*`) specificity = 1;
    else if (r === "*/*") specificity = 0;
    else continue;
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m) q = Number(m[1]);
    }
    if (specificity > bestSpecificity) {
      bestSpecificity = specificity;
      best = q;
    }
  }
  return best < 0 ? 0 : best;
}

/** True when `Accept` prefers JSON to HTML (a browser's `*\/*` never does). */
export function prefersJson(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const json = acceptQuality(accept, "application/json");
  return json > 0 && json > acceptQuality(accept, "text/html");
}
