/**
 * The web server's own engine-facing tests, run again on the other engine: the raw request corpus
 * against a real `brigade web`, the engine tests (bodies, limits, timeouts, takeover), the module
 * tests, the nginx differential and TLS (HTTP/1.1 by ALPN), with `BRIGADE_WEB_ENGINE=node` (the
 * `web.engine` setting's env var, which test/webserver/helpers.ts passes to in-process engines
 * too): Brigade's engine is the default and runs every other test; node:http stays a supported
 * fallback. Both engines must answer alike wherever those tests look; a difference has to be
 * written down there. (The whole suite also passes with `BRIGADE_WEB_ENGINE=node npm test`.)
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";

const files = ["corpus", "engine", "modules", "nginx", "tls"].map(
  (f) => new URL(`../../${f}.test.ts`, import.meta.url).pathname,
);

test("the web server's engine, corpus, module, nginx and TLS tests pass on the node engine too", async () => {
  const child = spawn(
    process.execPath,
    ["--test", "--test-concurrency=2", "--test-reporter=spec", ...files],
    {
      // Without NODE_TEST_CONTEXT, or node:test takes the child for a nested run and skips it.
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, BRIGADE_WEB_ENGINE: "node" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const limit = setTimeout(() => child.kill("SIGKILL"), 110_000);
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearTimeout(limit);
  assert.equal(
    code,
    0,
    `on engine "node":\n${out
      .split("\n")
      .filter((l) => /✖|Error|expected|actual/.test(l))
      .slice(0, 40)
      .join("\n")}`,
  );
  assert.match(out, /ℹ pass [1-9]/);
});
