/**
 * Command-line flags, derived from the schema: which flags a command takes, their names, and
 * the `--help` text. A setting's flag is its key in kebab-case unless declared otherwise; when a
 * command takes several sections that declare the same flag (`brigade up`: `--workers` in app
 * and web), each gets its section as a prefix (`--app-workers`, `--web-workers`) and loses its
 * short form.
 */
import { type SectionName, schema } from "./schema.ts";
import {
  type AnySetting,
  defaultText,
  envName,
  flagName,
  type Section,
  summary,
} from "./setting.ts";

export interface FlagSpec {
  /** Without dashes: `workers`, `app-workers`. */
  long: string;
  /** One letter, without the dash. */
  short?: string;
  section: SectionName;
  key: string;
  setting: AnySetting;
}

/** The setting flags of a command taking these sections. */
export function flagsFor(sections: readonly SectionName[]): FlagSpec[] {
  const all: FlagSpec[] = [];
  for (const section of sections) {
    for (const [key, s] of Object.entries(schema[section] as Section)) {
      const long = flagName(key, s);
      if (long === undefined) continue;
      all.push({
        long,
        ...(s.short !== undefined ? { short: s.short } : {}),
        section,
        key,
        setting: s,
      });
    }
  }
  const count = new Map<string, number>();
  for (const f of all) count.set(f.long, (count.get(f.long) ?? 0) + 1);
  return all.map((f) =>
    (count.get(f.long) ?? 0) > 1
      ? { long: `${f.section}-${f.long}`, section: f.section, key: f.key, setting: f.setting }
      : f,
  );
}

/** `-w, --workers N|auto` */
export function flagUsage(f: {
  long: string;
  short?: string | undefined;
  setting?: AnySetting;
  metavar?: string;
}): string {
  const metavar = f.metavar ?? (f.setting ? f.setting.type.metavar : "");
  const names = f.short !== undefined ? `-${f.short}, --${f.long}` : `    --${f.long}`;
  return metavar === "" ? names : `${names} ${metavar}`;
}

/** Help lines for the setting flags: usage, then the doc's first sentence, env var and default. */
export function flagHelp(flags: readonly FlagSpec[]): string {
  const lines: string[] = [];
  for (const f of flags) {
    const env = envName(f.section, f.key, f.setting);
    const repeat = f.setting.type.kind === "list" ? "; repeatable" : "";
    const bool = f.setting.type.kind === "boolean" ? `; --no-${f.long} to turn off` : "";
    lines.push(`  ${flagUsage(f)}`);
    lines.push(`        ${summary(f.setting.doc)}`);
    lines.push(
      `        [${f.section}.${f.key}${env ? `; env ${env}` : ""}; default ${defaultText(f.setting)}${repeat}${bool}]`,
    );
  }
  return lines.join("\n");
}
