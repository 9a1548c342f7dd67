/**
 * A bare `net` server answering GETs for the files of one directory from memory:
 * `node netRawFiles.ts <port> <dir> [body of /]` (the engine suite's `/` answers "hello", as
 * nginx's `return`, the third argument). Each file's whole response (a short head and the bytes) is
 * one Buffer made at start, written with one `socket.write` per request. No HTTP parsing beyond
 * the request target (it counts the blank lines that end request heads, as bench/servers/netRaw.ts
 * does, and reads the target of each head's request line), no validators, no conditionals: Node's
 * floor for sending file bytes from memory, which the static and engine suites set beside nginx
 * (whose sendfile Node has no counterpart of for sockets: every byte is copied into the kernel).
 */
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

const port = Number(process.argv[2]);
const dir = process.argv[3];
if (dir === undefined) throw new Error("usage: node netRawFiles.ts <port> <dir> [body of /]");

const responses = new Map<string, Buffer>();
const prepare = (body: Buffer): Buffer => {
  const head = `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), body]);
};
for (const name of readdirSync(dir))
  responses.set(`/${name}`, prepare(readFileSync(join(dir, name))));
if (process.argv[4] !== undefined) responses.set("/", prepare(Buffer.from(process.argv[4])));
const notFound = Buffer.from("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
const end = Buffer.from("\r\n\r\n");
const SP = 0x20;

/** The response for the request head that starts at `start` of `data`. */
function answer(data: Buffer, start: number): Buffer {
  const a = data.indexOf(SP, start);
  const b = a < 0 ? -1 : data.indexOf(SP, a + 1);
  if (b < 0) return notFound;
  return responses.get(data.toString("latin1", a + 1, b)) ?? notFound;
}

createServer((socket) => {
  socket.setNoDelay(true);
  // The unfinished head at the end of the previous chunk, if any.
  let carry: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    let at = data.indexOf(end);
    while (at !== -1) {
      socket.write(answer(data, start));
      start = at + end.length;
      at = data.indexOf(end, start);
    }
    carry = start < data.length ? Buffer.from(data.subarray(start)) : Buffer.alloc(0);
  });
  socket.on("error", () => socket.destroy());
}).listen(port, "127.0.0.1");
