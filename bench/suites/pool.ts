/**
 * pool: which HTTP client a Node reverse proxy should sit on. The same upstream (a node:http
 * hello, bench/servers/nodeHttp.ts, one process per case) behind: nginx `proxy_pass` with an
 * upstream keep-alive pool (the yardstick), a node:http proxy on `http.Agent`, and the same
 * proxy on undici's `Pool` (`request()` and `dispatch()`), and the same proxy on Brigade's own
 * engine (src/upstream: `PeerPool` alone, and `UpstreamGroup.request`). Every case has its own upstream
 * process so that no proxy shares an upstream's core time with another case's load.
 */
import { startNginx } from "../lib/peers.ts";
import { nodeProxy, proxied } from "../lib/proxied.ts";
import { type Case, defineSuite } from "../lib/suite.ts";

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
    "node:http proxy on src/upstream PeerPool (Brigade's own HTTP/1.1 client, LIFO idle stack)",
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
