/**
 * web: the web server's own cost, `return 200 "hello"` through `brigade web` against nginx's
 * `return 200 "hello"`, one worker each, access logs off on both; bare node:http beside them
 * for scale (brigade web runs on Brigade's own HTTP/1 engine, the default; bench/suites/engine.ts
 * compares the engines). The brigade case is a real master with one worker process, as deployed.
 */
import { startNginx } from "../lib/peers.ts";
import { type Case, defineSuite, nodeCase, startBrigadeWeb } from "../lib/suite.ts";

export const cases: Case[] = [
  {
    name: "nginx return",
    description: 'nginx, 1 worker, `return 200 "hello"`, access_log off',
    start: () => startNginx({ workers: 1, serverBlock: 'location / { return 200 "hello"; }' }),
  },
  {
    name: "brigade web return",
    description: 'brigade web, 1 worker process, `return: "200 hello"`, no access log',
    start: () =>
      startBrigadeWeb({
        name: "brigade web",
        config: (port) => ({
          web: {
            workers: 1,
            servers: [
              { listen: [`127.0.0.1:${port}`], locations: [{ match: "/", return: "200 hello" }] },
            ],
          },
        }),
      }),
  },
  nodeCase(
    "node http",
    "bench/servers/nodeHttp.ts",
    [],
    "bare node:http, 1 process (the engine's floor)",
  ),
];

export default defineSuite({
  description: 'return 200 "hello": brigade web against nginx, one worker each',
  baseline: "nginx return",
  tools: ["nginx"],
  cases,
});
