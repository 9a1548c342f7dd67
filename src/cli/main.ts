/**
 * The `brigade` command line: parses flags from the config schema, loads and validates the
 * config, and hands over to a tier (`src/appserver/cli.ts`, `src/webserver/cli.ts`,
 * `src/stack/cli.ts`), imported lazily so `check` and `--help` load none of them.
 *
 * Exit codes: 0 ok; 1 `check` found problems (like `nginx -t`); 2 (ExitCode.config) a bad
 * command line, or a bad config for a command that would start something.
 */
import { readFileSync } from "node:fs";
import { stringify as toYaml } from "yaml";
import { flagHelp, flagsFor, flagUsage } from "../config/flags.ts";
import { type LoadOptions, loadConfig } from "../config/load.ts";
import { ConfigError } from "../config/problems.ts";
import { type Config, type SectionName, schema } from "../config/schema.ts";
import { summary } from "../config/setting.ts";
import type { TierRun } from "../config/tier.ts";
import { didYouMean } from "../config/types.ts";
import { ExitCode } from "../core/exitCodes.ts";
import { createLogger } from "../core/logger.ts";
import { type MetaFlag, parseArgv, UsageError } from "./args.ts";

interface Command {
  summary: string;
  sections: SectionName[];
  /** Takes `app.app` as its positional argument. */
  positional: boolean;
  /** The app is required (it will be started). */
  needsApp: boolean;
  meta: MetaFlag[];
  /** What to do with a valid config. */
  action: "run" | "check" | "print" | "control" | "purge";
  /** For `control` commands: their own arguments, as `--help` shows them (`POOL ±N`). */
  args?: { usage: string; min: number; max: number };
  tier?: () => Promise<{ run: TierRun }>;
}

const configFlag: MetaFlag = {
  long: "config",
  short: "c",
  metavar: "FILE",
  doc: "The config file (.ts, .mts, .js, .mjs, .json, .yaml, .yml). Default: the first brigade.config.* in the working directory.",
};
const helpFlag: MetaFlag = { long: "help", short: "h", doc: "Show this help and exit." };
const jsonFlag: MetaFlag = { long: "json", doc: "Print JSON instead of text." };
const formatFlag: MetaFlag = {
  long: "format",
  metavar: "json|yaml",
  choices: ["json", "yaml"],
  doc: "Output format. Default: json.",
};

const commands: Record<string, Command> = {
  app: {
    summary: "Run the app server: a master pre-forking workers that run APP.",
    sections: ["log", "app"],
    positional: true,
    needsApp: true,
    meta: [configFlag, helpFlag],
    action: "run",
    tier: () => import("../appserver/cli.ts"),
  },
  web: {
    summary: "Run the web server: event-driven workers facing the network.",
    sections: ["log", "web"],
    positional: false,
    needsApp: false,
    meta: [configFlag, helpFlag],
    action: "run",
    tier: () => import("../webserver/cli.ts"),
  },
  up: {
    summary: "Run both tiers under one master: the web server in front of the app server.",
    sections: ["log", "app", "web", "stack"],
    positional: true,
    needsApp: true,
    meta: [configFlag, helpFlag],
    action: "run",
    tier: () => import("../stack/cli.ts"),
  },
  status: {
    summary: "Show the running stack (brigade up): workers per tier, upstream peers, cache.",
    sections: ["log", "stack"],
    positional: false,
    needsApp: false,
    meta: [configFlag, jsonFlag, helpFlag],
    action: "control",
    args: { usage: "", min: 0, max: 0 },
  },
  reload: {
    summary:
      "Reload the running stack: new config, app workers replaced one at a time; waits for the outcome.",
    sections: ["log", "stack"],
    positional: false,
    needsApp: false,
    meta: [configFlag, jsonFlag, helpFlag],
    action: "control",
    args: { usage: "", min: 0, max: 0 },
  },
  stop: {
    summary: "Stop the running stack gracefully (as TERM) and wait until it is gone.",
    sections: ["log", "stack"],
    positional: false,
    needsApp: false,
    meta: [configFlag, helpFlag],
    action: "control",
    args: { usage: "", min: 0, max: 0 },
  },
  scale: {
    summary:
      "Change a tier's worker count in the running stack: brigade scale app +1 (or -1, or 4).",
    sections: ["log", "stack"],
    positional: false,
    needsApp: false,
    meta: [configFlag, jsonFlag, helpFlag],
    action: "control",
    args: { usage: " app|web +N|-N|N", min: 2, max: 2 },
  },
  check: {
    summary: "Validate the config without starting anything; list every problem (like nginx -t).",
    sections: ["log", "app", "web", "stack"],
    positional: true,
    needsApp: false,
    meta: [configFlag, helpFlag],
    action: "check",
  },
  purge: {
    summary:
      "Purge the HTTP cache of a running web server (URL, --tag or --key) through its cache admin endpoint.",
    sections: ["log", "web"],
    positional: true,
    needsApp: false,
    meta: [
      configFlag,
      {
        long: "tag",
        metavar: "TAG",
        doc: "Purge everything tagged TAG (Surrogate-Key / Cache-Tag).",
      },
      { long: "key", metavar: "KEY", doc: "Purge one cache key (the key template's result)." },
      {
        long: "invalidate",
        doc: "Mark stale (revalidated before the next use) instead of deleting.",
      },
      {
        long: "admin",
        metavar: "URL",
        doc: "The admin endpoint (http://127.0.0.1:8080/_cache). Default: the config's location with cacheAdmin.",
      },
      {
        long: "token",
        metavar: "TOKEN",
        doc: "Its bearer token. Default: BRIGADE_CACHE_TOKEN, else the config's cacheAdmin.token.",
      },
      helpFlag,
    ],
    action: "purge",
  },
  "print-config": {
    summary: "Print the effective config (defaults < file < env < flags), validated.",
    sections: ["log", "app", "web", "stack"],
    positional: true,
    needsApp: false,
    meta: [configFlag, formatFlag, helpFlag],
    action: "print",
  },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return String(pkg.version);
}

function mainHelp(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    "Usage: brigade <command> [options]",
    "",
    "Commands:",
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "Options:",
    "  -h, --help     Show help (also `brigade <command> --help`).",
    "  -V, --version  Show the version.",
    "",
    "Settings come from defaults < config file < BRIGADE_* env vars < flags; see docs/settings.md.",
    "",
  ].join("\n");
}

/** `brigade <name> --help`, generated from the schema. */
export function commandHelp(name: string): string {
  const c = commands[name];
  if (!c) throw new Error(`no command ${name}`);
  const arg = c.action === "purge" ? "URL" : "APP";
  const positional = c.positional ? (c.needsApp ? ` ${arg}` : ` [${arg}]`) : (c.args?.usage ?? "");
  const lines = [`Usage: brigade ${name} [options]${positional}`, "", c.summary, ""];
  if (c.action === "purge") {
    lines.push("Arguments:", "  URL     Purge every stored variant of this URL.", "");
  } else if (c.positional) {
    lines.push(
      "Arguments:",
      `  APP     ${summary(schema.app.app.doc)} [app.app; env BRIGADE_APP]`,
      "",
    );
  }
  lines.push("Options:");
  for (const m of c.meta) lines.push(`  ${flagUsage(m)}`, `        ${m.doc}`);
  lines.push("", "Settings:", flagHelp(flagsFor(c.sections)), "");
  return lines.join("\n");
}

function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}
function err(text: string): void {
  process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** Run the command line `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "-h" || first === "--help" || first === "help") {
    (first === undefined ? err : out)(mainHelp());
    return first === undefined ? ExitCode.config : ExitCode.ok;
  }
  if (first === "-V" || first === "--version") {
    out(version());
    return ExitCode.ok;
  }
  const command = commands[first];
  if (!command) {
    const guess = didYouMean(first, Object.keys(commands));
    err(
      `brigade: unknown command "${first}"${guess ? `; did you mean "${guess}"?` : ""} (see brigade --help)`,
    );
    return ExitCode.config;
  }

  const flags = flagsFor(command.sections);
  let parsed: ReturnType<typeof parseArgv>;
  try {
    parsed = parseArgv(rest, flags, command.meta);
    const max = command.args?.max ?? (command.positional ? 1 : 0);
    if (parsed.positionals.length > max) {
      throw new UsageError(`unexpected argument "${parsed.positionals.at(-1)}"`);
    }
    if (parsed.positionals.length < (command.args?.min ?? 0)) {
      throw new UsageError(`usage: brigade ${first}${command.args?.usage ?? ""}`);
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`brigade ${first}: ${e.message}`);
    return ExitCode.config;
  }
  if (parsed.meta.has("help")) {
    out(commandHelp(first));
    return ExitCode.ok;
  }
  const overrides = [...parsed.overrides];
  const app = command.positional && command.action !== "purge" ? parsed.positionals[0] : undefined;
  if (app !== undefined)
    overrides.push({ section: "app", key: "app", value: app, source: "argument APP" });
  const configFile = parsed.meta.get("config");
  // Kept as is, so a reload (HUP) re-applies the same file, env and flags.
  const options: LoadOptions = {
    cwd: process.cwd(),
    env: { ...process.env },
    file: typeof configFile === "string" ? configFile : undefined,
    overrides,
  };

  const failCode = command.action === "check" ? ExitCode.failure : ExitCode.config;
  let config: Config;
  let file: string | undefined;
  try {
    ({ config, file } = await loadConfig(options));
    if (command.needsApp && config.app.app === undefined) {
      throw new ConfigError([
        {
          source: `brigade ${first}`,
          path: ["app", "app"],
          message: "no app given; pass APP, set app.app in the config file, or set BRIGADE_APP",
        },
      ]);
    }
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const n = e.problems.length;
    err(`${e.message}\nbrigade ${first}: ${n} problem${n === 1 ? "" : "s"} in the config`);
    return failCode;
  }

  if (command.action === "check") {
    // The web server's pipeline is compiled too (locations, listeners, certificates, modules):
    // what only compiling can find is a config problem all the same.
    // A config that names an app may be brigade up's, whose locations send to `proxy: "app"`
    // (the stack's group of app workers): compiled as brigade up would, that group included.
    const quiet = createLogger({ level: "warn", format: "text" });
    const bad =
      config.app.app !== undefined
        ? await (await import("../stack/cli.ts")).checkWeb(config, file, quiet)
        : await (await import("../webserver/cli.ts")).check(config, file, quiet);
    if (bad) {
      const n = bad.problems.length;
      err(`${bad.message}\nbrigade ${first}: ${n} problem${n === 1 ? "" : "s"} in the config`);
      return failCode;
    }
    // Like gunicorn's --check-config, an app that is named must also load.
    if (config.app.app !== undefined) {
      const { checkApp } = await import("../appserver/check.ts");
      const problem = await checkApp(config.app.app, process.cwd(), config.app.chdir);
      if (problem !== undefined) {
        err(`${problem}\nbrigade check: the app (app.app) cannot be loaded`);
        return ExitCode.failure;
      }
    }
    const where = file ? `config ${file}` : "no config file (defaults, env and flags)";
    const app = config.app.app !== undefined ? `; app ${config.app.app} loads` : "";
    out(`brigade check: ok: ${where}${app}`);
    return ExitCode.ok;
  }
  if (command.action === "control") {
    const control = await import("../stack/control.ts");
    return control.command(first, parsed.positionals, config, file, parsed.meta.has("json"));
  }
  if (command.action === "purge") {
    const { purgeCommand } = await import("../webserver/cache/cli.ts");
    const str = (k: string): string | undefined => {
      const v = parsed.meta.get(k);
      return typeof v === "string" ? v : undefined;
    };
    return purgeCommand(
      config,
      {
        url: parsed.positionals[0],
        tag: str("tag"),
        key: str("key"),
        invalidate: parsed.meta.get("invalidate") === true,
        admin: str("admin"),
        token: str("token"),
      },
      out,
      err,
    );
  }
  if (command.action === "print") {
    const json = JSON.stringify(config, null, 2);
    // Through JSON first, so both formats show exactly the JSON-able canonical form.
    out(parsed.meta.get("format") === "yaml" ? toYaml(JSON.parse(json)) : json);
    return ExitCode.ok;
  }

  let logger: ReturnType<typeof createLogger>;
  try {
    logger = createLogger({
      level: config.log.level,
      format: config.log.format,
      file: config.log.errorLog,
    });
  } catch (e) {
    err(
      `brigade ${first}: cannot open the error log ${config.log.errorLog}: ${(e as Error).message}`,
    );
    return ExitCode.config;
  }
  const tier = await command.tier!();
  return tier.run(config, {
    file,
    logger,
    reload: async () => (await loadConfig(options)).config,
  });
}
