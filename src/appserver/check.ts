/**
 * `brigade check` for the app server (gunicorn's `--check-config`, which loads the app too):
 * load the app in a child process, so whatever its import starts (timers, pools) cannot keep
 * `check` running, and report why it cannot load.
 */
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./checkApp.ts", import.meta.url));

/** Undefined when the app loads; otherwise the error to print (message and cause's stack). */
export function checkApp(
  spec: string,
  cwd: string,
  chdir: string | undefined,
  timeoutMs = 30_000,
): Promise<string | undefined> {
  const dir = chdir === undefined ? cwd : resolve(cwd, chdir);
  return new Promise((done) => {
    const child = spawn(process.execPath, [script, spec, dir], {
      cwd: dir,
      stdio: ["ignore", "ignore", "pipe"],
      timeout: timeoutMs,
    });
    let err = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (c: string) => {
      err += c;
    });
    child.on("error", (e) => done(`cannot check the app: ${e.message}`));
    child.on("close", (code, signal) => {
      if (code === 0) done(undefined);
      else if (signal) done(`loading the app did not finish within ${timeoutMs / 1000} s`);
      else done(err.trim() || `loading the app failed (exit ${code})`);
    });
  });
}
