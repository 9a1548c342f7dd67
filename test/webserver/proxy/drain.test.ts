/**
 * `brigade web` stopping with open tunnels, as nginx's old workers do until
 * `worker_shutdown_timeout`: on a reload (HUP) the old worker stops accepting, its open
 * WebSocket tunnel keeps working while new connections go to the new worker, and at the end of
 * `gracefulTimeout` (less a second) the old tunnel is closed and the old worker exits by itself
 * (the master never has to kill it); the same for a CONNECT tunnel of the forward proxy; on
 * TERM a tunnel that ends by itself lets the worker go.
 */
import assert from "node:assert/strict";
import net, { type AddressInfo } from "node:net";
import { type TestContext, test } from "node:test";
import WebSocket, { WebSocketServer } from "ws";
import { waitFor } from "../../helpers/process.ts";
import { startWeb } from "../webHarness.ts";

interface Client {
  ws: WebSocket;
  /** Send and wait for the echo. */
  echo(m: string): Promise<string>;
  closed: Promise<number>;
}

function connect(t: TestContext, url: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    t.after(() => ws.terminate());
    const closed = new Promise<number>((r) => ws.on("close", (code) => r(code)));
    ws.once("error", reject);
    ws.once("open", () =>
      resolve({
        ws,
        closed,
        echo: (m) =>
          new Promise<string>((r, j) => {
            const timer = setTimeout(() => j(new Error(`no echo of ${m} within 10s`)), 10_000);
            ws.once("message", (data) => {
              clearTimeout(timer);
              r(String(data));
            });
            ws.send(m);
          }),
      }),
    );
  });
}

/** A CONNECT tunnel through the forward proxy at `port` to `dest`, echoed line by line there. */
function connectTunnel(t: TestContext, port: number, dest: number) {
  return new Promise<{ echo(m: string): Promise<string>; closed: Promise<void> }>(
    (resolve, reject) => {
      const sock = net.connect(port, "127.0.0.2");
      t.after(() => sock.destroy());
      const closed = new Promise<void>((r) => sock.once("close", () => r()));
      sock.once("error", reject);
      sock.write(`CONNECT 127.0.0.1:${dest} HTTP/1.1\r\nHost: 127.0.0.1:${dest}\r\n\r\n`);
      let head = "";
      const onHead = (chunk: Buffer): void => {
        head += chunk.toString("latin1");
        if (!head.includes("\r\n\r\n")) return;
        sock.off("data", onHead);
        if (!/^HTTP\/1\.1 200/.test(head)) {
          reject(new Error(head));
          return;
        }
        sock.on("error", () => {});
        resolve({
          closed,
          echo: (m) =>
            new Promise<string>((r, j) => {
              const timer = setTimeout(() => j(new Error(`no echo of ${m} within 10s`)), 10_000);
              sock.once("data", (d) => {
                clearTimeout(timer);
                r(String(d));
              });
              sock.write(m);
            }),
        });
      };
      sock.on("data", onHead);
    },
  );
}

for (const engine of ["brigade", "node"]) {
  test(`open WebSocket and CONNECT tunnels on HUP and TERM (engine ${engine}): served on until they end or the grace period is over`, async (t) => {
    const upstream = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    t.after(() => upstream.close());
    await new Promise((r) => upstream.once("listening", r));
    upstream.on("connection", (ws) => ws.on("message", (m) => ws.send(`echo:${m}`)));
    const upPort = (upstream.address() as AddressInfo).port;
    const echoServer = net.createServer((c) => c.pipe(c));
    t.after(() => echoServer.close());
    await new Promise<void>((r) => echoServer.listen(0, "127.0.0.1", r));
    const echoPort = (echoServer.address() as AddressInfo).port;
    const web = await startWeb(t, {
      workers: 1,
      gracefulTimeout: 3,
      engine,
      servers: [
        { listen: ["127.0.0.1:0"], locations: [{ match: "/", proxy: `127.0.0.1:${upPort}` }] },
        {
          // Another address: servers on one address are one listener (virtual hosts).
          listen: ["127.0.0.2:0"],
          forwardProxy: true,
          forwardAllowDestinations: ["127.0.0.0/8"],
          forwardConnectPorts: [echoPort],
        },
      ],
    });
    const base = `ws://127.0.0.1:${web.port}`;
    const ports = web.lines.flatMap((l) => / listening address=\S*:(\d+)$/.exec(l)?.[1] ?? []);
    const forwardPort = Number(ports[1]);
    const old = await connect(t, `${base}/old`);
    assert.equal(await old.echo("a"), "echo:a");
    const oldConnect = await connectTunnel(t, forwardPort, echoPort);
    assert.equal(await oldConnect.echo("ping1"), "ping1");
    const [oldPid] = web.workerPids();

    // Reload: a new worker; the old one stops accepting but its tunnel goes on.
    const from = web.lines.length;
    process.kill(web.pid, "SIGHUP");
    await web.waitForLine(/reload complete; old workers are draining/, { from, timeoutMs: 15_000 });
    assert.equal(await old.echo("b"), "echo:b", "the old tunnel works after the reload");
    const fresh = await connect(t, `${base}/new`);
    assert.equal(await fresh.echo("c"), "echo:c");
    assert.equal(await old.echo("d"), "echo:d");
    assert.equal(await oldConnect.echo("ping2"), "ping2", "the old CONNECT tunnel too");

    // The grace period ends: the old tunnel is closed, the old worker exits by itself.
    await old.closed;
    await oldConnect.closed;
    const exited = await web.waitForLine(new RegExp(`worker exited .*pid=${oldPid}\\b`), {
      from,
      timeoutMs: 10_000,
    });
    assert.doesNotMatch(exited.line, /signal/);
    const after = web.lines.slice(from).join("\n");
    assert.match(after, /open tunnels carry on until they end or the grace period is over/);
    assert.match(after, /closing open tunnels at the end of the grace period/);
    assert.doesNotMatch(after, /did not stop in time/);
    // The new connection was the new worker's: it carries on.
    assert.equal(await fresh.echo("e"), "echo:e");

    // TERM with a tunnel open: it still works until it ends, then the worker and master exit 0.
    const term = web.lines.length;
    process.kill(web.pid, "SIGTERM");
    await web.waitForLine(/handling action/, { from: term, timeoutMs: 10_000 });
    await web.waitForLine(/open tunnels carry on/, { from: term, timeoutMs: 10_000 });
    assert.equal(await fresh.echo("f"), "echo:f");
    fresh.ws.close();
    await fresh.closed;
    assert.equal((await web.exited).code, 0);
    assert.doesNotMatch(
      web.lines.slice(term).join("\n"),
      /did not stop in time|closing open tunnels/,
    );
    await waitFor(() => upstream.clients.size === 0 || undefined, "the upstream side closed");
  });
}
