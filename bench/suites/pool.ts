/**
 * pool: which HTTP client a Node reverse proxy should sit on. The same upstream (a node:http
 * hello, bench/servers/nodeHttp.ts, one process per case) behind: nginx `proxy_pass` with an
 * upstream keep-alive pool (the yardstick), a node:http proxy on `http.Agent`, and the same
 * proxy on undici's `Pool` (`request()` and `dispatch()`), and the same proxy on Brigade's own
 * engine (src/upstream: `PeerPool` alone, and `UpstreamGroup.request`). Every case has its own upstream
 * process so that no proxy shares an upstream's core time with another case's load.
 */
import { type RunningServer, startCommand, startNginx } from "../lib/peers.ts";
import { benchFile, type Case, defineSuite } from "../lib/suite.ts";

async function hello(): Promise<RunningServer> {
  return startCommand({
    name: "upstream hello",
    command: process.execPath,
    args: [benchFile("bench/servers/nodeHttp.ts"), "{port}"],
  });
}

/** A case: a fresh hello upstream, then `front(upstreamPort)` in front of it. */
function proxied(
  name: string,
  description: string,
  front: (upstreamPort: number) => Promise<RunningServer>,
): Case {
  return {
    name,
    description,
    async start() {
      const up = await hello();
      let proxy: RunningServer;
      try {
        proxy = await front(up.port);
      } catch (err) {
        await up.stop();
        throw err;
      }
      return {
        url: proxy.url,
        pids: [proxy.pid, up.pid],
        async stop() {
          await proxy.stop();
          await up.stop();
        },
      };
    },
  };
}

function nodeProxy(script: string, args: string[]) {
  return (upstreamPort: number) =>
    startCommand({
      name: script,
      command: process.execPath,
      args: [benchFile(script), "{port}", String(upstreamPort), ...args],
    });
}

export const cases: Case[] = [
  proxied(
    "nginx proxy_pass",
    "nginx, 1 worker, proxy_pass to an upstream block with keepalive 64, HTTP/1.1",
    (upstreamPort) =>
      startNginx({
        workers: 1,
        http: `  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }`,
        serverBlock:
          '    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }',
      }),
  ),
  proxied(
    "node http.Agent",
    "node:http proxy on a keep-alive http.Agent (lifo), raw headers",
    nodeProxy("bench/servers/proxyAgent.ts", []),
  ),
  proxied(
    "undici Pool.request",
    "node:http proxy on undici Pool.request()",
    nodeProxy("bench/servers/proxyUndici.ts", ["request"]),
  ),
  proxied(
    "undici Pool.dispatch",
    "node:http proxy on undici Pool.dispatch() with a streaming handler",
    nodeProxy("bench/servers/proxyUndici.ts", ["dispatch"]),
  ),
  proxied(
    "brigade PeerPool",
    "node:http proxy on src/upstream PeerPool (an undici Client per connection, LIFO idle stack)",
    nodeProxy("bench/servers/proxyBrigade.ts", ["pool"]),
  ),
  proxied(
    "brigade group",
    "node:http proxy on src/upstream UpstreamGroup.request (selection, lease, retries, PeerPool)",
    nodeProxy("bench/servers/proxyBrigade.ts", ["group"]),
  ),
];

export default defineSuite({
  description: "reverse proxy throughput by upstream client, same node:http hello upstream",
  baseline: "nginx proxy_pass",
  tools: ["nginx"],
  cases,
});
