/**
 * The import direction of ARCHITECTURE.md, enforced: a folder of src/ may import only folders
 * below it in this list, and webserver/ and appserver/ never import each other (they talk over
 * sockets). A module under webserver/<module>/ never imports another module's folder.
 */
import assert from "node:assert/strict";
import { globSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";

// "index" is src/index.ts, the package entry: it may re-export anything, nothing imports it.
const order = [
  "index",
  "cli",
  "stack",
  "webserver",
  "upstream",
  "appserver",
  "gateway",
  "process",
  "config",
  "core",
];
// May-import sets; the list above, except the two tiers never import each other.
function allowed(from: string, to: string): boolean {
  if (from === to) return true;
  if (from === "webserver" && to === "appserver") return false;
  const a = order.indexOf(from);
  const b = order.indexOf(to);
  return a >= 0 && b >= 0 && b > a;
}

const root = resolve(import.meta.dirname, "..");
const importRe =
  /(?:^|\n)\s*(?:import|export)[^'"`;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

function topFolder(file: string): string | undefined {
  const rel = relative(join(root, "src"), file);
  if (rel.startsWith("..")) return undefined;
  const top = rel.split("/")[0];
  return top === "index.ts" ? "index" : top;
}

test("src/ imports follow the layout's direction", () => {
  const problems: string[] = [];
  const files = globSync("src/**/*.ts", { cwd: root }).map((f) => join(root, f));
  assert.ok(files.length > 0);
  for (const file of files) {
    const from = topFolder(file);
    if (!from || !order.includes(from)) {
      problems.push(`${relative(root, file)}: not in a folder of the layout`);
      continue;
    }
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(importRe)) {
      const spec = m[1] ?? m[2];
      if (!spec?.startsWith(".")) continue;
      const target = resolve(dirname(file), spec);
      const to = topFolder(target);
      if (to === undefined) {
        problems.push(`${relative(root, file)} imports ${spec}, outside src/`);
      } else if (!allowed(from, to)) {
        problems.push(`${relative(root, file)} (${from}/) imports ${spec} (${to}/)`);
      }
      // webserver/<module>/ folders are independent of each other
      const fromRel = relative(join(root, "src/webserver"), file).split("/");
      const toRel = relative(join(root, "src/webserver"), target).split("/");
      if (
        from === "webserver" &&
        to === "webserver" &&
        fromRel.length > 1 &&
        toRel.length > 1 &&
        fromRel[0] !== toRel[0]
      ) {
        problems.push(`${relative(root, file)} imports another web module: ${spec}`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

test("the layout checker sees a violation", () => {
  assert.equal(allowed("core", "config"), false);
  assert.equal(allowed("webserver", "appserver"), false);
  assert.equal(allowed("cli", "core"), true);
});
