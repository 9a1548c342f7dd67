/**
 * A small argv parser driven by the schema's flag table (node:util parseArgs cannot suggest a
 * flag for a typo, nor tell a repeatable list flag from a scalar one by the schema).
 *
 * Accepts `--flag value`, `--flag=value`, `-f value`, `-fvalue`, `--no-flag` for booleans,
 * repeated list flags (one item each), positionals, and `--` to end the flags.
 */
import type { FlagSpec } from "../config/flags.ts";
import type { Override } from "../config/load.ts";
import { didYouMean } from "../config/types.ts";

/** A flag of the command itself rather than a setting (`-c FILE`, `--help`, `--format`). */
export interface MetaFlag {
  long: string;
  short?: string;
  /** Takes a value shown as this; without it the flag is a switch. */
  metavar?: string;
  doc: string;
  choices?: readonly string[];
}

export interface ParsedArgs {
  overrides: Override[];
  /** Meta flags given: the value, or true for switches. */
  meta: Map<string, string | true>;
  positionals: string[];
}

/** A command line that cannot be understood; exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export function parseArgv(
  argv: readonly string[],
  flags: readonly FlagSpec[],
  meta: readonly MetaFlag[],
): ParsedArgs {
  const byLong = new Map<string, FlagSpec>(flags.map((f) => [f.long, f]));
  const byShort = new Map<string, FlagSpec>();
  for (const f of flags) if (f.short !== undefined) byShort.set(f.short, f);
  const metaLong = new Map<string, MetaFlag>(meta.map((m) => [m.long, m]));
  const metaShort = new Map<string, MetaFlag>();
  for (const m of meta) if (m.short !== undefined) metaShort.set(m.short, m);

  const out: ParsedArgs = { overrides: [], meta: new Map(), positionals: [] };
  const lists = new Map<FlagSpec, { source: string; items: unknown[] }>();
  const known = [
    ...flags.flatMap((f) => [`--${f.long}`, ...(f.short ? [`-${f.short}`] : [])]),
    ...meta.flatMap((m) => [`--${m.long}`, ...(m.short ? [`-${m.short}`] : [])]),
    ...flags.filter((f) => f.setting.type.kind === "boolean").map((f) => `--no-${f.long}`),
  ];

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      out.positionals.push(arg);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    let spec: FlagSpec | undefined;
    let metaSpec: MetaFlag | undefined;
    let negated = false;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq < 0 ? arg : arg.slice(0, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
      const long = name.slice(2);
      spec = byLong.get(long);
      metaSpec = metaLong.get(long);
      if (!spec && !metaSpec && long.startsWith("no-")) {
        const positive = byLong.get(long.slice(3));
        if (positive?.setting.type.kind === "boolean") {
          spec = positive;
          negated = true;
        }
      }
    } else {
      name = arg.slice(0, 2);
      inline = arg.length > 2 ? arg.slice(2) : undefined;
      spec = byShort.get(arg[1]!);
      metaSpec = metaShort.get(arg[1]!);
    }
    if (!spec && !metaSpec) throw new UsageError(unknownFlag(name, flags, known));
    const takesValue = spec
      ? spec.setting.type.kind !== "boolean"
      : metaSpec?.metavar !== undefined;
    let value: string | undefined;
    if (takesValue) {
      if (inline !== undefined) value = inline;
      else if (i + 1 < argv.length) value = argv[++i]!;
      else throw new UsageError(`flag "${name}" needs a value`);
    } else if (inline !== undefined && !spec) {
      throw new UsageError(`flag "${name}" takes no value`);
    }
    if (metaSpec) {
      if (metaSpec.choices && value !== undefined && !metaSpec.choices.includes(value)) {
        throw new UsageError(
          `flag "${name}": expected one of ${metaSpec.choices.join(", ")}, found "${value}"`,
        );
      }
      out.meta.set(metaSpec.long, value ?? true);
      continue;
    }
    const s = spec!;
    const type = s.setting.type;
    if (type.kind === "boolean") {
      // `--flag=false` is accepted too; the type's own check reports a bad word.
      const v = inline !== undefined ? type.fromString(inline) : !negated;
      out.overrides.push({ section: s.section, key: s.key, value: v, source: name });
    } else if (type.kind === "list") {
      const entry = lists.get(s) ?? { source: name, items: [] };
      entry.items.push(type.item ? type.item.fromString(value!) : value);
      lists.set(s, entry);
    } else {
      out.overrides.push({
        section: s.section,
        key: s.key,
        value: type.fromString(value!),
        source: name,
      });
    }
  }
  for (const [s, { source, items }] of lists) {
    out.overrides.push({ section: s.section, key: s.key, value: items, source });
  }
  return out;
}

/**
 * The message for an unknown flag, with a did-you-mean. A flag that exists but is ambiguous in
 * this command (`--workers` or `-w` in `brigade up`) gets the prefixed forms instead.
 */
function unknownFlag(name: string, flags: readonly FlagSpec[], known: readonly string[]): string {
  // Unprefixed names of prefixed flags: "--workers" -> ["--app-workers", "--web-workers"].
  const aliases = new Map<string, string[]>();
  for (const f of flags) {
    const plain = f.long.startsWith(`${f.section}-`)
      ? f.long.slice(f.section.length + 1)
      : undefined;
    if (plain === undefined || known.includes(`--${plain}`)) continue;
    for (const alias of [`--${plain}`, ...(f.setting.short ? [`-${f.setting.short}`] : [])]) {
      aliases.set(alias, [...(aliases.get(alias) ?? []), `--${f.long}`]);
    }
  }
  const exact = aliases.get(name);
  if (exact)
    return `flag "${name}" is ambiguous here; use ${exact.map((a) => `"${a}"`).join(" or ")}`;
  // Short flags are one letter: any other letter is "close", so suggest only among long ones.
  const guess = name.startsWith("--")
    ? didYouMean(
        name,
        [...known, ...aliases.keys()].filter((k) => k.startsWith("--")),
      )
    : undefined;
  const suggestion = guess === undefined ? undefined : (aliases.get(guess) ?? [guess]);
  return `unknown flag "${name}"${suggestion ? `; did you mean ${suggestion.map((a) => `"${a}"`).join(" or ")}?` : ""} (see --help)`;
}
