/**
 * Loading the parser corpus (see corpus.test.ts for the format), for the corpus test itself and
 * for the engine and differential tests that reuse its cases.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ParserLimits } from "../../../src/core/http1/parser.ts";
import { unescapeRaw } from "./collect.ts";

const root = join(import.meta.dirname, "corpus");

export interface Expectation {
  doc: string;
  limits?: Partial<ParserLimits>;
  methods?: string[];
  eof?: boolean;
  messages: Record<string, unknown>[] | number;
  status?: number;
  code?: string;
}

export interface CorpusCase {
  kind: "request" | "response";
  valid: boolean;
  name: string;
  raw: Buffer;
  expect: Expectation;
}

/** Every corpus case, for this test and for the engine and differential tests. */
export function corpusCases(): CorpusCase[] {
  const out: CorpusCase[] = [];
  for (const [dir, kind] of [
    ["requests", "request"],
    ["responses", "response"],
  ] as const) {
    for (const group of ["valid", "invalid"] as const) {
      const path = join(root, dir, group);
      for (const file of readdirSync(path).sort()) {
        if (!file.endsWith(".http")) continue;
        const name = file.slice(0, -5);
        out.push({
          kind,
          valid: group === "valid",
          name: `${dir}/${group}/${name}`,
          raw: unescapeRaw(readFileSync(join(path, file), "latin1")),
          expect: JSON.parse(readFileSync(join(path, `${name}.json`), "utf8")) as Expectation,
        });
      }
    }
  }
  return out;
}
