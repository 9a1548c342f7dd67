/**
 * External tools the benches and peer tests use, found on PATH (plus the sbin folders, where
 * Debian puts nginx and which a non-root PATH often lacks).
 */
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

export type Tool = "nginx" | "gunicorn" | "wrk" | "curl" | "chromium" | "varnishd" | "squid";

/** How to get each tool on Debian/Ubuntu (what .ci/run does). */
export const installHint: Record<Tool, string> = {
  nginx: "apt-get install -y nginx",
  gunicorn: "apt-get install -y gunicorn",
  wrk: "apt-get install -y wrk",
  curl: "apt-get install -y curl",
  chromium: "apt-get install -y chromium",
  varnishd: "apt-get install -y varnish",
  squid: "apt-get install -y squid",
};

const extraDirs = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/** Absolute path of an executable named `name`, or undefined when it is not installed. */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), ...extraDirs].filter(Boolean);
  for (const dir of dirs) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Like findTool, but throws a message saying how to install the tool. */
export function toolPath(name: Tool): string {
  const path = findTool(name);
  if (!path) throw new Error(`${name} is not installed (try: ${installHint[name]})`);
  return path;
}
