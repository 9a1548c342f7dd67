/**
 * Node's floor for a keep-alive reverse proxy: `node netRawProxy.ts <port> <upstreamPort>`. A bare
 * `net` server that, for each request head it sees (body-less requests only, which is all wrk
 * sends), writes a prepared GET to an idle upstream connection from a LIFO stack, finds the end of
 * the response by its Content-Length, and writes the response bytes to the client unchanged. No
 * HTTP parsing, no headers rewritten: a ceiling for what one Node process can push through two
 * sockets per request, not a proxy.
 */
import { connect, createServer, type Socket } from "node:net";

const port = Number(process.argv[2]);
const upstreamPort = Number(process.argv[3]);
const request = Buffer.from("GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
const headEnd = Buffer.from("\r\n\r\n");
const idle: Upstream[] = [];

class Upstream {
  readonly socket: Socket;
  client: Socket | undefined;
  private data: Buffer = Buffer.alloc(0);
  constructor() {
    this.socket = connect({ port: upstreamPort, host: "127.0.0.1", noDelay: true });
    this.socket.on("data", (c: Buffer) => this.onData(c));
    this.socket.on("error", () => this.socket.destroy());
    // The upstream closes idle connections (node:http: after 5 s): never reuse a closed one.
    this.socket.on("close", () => {
      const i = idle.indexOf(this);
      if (i >= 0) idle.splice(i, 1);
    });
  }
  send(client: Socket): void {
    this.client = client;
    this.socket.write(request);
  }
  private onData(c: Buffer): void {
    this.data = this.data.length ? Buffer.concat([this.data, c]) : c;
    const end = this.data.indexOf(headEnd);
    if (end === -1) return;
    const m = /content-length: *(\d+)/i.exec(this.data.toString("latin1", 0, end));
    const total = end + 4 + Number(m?.[1] ?? 0);
    if (this.data.length < total) return;
    const response = this.data.subarray(0, total);
    this.data = this.data.subarray(total);
    const client = this.client!;
    this.client = undefined;
    idle.push(this);
    client.write(response);
  }
}

createServer((socket) => {
  socket.setNoDelay(true);
  let carry: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    let at = data.indexOf(headEnd);
    let last = 0;
    while (at !== -1) {
      (idle.pop() ?? new Upstream()).send(socket);
      last = at + headEnd.length;
      at = data.indexOf(headEnd, last);
    }
    carry = data.subarray(Math.max(last, data.length - (headEnd.length - 1)));
  });
  socket.on("error", () => socket.destroy());
}).listen(port, "127.0.0.1");
