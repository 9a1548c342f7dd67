/**
 * Cases of a proxy in front of its own upstream: the proxy and pool suites build every case from
 * these, so each proxy has an upstream process of its own (no proxy shares an upstream's core
 * time with another case's load).
 */
import { type RunningServer, startCommand } from "./peers.ts";
import { benchFile, type Case } from "./suite.ts";

/** The upstream: a node:http hello (bench/servers/nodeHttp.ts), one process. */
export async function helloUpstream(): Promise<RunningServer> {
  return startCommand({
    name: "upstream hello",
    command: process.execPath,
    args: [benchFile("bench/servers/nodeHttp.ts"), "{port}"],
  });
}

/** A case: a fresh hello upstream, then `front(upstreamPort)` in front of it. */
export function proxied(
  name: string,
  description: string,
  front: (upstreamPort: number) => Promise<RunningServer>,
): Case {
  return {
    name,
    description,
    async start() {
      const up = await helloUpstream();
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

/** A front that is a Node script of bench/servers: `script PORT UPSTREAM_PORT ...args`. */
export function nodeProxy(script: string, args: string[] = []) {
  return (upstreamPort: number): Promise<RunningServer> =>
    startCommand({
      name: script,
      command: process.execPath,
      args: [benchFile(script), "{port}", String(upstreamPort), ...args],
    });
}
