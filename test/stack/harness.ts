/**
 * Start `brigade up` for a test: a temp dir with an app file (a fetch handler whose version and
 * behaviour the test picks, and can rewrite for a deploy) and a `public/` directory, every address
 * on an ephemeral loopback port, the runtime dir inside the temp dir. Resolves once the readiness
 * summary is printed, with the addresses it names. Control commands run the real CLI.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TestContext } from "node:test";
import { type Spawned, spawnNode } from "../helpers/process.ts";

export const bin = new URL("../../bin/brigade.ts", import.meta.url).pathname;

/** An app: `version` answers every request's body and `x-version`; `mode` how it behaves. */
export function appSource(version: string, mode: "ok" | "500" | "syntax" = "ok"): string {
  if (mode === "syntax") return "export default { fetch( {{ not typescript\n";
  return `
const version = ${JSON.stringify(version)};
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const h = { "x-version": version, "content-type": "text/plain" };
    ${mode === "500" ? 'return new Response("broken " + version + "\\n", { status: 500, headers: h });' : ""}
    if (url.pathname === "/cached") {
      return new Response("cached " + version + "\\n", {
        headers: { ...h, "cache-control": "public, max-age=60" },
      });
    }
    if (url.pathname === "/slow") {
      await new Promise((r) => setTimeout(r, Number(url.searchParams.get("ms") ?? 1000)));
      return new Response("slow " + version + "\\n", { headers: h });
    }
    if (url.pathname === "/echo") {
      const body = await request.text();
      return new Response("echo " + version + " " + body.length + "\\n", { headers: h });
    }
    return new Response("version " + version + " " + url.pathname + "\\n", { headers: h });
  },
};
`;
}

export interface Stack extends Spawned {
  dir: string;
  appFile: string;
  runtimeDir: string;
  /** The web listener's port and the admin listener's port. */
  port: number;
  admin: number;
  masterPid: number;
  /** Run a CLI command against this stack (status, reload, stop, scale). */
  cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-stack-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function startStack(
  t: TestContext,
  opts: {
    args?: string[];
    app?: string;
    env?: NodeJS.ProcessEnv;
    files?: Record<string, string>;
  } = {},
): Promise<Stack> {
  const dir = tempDir(t);
  for (const [name, text] of Object.entries(opts.files ?? {})) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const appFile = join(dir, "app.ts");
  writeFileSync(appFile, opts.app ?? appSource("1"));
  mkdirSync(join(dir, "public"));
  writeFileSync(join(dir, "public", "style.css"), "body { color: #123; }\n");
  const runtimeDir = join(dir, "run");
  const common = ["--runtime-dir", runtimeDir, "--log-format", "text"];
  const args = [
    bin,
    "up",
    "app.ts",
    "--listen",
    "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    ...common,
    ...(opts.args ?? []),
  ];
  const p = spawnNode(t, args, { cwd: dir, env: { ...process.env, ...opts.env } });
  const ready = await p.waitForLine(/^brigade up: ready \(master pid (\d+)\)/, {
    timeoutMs: 60_000,
  });
  const web = await p.waitForLine(/^ {2}web +http:\/\/127\.0\.0\.1:(\d+)/, { from: ready.index });
  const admin = await p.waitForLine(/^ {2}admin +http:\/\/127\.0\.0\.1:(\d+)/, {
    from: ready.index,
  });
  const cli = async (cmd: string[]) => {
    const c = spawnNode(t, [bin, ...cmd, "--runtime-dir", runtimeDir], { cwd: dir });
    const { code } = await c.exited;
    const out = c.lines.join("\n");
    return { code, stdout: out, stderr: out };
  };
  return {
    ...p,
    dir,
    appFile,
    runtimeDir,
    port: Number(web.match[1]),
    admin: Number(admin.match[1]),
    masterPid: Number(ready.match[1]),
    cli,
  };
}

/** A request with undici's keep-alive (fetch), never throwing: status 0 and the error instead. */
export async function get(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: string; headers: Headers; error?: string }> {
  try {
    const r = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
    return { status: r.status, body: await r.text(), headers: r.headers };
  } catch (e) {
    return { status: 0, body: "", headers: new Headers(), error: String((e as Error).cause ?? e) };
  }
}
