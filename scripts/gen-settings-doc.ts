/**
 * Write docs/settings.md from the settings schema (`npm run docs`). The file is generated only;
 * test/config/docs.test.ts fails when the committed copy is stale.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { renderSettingsDoc } from "../src/config/docs.ts";

const target = new URL("../docs/settings.md", import.meta.url);
mkdirSync(new URL(".", target), { recursive: true });
writeFileSync(target, renderSettingsDoc());
process.stdout.write(`wrote ${target.pathname}\n`);
