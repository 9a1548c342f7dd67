/**
 * proxyslow: the article's central claim as a benchmark. gunicorn `-k sync -w 2` with a small
 * WSGI app, driven by wrk (the fast clients), with and without 20 slow clients that send a
 * request head a byte every 200 ms and never finish it; directly, and behind `brigade web`
 * (1 worker, defaults). Directly, the slow clients hold both sync workers and the fast clients
 * get (almost) nothing; behind brigade web they keep their throughput.
 *
 * Each case has its own gunicorn. The slow clients run in the bench process for as long as the
 * case's server runs.
 */
import net from "node:net";
import { type RunningServer, startCommand, startGunicorn } from "../lib/peers.ts";
import { benchFile, type Case, defineSuite, type Server } from "../lib/suite.ts";

const app = `
def application(environ, start_response):
    body = b"hello"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`;

/** 20 connections each sending `GET / ... X-Slow: aaaa` a byte every 200 ms; returns a stopper. */
function slowClients(port: number, n = 20): () => void {
  const head = `GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ${"a".repeat(100_000)}`;
  const sockets: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (let k = 0; k < n; k++) {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => {});
    let i = 0;
    timers.push(setInterval(() => i < head.length && s.write(head[i++]!), 200));
    sockets.push(s);
  }
  return () => {
    for (const t of timers) clearInterval(t);
    for (const s of sockets) s.destroy();
  };
}

function gunicorn(): Promise<RunningServer> {
  return startGunicorn({ app, args: ["-k", "sync", "-w", "2"] });
}

function brigadeIn(front: number): Promise<RunningServer> {
  return startCommand({
    name: "brigade web",
    command: process.execPath,
    args: [
      benchFile("bin/brigade.ts"),
      "web",
      "--listen",
      "127.0.0.1:{port}",
      "--proxy",
      `http://127.0.0.1:${front}`,
      "--workers",
      "1",
      "--log-level",
      "warn",
    ],
  });
}

function bench(name: string, description: string, proxied: boolean, slow: boolean): Case {
  return {
    name,
    description,
    async start(): Promise<Server> {
      const g = await gunicorn();
      let web: RunningServer | undefined;
      try {
        web = proxied ? await brigadeIn(g.port) : undefined;
      } catch (err) {
        await g.stop();
        throw err;
      }
      const front = web ?? g;
      const stopSlow = slow ? slowClients(front.port) : () => {};
      return {
        url: front.url,
        pids: web ? [web.pid, g.pid] : [g.pid],
        async stop() {
          stopSlow();
          await web?.stop();
          await g.stop();
        },
      };
    },
  };
}

export default defineSuite({
  description: "fast clients' throughput with and without 20 slow clients, gunicorn -k sync -w 2",
  baseline: "gunicorn direct",
  tools: ["gunicorn"],
  cases: [
    bench("gunicorn direct", "wrk straight to gunicorn", false, false),
    bench(
      "gunicorn direct + 20 slow",
      "the same with 20 slow clients holding connections",
      false,
      true,
    ),
    bench(
      "brigade web -> gunicorn",
      "wrk to brigade web --proxy in front of gunicorn",
      true,
      false,
    ),
    bench(
      "brigade web -> gunicorn + 20 slow",
      "the same with 20 slow clients on brigade web",
      true,
      true,
    ),
  ],
});
