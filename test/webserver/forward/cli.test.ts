/**
 * The quick start as a user runs it: `brigade web --forward-proxy --listen ... --allow-destination
 * CIDR` (master and a worker process), with curl through it. The system resolver is used: the
 * name `localhost` resolves to loopback, which stays refused unless opened, and an address the
 * allow-list opens is reached by its name and by its address alike.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { requireTool } from "../../helpers/peers.ts";
import { startWeb, stopWeb } from "../helpers.ts";
import { curl, header, startOrigin, startTlsOrigin } from "./harness.ts";

test("quick start: --forward-proxy with --allow-destination, --connect-port; localhost stays refused", async (t) => {
  if (!requireTool(t, "curl")) return;
  // An origin on 127.0.0.2 (opened) and one on 127.0.0.1 (refused: loopback, by address and by
  // the name localhost).
  const opened = await startOrigin(t, undefined, "127.0.0.2");
  const closedOrigin = await startOrigin(t);
  const tlsPort = await startTlsOrigin(t);
  const web = await startWeb(
    t,
    {},
    {
      args: [
        "--forward-proxy",
        "--listen",
        "127.0.0.1:0",
        "--allow-destination",
        "127.0.0.2/32",
        "--allow-destination",
        "127.0.0.1/32",
        "--connect-port",
        String(tlsPort),
        "-w",
        "1",
      ],
    },
  );
  const proxy = `http://127.0.0.1:${web.port}`;
  const ok = await curl(["-x", proxy, `http://127.0.0.2:${opened.port}/hi`]);
  assert.equal(ok.status, 200, ok.err);
  assert.match(ok.out, /hello GET \/hi/);
  assert.match(header(ok.out, "via") ?? "", /\(brigade\)$/);
  const tunnel = await curl(["-x", proxy, "--proxytunnel", `https://127.0.0.1:${tlsPort}/s`, "-k"]);
  assert.equal(tunnel.status, 200, tunnel.err);
  assert.match(tunnel.out, /secure \/s/);
  assert.equal(await stopWeb(web), 0);

  // Without --allow-destination: loopback is refused, by address and by name.
  const strict = await startWeb(
    t,
    {},
    {
      args: ["--forward-proxy", "--listen", "127.0.0.1:0", "-w", "1"],
    },
  );
  const strictProxy = `http://127.0.0.1:${strict.port}`;
  for (const url of [
    `http://127.0.0.1:${closedOrigin.port}/`,
    `http://localhost:${closedOrigin.port}/`,
    `http://127.0.0.2:${opened.port}/`,
  ]) {
    const r = await curl(["-x", strictProxy, url]);
    assert.equal(r.status, 403, url);
    assert.match(r.out, /loopback/, url);
  }
  assert.equal(closedOrigin.seen.length, 0);
  assert.equal(opened.seen.length, 1);
  assert.equal(await stopWeb(strict), 0);
});
