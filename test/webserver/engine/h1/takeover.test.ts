/**
 * Handing the connection over: an Upgrade answered 101 and a CONNECT answered 200 give the raw
 * socket to the module with the bytes the client sent past the head; an upgrade or CONNECT
 * answered normally ends with the connection.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { Fields, response, type WebResponse } from "../../../../src/webserver/exchange.ts";
import { exchange, header, startEngine } from "./helpers.ts";

function echo(prefix: string): WebResponse["body"] {
  return {
    kind: "takeover",
    onSocket(socket, head) {
      socket.write(`${prefix}[${head.toString()}]`);
      socket.on("data", (d: Buffer) => socket.write(d));
      socket.on("end", () => socket.end());
      socket.resume();
    },
  };
}

/** Send `first`, then `more` once `marker` came back; read until `until` shows up. */
function talk(
  port: number,
  first: string,
  more: string,
  marker: string,
  until: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, "127.0.0.1");
    let got = "";
    let sent = false;
    const limit = setTimeout(() => {
      s.destroy();
      reject(new Error(`no ${until} in ${JSON.stringify(got)}`));
    }, 5000);
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      if (!sent && got.includes(marker)) {
        sent = true;
        s.write(more);
      }
      if (got.includes(until)) {
        clearTimeout(limit);
        s.destroy();
        resolve(got);
      }
    });
    s.on("error", reject);
    s.write(first);
  });
}

test("Upgrade: 101, then the socket is the module's, with the early bytes as head", async (t) => {
  const { port } = await startEngine(t, {
    handler: (req) => {
      assert.equal(req.canTakeover, true);
      return { status: 101, fields: Fields.from({ upgrade: "echo" }), body: echo("hi") };
    },
  });
  const got = await talk(
    port,
    "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly",
    "later",
    "hi[early]",
    "later",
  );
  const [head, rest] = got.split("\r\n\r\n");
  assert.match(head!, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(head!, /\r\nupgrade: echo/);
  assert.match(head!, /\r\nconnection: upgrade/);
  assert.doesNotMatch(head!, /content-length|transfer-encoding/i);
  assert.equal(rest, "hi[early]later");
});

test("CONNECT: 200, then a tunnel", async (t) => {
  const { port } = await startEngine(t, {
    acceptInvalid: true,
    handler: (req) => {
      assert.equal(req.method, "CONNECT");
      assert.equal(req.host, "example.com");
      return { status: 200, fields: new Fields(), body: echo("tunnel") };
    },
  });
  const got = await talk(
    port,
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "ping",
    "tunnel[]",
    "ping",
  );
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(got.endsWith("\r\n\r\ntunnel[]ping"));
});

test("an upgrade answered normally ends with the connection; a takeover where none is possible is a 500", async (t) => {
  const { port, reports } = await startEngine(t, {
    handler: (req) =>
      req.path === "/wrong"
        ? { status: 101, fields: new Fields(), body: echo("x") }
        : response(426, "no upgrade here"),
  });
  const a = await exchange(
    port,
    "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
  );
  assert.equal(a.responses.length, 1);
  assert.equal(a.responses[0]!.status, 426);
  assert.equal(header(a.responses[0], "connection"), "close");
  assert.equal(a.closed, true);
  const b = await exchange(port, "GET /wrong HTTP/1.1\r\nHost: a\r\n\r\n");
  assert.equal(b.responses[0]!.status, 500);
  assert.ok(reports.some((r) => r.includes("takeover")));
});
