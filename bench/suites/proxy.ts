/**
 * proxy: the reverse proxy side by side, each in 1 process in front of its own node:http hello
 * upstream (bench/servers/nodeHttp.ts), wrk on the proxy: nginx `proxy_pass` with an upstream
 * keep-alive pool (the yardstick), `brigade web --proxy` (buffering on, as shipped), node-http-proxy
 * (npm `http-proxy` with a keep-alive agent), a plain undici `Pool` proxy, and Node's floor (bare
 * net sockets both ways, nothing parsed). "hello direct" is the upstream alone: the latency a
 * proxy adds is its p50/p99 minus that row's.
 *
 * The slow-client case is bench/suites/proxyslow.ts.
 */
import { nginxForwardingHeaders, startNginx } from "../lib/peers.ts";
import { helloUpstream, nodeProxy, proxied } from "../lib/proxied.ts";
import { type Case, defineSuite, startBrigadeWeb } from "../lib/suite.ts";

/**
 * `brigade web`, 1 worker, proxying to the upstream with a keep-alive pool of 64 (as nginx's);
 * `root`: run from another checkout (an A/B, bench/cpu.ts `--against`).
 */
function brigadeWeb(env: Record<string, string> = {}, root?: string) {
  return (upstreamPort: number) =>
    startBrigadeWeb({
      root,
      env: { ...process.env, ...env },
      config: (port) => ({
        web: {
          workers: 1,
          listen: [`127.0.0.1:${port}`],
          upstreams: {
            app: { peers: [`127.0.0.1:${upstreamPort}`], keepalive: { idle: 64 } },
          },
          servers: [{ proxy: "app" }],
        },
      }),
    });
}

export const cases: Case[] = [
  {
    name: "hello direct",
    description: "the node:http hello upstream alone, no proxy (for the latency a proxy adds)",
    start: helloUpstream,
  },
  proxied(
    "nginx proxy_pass",
    "nginx, 1 worker, proxy_pass to an upstream block with keepalive 64, HTTP/1.1, buffering on, the forwarding headers brigade sends by default (Host, X-Forwarded-For/-Proto/-Host/-Port, X-Real-IP)",
    (upstreamPort) =>
      startNginx({
        workers: 1,
        http: `  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }`,
        serverBlock: `    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; ${nginxForwardingHeaders} }`,
      }),
  ),
  proxied(
    "brigade web",
    "brigade web, 1 worker, proxy to an upstream group with keepalive.idle 64 (as nginx's), defaults otherwise (request and response buffering, forwarding headers); Brigade's own upstream client",
    brigadeWeb(),
  ),
  proxied(
    "brigade web (undici)",
    "the same with the previous transport, undici (BRIGADE_UPSTREAM_CLIENT=undici)",
    brigadeWeb({ BRIGADE_UPSTREAM_CLIENT: "undici" }),
  ),
  proxied(
    "node-http-proxy",
    "npm http-proxy 1.18 on node:http, keep-alive agent, xfwd",
    nodeProxy("bench/servers/proxyHttpProxy.ts"),
  ),
  proxied(
    "undici Pool proxy",
    "a ~20-line node:http proxy on undici Pool.request()",
    nodeProxy("bench/servers/proxyUndici.ts", ["request"]),
  ),
  proxied(
    "node net raw proxy",
    "Node's floor, not a proxy: bare net sockets both sides, a prepared upstream GET, response bytes relayed unparsed (bench/servers/netRawProxy.ts)",
    nodeProxy("bench/servers/netRawProxy.ts"),
  ),
];

export default defineSuite({
  description: "reverse proxy throughput and added latency, same node:http hello upstream",
  baseline: "nginx proxy_pass",
  tools: ["nginx"],
  cases,
  against: (dir) => [
    proxied(
      `brigade web @${dir}`,
      `brigade web as above, run from the checkout at ${dir}`,
      brigadeWeb({}, dir),
    ),
  ],
});
