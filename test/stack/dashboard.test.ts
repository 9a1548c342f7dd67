/**
 * The live dashboard in a real headless Chromium (Debian `chromium`, driven by playwright-core):
 * it renders charts and tables from the running stack with no external request, the screenshot
 * is not blank, and the page goes on updating through a reload of the stack.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { inflateSync } from "node:zlib";
import { chromium } from "playwright-core";
import { findTool } from "../../bench/lib/tools.ts";
import { requireTool } from "../helpers/peers.ts";
import { waitFor } from "../helpers/process.ts";
import { appSource, get, startStack } from "./harness.ts";

/** Distinct colours in an 8-bit RGB(A) PNG (what Chromium's screenshots are). */
function pngColours(png: Buffer): number {
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 4;
  const idat: Buffer[] = [];
  while (pos < png.length) {
    const len = png.readUInt32BE(pos);
    const type = png.toString("latin1", pos + 4, pos + 8);
    const data = png.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      assert.equal(data[8], 8, "8-bit PNG");
      channels = data[9] === 6 ? 4 : 3;
    } else if (type === "IDAT") idat.push(data);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const prev = Buffer.alloc(stride);
  const row = Buffer.alloc(stride);
  const colours = new Set<number>();
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? row[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      const x = line[i]!;
      let v: number;
      if (f === 0) v = x;
      else if (f === 1) v = x + a;
      else if (f === 2) v = x + b;
      else if (f === 3) v = x + ((a + b) >> 1);
      else {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      row[i] = v & 255;
    }
    for (let i = 0; i < stride; i += channels) {
      colours.add((row[i]! << 16) | (row[i + 1]! << 8) | row[i + 2]!);
    }
    row.copy(prev);
  }
  return colours.size;
}

test("the dashboard renders in headless Chromium, offline, and survives a reload of the stack", async (t) => {
  if (!requireTool(t, "chromium")) return;
  const s = await startStack(t, {
    args: ["--app-workers", "2", "--web-workers", "1", "--canary", "0"],
  });
  const base = `http://127.0.0.1:${s.port}`;
  const profile = mkdtempSync(join(tmpdir(), "brigade-chromium-"));
  t.after(() => rmSync(profile, { recursive: true, force: true }));
  // A new empty profile (--user-data-dir), which playwright takes as launchPersistentContext's.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: findTool("chromium")!,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
  });
  t.after(() => browser.close());
  const page = browser.pages()[0] ?? (await browser.newPage());
  const errors: string[] = [];
  const foreign: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => {
    if (!r.url().startsWith(`http://127.0.0.1:${s.admin}/`)) foreign.push(r.url());
  });

  // Some traffic to chart, then the page.
  for (let i = 0; i < 30; i++) assert.equal((await get(`${base}/p/${i}`)).status, 200);
  await page.goto(`http://127.0.0.1:${s.admin}/dashboard`);
  await page.waitForFunction(() => Number(document.body.dataset.polls ?? 0) >= 3, undefined, {
    timeout: 30_000,
  });
  assert.equal(await page.locator("#state").textContent(), "ready");
  assert.equal(await page.locator("#workers tr").count(), 3);
  assert.ok((await page.locator("#rps path").count()) >= 1, "a requests-per-second line");
  assert.equal(await page.locator("#peers tr").count(), 2);
  const shot = await page.screenshot({ fullPage: true });
  writeFileSync(join(s.dir, "dashboard.png"), shot);
  assert.ok(pngColours(shot) > 20, "the screenshot is not blank");

  // A deploy: the page keeps polling and shows the new generation.
  writeFileSync(s.appFile, appSource("2"));
  const polls = Number(await page.evaluate(() => document.body.dataset.polls));
  const r = await s.cli(["reload"]);
  assert.equal(r.code, 0, r.stdout);
  await page.waitForFunction(
    (n) =>
      document.body.dataset.appGeneration === "2" && Number(document.body.dataset.polls) > n + 2,
    polls,
    { timeout: 30_000 },
  );
  // The generation changes when the deploy starts; its outcome shows once it has ended.
  await page.waitForFunction(
    () => /complete/.test(document.getElementById("reload")?.textContent ?? ""),
    undefined,
    { timeout: 30_000 },
  );
  assert.equal(await page.locator("#state").textContent(), "ready");
  await waitFor(async () => (await page.locator("#peers tr").count()) === 2, "two peers again");
  assert.deepEqual(errors, []);
  assert.deepEqual(foreign, [], "no request leaves the admin listener");
});
