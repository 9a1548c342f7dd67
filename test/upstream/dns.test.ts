/**
 * Hostname peers: resolved at start into one peer per address, and re-resolved while running
 * (through an injected lookup, so the test changes the answer), a changed record taking effect
 * without a reload: new addresses join, vanished ones drain and leave.
 */
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { test } from "node:test";
import type { ResolveMessage } from "../../src/upstream/index.ts";
import { closeServer, get, group, startPeers, tally, until } from "./helpers.ts";

test("a changed DNS answer takes effect while running", async (t) => {
  const [a] = await startPeers(t, 1);
  let answer = ["127.0.0.1"];
  const lookups: string[] = [];
  const events: ResolveMessage[] = [];
  const onResolve = (m: unknown) => events.push(m as ResolveMessage);
  subscribe("brigade:upstream:resolve", onResolve);
  t.after(() => unsubscribe("brigade:upstream:resolve", onResolve));
  const g = await group(
    t,
    { peers: [`app.internal:${a!.port}`], resolveInterval: "50ms" },
    {
      lookup: async (host) => {
        lookups.push(host);
        return answer;
      },
    },
    "dns",
  );
  assert.equal(lookups[0], "app.internal");
  assert.deepEqual(
    g.snapshot().peers.map((p) => p.name),
    [`127.0.0.1:${a!.port}`],
  );
  assert.equal((await get(g)).body, "peer0");

  // A second address: it joins (nothing listens there; this test is about the peer list).
  answer = ["127.0.0.1", "127.0.0.3"];
  await until(() => g.snapshot().peers.length === 2, 5000, "the second address");
  assert.deepEqual(
    g.snapshot().peers.map((p) => p.name),
    [`127.0.0.1:${a!.port}`, `127.0.0.3:${a!.port}`],
  );
  const joined = events.filter((e) => e.group === "dns" && e.added.length > 0);
  assert.deepEqual(
    joined.map((e) => e.added),
    [[`127.0.0.1:${a!.port}`], [`127.0.0.3:${a!.port}`]],
  );

  // The old address vanishes: it drains and leaves.
  answer = ["127.0.0.3"];
  await until(() => g.snapshot().peers.length === 1, 5000, "the old address gone");
  assert.deepEqual(
    g.snapshot().peers.map((p) => p.name),
    [`127.0.0.3:${a!.port}`],
  );

  // A failing lookup keeps what there is.
  answer = [];
  const before = events.length;
  await until(
    () => events.slice(before).some((e) => e.error !== undefined),
    5000,
    "a failed lookup",
  );
  assert.equal(g.snapshot().peers.length, 1);
});

test("requests follow the new address", async (t) => {
  // Two servers on the same port of two loopback addresses (127.0.0.0/8 is all loopback).
  const [a] = await startPeers(t, 1, (_req, res) => {
    res.end("old");
  });
  try {
    const { createServer } = await import("node:http");
    const server = createServer((_req, res) => res.end("new"));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(a!.port, "127.0.0.2", resolve);
    });
    t.after(() => closeServer(server));
  } catch (err) {
    t.skip(`port ${a!.port} taken on 127.0.0.2: ${(err as Error).message}`);
    return;
  }
  let answer = ["127.0.0.1"];
  const g = await group(
    t,
    { peers: [`app.internal:${a!.port}`], resolveInterval: "50ms" },
    {
      lookup: async () => answer,
    },
  );
  assert.deepEqual(await tally(g, 3), { old: 3 });
  answer = ["127.0.0.2"];
  await until(() => g.snapshot().peers.every((p) => p.name.startsWith("127.0.0.2")), 5000, "moved");
  assert.deepEqual(await tally(g, 3), { new: 3 });
});
