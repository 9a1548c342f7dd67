/**
 * Loading the config: defaults < config file < environment (`BRIGADE_...`) < command-line flags.
 *
 * Every layer is validated, and every problem of every layer is collected before anything is
 * refused, so one `brigade check` lists them all. Each problem names its source (the file, the
 * env var, the flag) and the key path.
 */
import { existsSync, readFileSync } from "node:fs";
import { extname, isAbsolute, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parse as parseYaml } from "yaml";
import { ConfigError, type Problem } from "./problems.ts";
import { type Config, type SectionName, schema, sectionNames } from "./schema.ts";
import { type AnySetting, defaultInput, type Env, envName, type Section } from "./setting.ts";
import { describeFound, type Issue, invalid, unknownKey } from "./types.ts";

/** A value set on the command line, already in input form (see src/cli). */
export interface Override {
  section: SectionName;
  key: string;
  value: unknown;
  /** How the user wrote it, for errors: `--workers`, `-w`, `argument APP`. */
  source: string;
}

export interface LoadOptions {
  /** Where relative paths are resolved and config files are looked for. Default: process.cwd(). */
  cwd?: string;
  /** The environment. Default: process.env. */
  env?: Env;
  /** The config file (`-c FILE`). Without it, the first of `configFileNames` found in cwd. */
  file?: string | undefined;
  /** Command-line values, highest precedence. */
  overrides?: readonly Override[];
}

export interface Loaded {
  config: Config;
  /** The absolute path of the config file read, if any. */
  file: string | undefined;
}

/** Looked for in this order in the working directory when no `-c FILE` is given. */
export const configFileNames = [
  "brigade.config.ts",
  "brigade.config.mts",
  "brigade.config.js",
  "brigade.config.mjs",
  "brigade.config.json",
  "brigade.config.yaml",
  "brigade.config.yml",
] as const;

/** The first config file present in `cwd`, as an absolute path. */
export function findConfigFile(cwd: string): string | undefined {
  for (const name of configFileNames) {
    const path = resolve(cwd, name);
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** How a file is named in messages: relative to cwd when inside it. */
export function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file;
}

// Each load imports the module under a new URL: ESM caches modules by URL, and a reload (HUP)
// must see the edited file.
let generation = 0;

function causeOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // Node puts the failing file:line and a code excerpt above the message of a syntax error.
  const where = /^\S+:(\d+)\n/.exec(err.stack ?? "");
  const location = where ? ` (line ${where[1]})` : "";
  return `${err.name}: ${err.message}${location}`;
}

/**
 * Read a config file into its plain-object form. JS/TS modules are imported afresh on every
 * call (so a reload sees edits); modules they import themselves are cached by Node and are NOT
 * re-evaluated. Throws `ConfigError` when the file cannot be read, parsed or imported.
 */
export async function readConfigFile(file: string, source: string): Promise<unknown> {
  const fail = (message: string): never => {
    throw new ConfigError([{ source, path: [], message }]);
  };
  if (!existsSync(file)) fail("config file not found");
  const ext = extname(file).toLowerCase();
  if ([".ts", ".mts", ".js", ".mjs", ".cts", ".cjs"].includes(ext)) {
    let mod: Record<string, unknown>;
    try {
      generation += 1;
      mod = await import(`${pathToFileURL(file).href}?reload=${generation}`);
    } catch (err) {
      return fail(`could not be loaded: ${causeOf(err)}`);
    }
    if (!("default" in mod))
      return fail("no default export; write `export default defineConfig({...})`");
    return mod.default;
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    return fail(`could not be read: ${causeOf(err)}`);
  }
  try {
    if (ext === ".json") return JSON.parse(text);
    if (ext === ".yaml" || ext === ".yml") return parseYaml(text) ?? {};
  } catch (err) {
    return fail(`could not be parsed: ${causeOf(err)}`);
  }
  return fail(
    `unknown config file type "${ext}"; expected one of ${configFileNames.map((n) => extname(n)).join(", ")}`,
  );
}

interface Candidate {
  value: unknown;
  source: string;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Resolve the config from a file's contents (already read), the environment and overrides.
 * Pure and synchronous: throws `ConfigError` with every problem found.
 */
export function resolveConfig(input: {
  file?: { value: unknown; source: string } | undefined;
  env?: Env;
  overrides?: readonly Override[];
}): Config {
  const env = input.env ?? process.env;
  const problems: Problem[] = [];
  const candidates = new Map<string, Candidate[]>();
  const add = (section: string, key: string, c: Candidate) => {
    const id = `${section}.${key}`;
    const list = candidates.get(id) ?? [];
    list.push(c);
    candidates.set(id, list);
  };

  // Layer 2: the file. Unknown sections and keys are problems (with a did-you-mean).
  if (input.file) {
    const { value, source } = input.file;
    if (!isPlainObject(value)) {
      problems.push({
        source,
        path: [],
        message: `expected an object of sections (${sectionNames.join(", ")}), found ${describeFound(value)}`,
      });
    } else {
      for (const [section, body] of Object.entries(value)) {
        if (!Object.hasOwn(schema, section)) {
          problems.push({
            source,
            path: [section],
            message: unknownKey(sectionNames, "section")(section),
          });
          continue;
        }
        if (body === undefined || body === null) continue;
        if (!isPlainObject(body)) {
          problems.push({
            source,
            path: [section],
            message: `expected an object of settings, found ${describeFound(body)}`,
          });
          continue;
        }
        const settings = schema[section as SectionName] as Section;
        for (const [key, v] of Object.entries(body)) {
          if (!Object.hasOwn(settings, key)) {
            problems.push({
              source,
              path: [section, key],
              message: unknownKey(Object.keys(settings))(key),
            });
          } else if (v !== undefined) {
            add(section, key, { value: v, source });
          }
        }
      }
    }
  }

  // Layer 3: the environment. Unknown BRIGADE_* variables are ignored: other tools share the
  // prefix (the test runner's BRIGADE_TEST_CONCURRENCY).
  for (const section of sectionNames) {
    for (const [key, s] of Object.entries(schema[section] as Section)) {
      const name = envName(section, key, s);
      const text = name === undefined ? undefined : env[name];
      if (name !== undefined && text !== undefined && text !== "") {
        add(section, key, { value: s.type.fromString(text), source: name });
      }
    }
  }

  // Layer 4: the command line.
  for (const o of input.overrides ?? [])
    add(o.section, o.key, { value: o.value, source: o.source });

  const config: Record<string, Record<string, unknown>> = {};
  for (const section of sectionNames) {
    const out: Record<string, unknown> = {};
    config[section] = out;
    for (const [key, s] of Object.entries(schema[section] as Section)) {
      const layers: Candidate[] = [
        { value: defaultInput(s, env), source: `default of ${section}.${key}` },
        ...(candidates.get(`${section}.${key}`) ?? []),
      ];
      // Every layer is checked, even overridden ones: a bad file stays bad under a good flag.
      for (const c of layers) {
        const v = checkValue(s, c.value, [section, key], c.source, problems);
        if (v !== invalid) out[key] = v;
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config as Config;
}

function checkValue(
  s: AnySetting,
  value: unknown,
  path: [string, string],
  source: string,
  problems: Problem[],
): unknown {
  const issues: Issue[] = [];
  const v = s.type.check(value, path, issues);
  for (const issue of issues) problems.push({ source, path: issue.path, message: issue.message });
  return v;
}

/**
 * Load the config for a command: find and read the file, apply env and overrides, validate.
 * Throws `ConfigError` listing every problem. Call it again with the same options to reload
 * (on HUP): the file is re-read (JS/TS re-imported), the same env and flags re-applied.
 */
export async function loadConfig(options: LoadOptions = {}): Promise<Loaded> {
  const cwd = options.cwd ?? process.cwd();
  const file = options.file !== undefined ? resolve(cwd, options.file) : findConfigFile(cwd);
  let fileLayer: { value: unknown; source: string } | undefined;
  const problems: Problem[] = [];
  if (file !== undefined) {
    const source = displayPath(file, cwd);
    try {
      fileLayer = { value: await readConfigFile(file, source), source };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      // Go on without the file, to list the env and flag problems too.
      problems.push(...err.problems);
    }
  }
  try {
    const config = resolveConfig({
      file: fileLayer,
      env: options.env ?? process.env,
      overrides: options.overrides ?? [],
    });
    if (problems.length > 0) throw new ConfigError(problems);
    return { config, file };
  } catch (err) {
    if (err instanceof ConfigError && problems.length > 0 && !err.problems.includes(problems[0]!)) {
      throw new ConfigError([...problems, ...err.problems]);
    }
    throw err;
  }
}
