/** docs/settings.md is generated: it must match what the schema generates now. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { renderSettingsDoc } from "../../src/config/docs.ts";
import { allSettings } from "../../src/config/schema.ts";
import { envName } from "../../src/config/setting.ts";

test("docs/settings.md is up to date (run `npm run docs`)", () => {
  const committed = readFileSync(new URL("../../docs/settings.md", import.meta.url), "utf8");
  assert.ok(committed === renderSettingsDoc(), "docs/settings.md is stale: run `npm run docs`");
});

test("the docs have an entry for every setting, with its env var", () => {
  const doc = renderSettingsDoc();
  for (const { section, key, setting } of allSettings()) {
    assert.match(doc, new RegExp(`### \`${section}\\.${key}\``));
    const env = envName(section, key, setting);
    if (env) assert.ok(doc.includes(`\`${env}\``), env);
  }
});
