/**
 * The raw request corpus (test/webserver/requests/, format in its README): each case's bytes on
 * a fresh connection to a real `brigade web`, its responses and the connection's fate checked.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { exchange, startWeb } from "./helpers.ts";

const dir = new URL("./requests/", import.meta.url).pathname;

interface Expected {
  responses: { status: number; headers?: Record<string, string>; body?: string }[];
  closed?: boolean;
  head?: boolean[];
  expand?: Record<string, number>;
  many?: number;
}

/** The bytes of a .http file: real newlines dropped, escapes interpreted. */
export function decodeHttp(text: string): Buffer {
  const src = text.replace(/\n/g, "");
  const bytes: number[] = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c !== "\\") {
      for (const b of Buffer.from(c, "utf8")) bytes.push(b);
      continue;
    }
    const n = src[++i];
    if (n === "r") bytes.push(13);
    else if (n === "n") bytes.push(10);
    else if (n === "t") bytes.push(9);
    else if (n === "0") bytes.push(0);
    else if (n === "\\") bytes.push(92);
    else if (n === "x") {
      bytes.push(Number.parseInt(src.slice(i + 1, i + 3), 16));
      i += 2;
    } else throw new Error(`unknown escape \\${n}`);
  }
  return Buffer.from(bytes);
}

const cases = readdirSync(dir)
  .filter((f) => f.endsWith(".http"))
  .sort()
  .map((f) => f.slice(0, -5));

test(`the raw request corpus (${cases.length} cases)`, async (t) => {
  assert.ok(cases.length >= 30);
  const web = await startWeb(t, {
    web: {
      workers: 1,
      servers: [
        {
          listen: ["127.0.0.1:0"],
          serverName: ["corpus.test"],
          locations: [
            {
              match: "/",
              return: "200 $request_method|$uri|$args|$host|$server_protocol|$http_x_a",
            },
          ],
        },
      ],
    },
  });
  const results = await Promise.all(
    cases.map(async (name) => {
      const want = JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8")) as Expected;
      let raw = readFileSync(join(dir, `${name}.http`), "utf8");
      for (const [word, n] of Object.entries(want.expand ?? {}))
        raw = raw.replace(word, "a".repeat(n));
      if (want.many !== undefined) {
        raw = raw.replace(
          "MANY",
          Array.from({ length: want.many }, (_, i) => `X-${i}: v\\r\\n`).join(""),
        );
      }
      const got = await exchange(web.port, decodeHttp(raw), {
        responses: want.responses.length,
        untilClose: want.closed === true,
        ...(want.head ? { head: want.head } : {}),
        timeoutMs: 5000,
      });
      return { name, want, got };
    }),
  );
  const failures: string[] = [];
  for (const { name, want, got } of results) {
    const seen = got.responses.map((r) => r.status);
    if (seen.length !== want.responses.length) {
      failures.push(
        `${name}: expected ${want.responses.length} responses, got ${JSON.stringify(seen)}: ${JSON.stringify(got.raw.toString("latin1").slice(0, 200))}`,
      );
      continue;
    }
    want.responses.forEach((w, i) => {
      const r = got.responses[i]!;
      if (r.status !== w.status)
        failures.push(`${name}[${i}]: status ${r.status}, expected ${w.status}`);
      for (const [k, v] of Object.entries(w.headers ?? {})) {
        if (r.headers[k] !== v)
          failures.push(`${name}[${i}]: ${k}: ${r.headers[k]}, expected ${v}`);
      }
      if (w.body !== undefined && r.text !== w.body) {
        failures.push(
          `${name}[${i}]: body ${JSON.stringify(r.text)}, expected ${JSON.stringify(w.body)}`,
        );
      }
    });
    if (want.closed !== undefined && got.closed !== want.closed) {
      failures.push(
        `${name}: connection ${got.closed ? "closed" : "open"}, expected ${want.closed ? "closed" : "open"}`,
      );
    }
  }
  assert.deepEqual(failures, []);
});
