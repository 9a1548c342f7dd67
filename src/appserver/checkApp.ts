/** `node checkApp.ts SPEC DIR`: load the app (for `brigade check`); exit 0, or 4 with the error. */
import { ExitCode } from "../core/exitCodes.ts";
import { AppLoadError, formatAppLoadError, loadApp } from "./load.ts";

const [spec, dir] = process.argv.slice(2);
try {
  await loadApp(spec!, { cwd: dir! });
  process.exit(ExitCode.ok);
} catch (error) {
  process.stderr.write(
    `${error instanceof AppLoadError ? formatAppLoadError(error) : String(error)}\n`,
  );
  process.exit(ExitCode.appLoad);
}
