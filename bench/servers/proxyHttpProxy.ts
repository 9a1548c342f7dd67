/**
 * node-http-proxy (npm `http-proxy`, the long-standing Node reverse proxy) in front of one
 * upstream: `node proxyHttpProxy.ts <port> <upstreamPort>`, with a keep-alive agent to the
 * upstream (its default is a new connection per request, which no one should benchmark).
 * A peer of the proxy suite (bench/suites/proxy.ts).
 */
import { Agent, createServer } from "node:http";
import httpProxy from "http-proxy";

const port = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
const agent = new Agent({
  keepAlive: true,
  maxSockets: 256,
  maxFreeSockets: 256,
  scheduling: "lifo",
});
const proxy = httpProxy.createProxyServer({
  target: `http://127.0.0.1:${upstreamPort}`,
  agent,
  xfwd: true,
});
proxy.on("error", (_err, _req, res) => {
  const r = res as import("node:http").ServerResponse;
  if (!r.headersSent) r.writeHead(502);
  r.end();
});
createServer((req, res) => proxy.web(req, res)).listen(port, "127.0.0.1");
