/**
 * The parser corpus through the whole engine on a socket: every invalid request gets its status
 * (400, 413, 414, 431, 501, 505) with `Connection: close` and the connection closed, after the
 * valid requests before it; every valid request is served (the handler echoes what it got).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ParserLimits } from "../../../../src/core/http1/parser.ts";
import type { EngineOptions } from "../../../../src/webserver/engine/types.ts";
import { HttpError, response } from "../../../../src/webserver/exchange.ts";
import { corpusCases } from "../../../core/http1/corpus.ts";
import { exchange, header, type Running, startEngine } from "./helpers.ts";

function engineLimits(l: Partial<ParserLimits> = {}): Partial<EngineOptions> {
  const o: Partial<EngineOptions> = {};
  if (l.maxStartLine !== undefined) o.maxRequestLine = l.maxStartLine;
  if (l.maxHeaderBytes !== undefined) o.maxHeaderSize = l.maxHeaderBytes;
  if (l.maxHeaderCount !== undefined) o.maxHeaders = l.maxHeaderCount;
  return o;
}

/**
 * Parser limits the engine does not take as settings (fixed chunk-line bounds), and the one case
 * whose answer depends on the parser having a body limit (the engine's is per location).
 */
function parserOnly(c: { name: string; expect: { limits?: Partial<ParserLimits> } }): boolean {
  const l = c.expect.limits ?? {};
  return (
    l.maxChunkLine !== undefined ||
    l.maxChunkExtensions !== undefined ||
    c.name.endsWith("/content-length-overflow-limited")
  );
}

test("the request corpus through the engine", async (t) => {
  const engines = new Map<string, Running>();
  const engineFor = async (limits: Partial<ParserLimits> | undefined): Promise<Running> => {
    const key = JSON.stringify(limits ?? {});
    let e = engines.get(key);
    if (!e) {
      const bodyLimit = limits?.maxBodySize ?? 0;
      e = await startEngine(t, {
        // The pipeline refuses `*` and CONNECT targets (400, as nginx); the engine serves them.
        acceptInvalid: true,
        options: engineLimits(limits),
        handler: async (req) => {
          // What the pipeline does with a location's clientMaxBodySize.
          req.bodyLimit = bodyLimit;
          if (bodyLimit > 0 && (req.declaredLength ?? 0) > bodyLimit) {
            throw new HttpError(413, "too large", { close: true });
          }
          const body = req.method === "CONNECT" ? "" : (await req.body.buffer()).toString("latin1");
          return response(200, `${req.method} ${req.target} ${body}`);
        },
      });
      engines.set(key, e);
    }
    return e;
  };
  const cases = corpusCases().filter((c) => c.kind === "request" && !parserOnly(c));
  await Promise.all(
    cases.map(async (c) => {
      const { port } = await engineFor(c.expect.limits);
      const x = await exchange(
        port,
        c.raw,
        c.valid ? { responses: (c.expect.messages as unknown[]).length } : {},
      );
      assert.equal(x.error, undefined, `${c.name}: the engine's output does not parse: ${x.error}`);
      if (c.valid) {
        const want = c.expect.messages as { method: string; target: string; body: string }[];
        assert.deepEqual(
          x.responses.map((r) => r.body),
          want.map((m) => `${m.method} ${m.target} ${m.body}`),
          c.name,
        );
      } else {
        const before = c.expect.messages as number;
        assert.equal(x.responses.length, before + 1, `${c.name}: responses`);
        const last = x.responses[before]!;
        assert.equal(last.status, c.expect.status, c.name);
        assert.equal(header(last, "connection"), "close", c.name);
        assert.equal(x.closed, true, `${c.name}: closed`);
      }
    }),
  );
});
