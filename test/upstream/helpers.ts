/**
 * Real upstreams for the engine's tests: in-process node:http servers on ephemeral loopback
 * ports (a child process adds nothing when the test only needs sockets), each closed when the
 * test ends, and small readers for responses.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestContext } from "node:test";
import type { UpstreamGroupInput } from "../../src/upstream/index.ts";
import {
  createUpstreamGroup,
  type GroupOptions,
  type UpstreamGroup,
} from "../../src/upstream/index.ts";

export interface TestPeer {
  server: Server;
  port: number;
  address: string;
  /** Requests this peer answered. */
  hits: number;
  /** Requests in flight now, and the most seen at once. */
  inFlight: number;
  maxInFlight: number;
  /** TCP connections accepted. */
  connections: number;
}

export type Handler = (
  req: IncomingMessage,
  res: ServerResponse,
  peer: TestPeer,
  index: number,
) => void | Promise<void>;

/** Answers `peer<index>` with an `x-peer` header. */
export const namedHandler = (
  _req: IncomingMessage,
  res: ServerResponse,
  _peer: TestPeer,
  index: number,
): void => {
  res.setHeader("x-peer", String(index));
  res.end(`peer${index}`);
};

/** Start `n` peers on 127.0.0.1 (or `host`), closed at the end of the test. */
export async function startPeers(
  t: Pick<TestContext, "after">,
  n: number,
  handler: Handler = namedHandler,
  host = "127.0.0.1",
): Promise<TestPeer[]> {
  const peers: TestPeer[] = [];
  for (let i = 0; i < n; i++) {
    const peer = {} as TestPeer;
    const server = createServer((req, res) => {
      peer.hits++;
      peer.inFlight++;
      peer.maxInFlight = Math.max(peer.maxInFlight, peer.inFlight);
      res.once("close", () => peer.inFlight--);
      void Promise.resolve(handler(req, res, peer, i)).catch(() => res.destroy());
    });
    server.on("connection", () => peer.connections++);
    server.listen(0, host);
    await once(server, "listening");
    const port = (server.address() as AddressInfo).port;
    Object.assign(peer, {
      server,
      port,
      address: `${host}:${port}`,
      hits: 0,
      inFlight: 0,
      maxInFlight: 0,
      connections: 0,
    });
    peers.push(peer);
    t.after(() => closeServer(server));
  }
  return peers;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A group from input config, closed at the end of the test. */
export async function group(
  t: Pick<TestContext, "after">,
  input: UpstreamGroupInput,
  options: GroupOptions = {},
  name = "app",
): Promise<UpstreamGroup> {
  const g = await createUpstreamGroup(name, input, options);
  t.after(() => g.close());
  return g;
}

export async function text(body: AsyncIterable<Buffer | string>): Promise<string> {
  let out = "";
  for await (const chunk of body) out += chunk;
  return out;
}

/** GET / through the group; the body as text (the lease ends with it). */
export async function get(
  g: UpstreamGroup,
  extra: Partial<Parameters<UpstreamGroup["request"]>[0]> = {},
): Promise<{ status: number; body: string; setCookie: string | undefined; attempts: unknown[] }> {
  const res = await g.request({ method: "GET", path: "/", headers: { host: "test" }, ...extra });
  return {
    status: res.status,
    body: await text(res.body),
    setCookie: res.setCookie,
    attempts: res.attempts,
  };
}

/** Count bodies of `n` sequential GETs. */
export async function tally(
  g: UpstreamGroup,
  n: number,
  extra: Partial<Parameters<UpstreamGroup["request"]>[0]> = {},
): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const { body } = await get(g, extra);
    counts[body] = (counts[body] ?? 0) + 1;
  }
  return counts;
}

/** Resolve when `predicate` holds, polling; rejects after `ms` (a bound, not an assertion). */
export async function until(
  predicate: () => boolean,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A manual clock for slow start and failTimeout tests. */
export function manualClock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}
