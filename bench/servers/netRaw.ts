/**
 * A bare `net` server writing one prepared HTTP response per request: `node netRaw.ts <port>`.
 * No parser at all, so it is a ceiling for what a single Node process can push through sockets,
 * not a server: it only understands body-less requests (it counts the blank lines that end
 * request heads), which is all wrk sends.
 */
import { createServer } from "node:net";

const port = Number(process.argv[2]);
const response = Buffer.from(
  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
);
const end = Buffer.from("\r\n\r\n");

createServer((socket) => {
  socket.setNoDelay(true);
  // The tail of the previous chunk, so a head end split across reads is still seen.
  let carry: Buffer = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    let count = 0;
    let at = data.indexOf(end);
    let last = 0;
    while (at !== -1) {
      count++;
      last = at + end.length;
      at = data.indexOf(end, last);
    }
    carry = data.subarray(Math.max(last, data.length - (end.length - 1)));
    if (count === 1) socket.write(response);
    else if (count > 1) socket.write(Buffer.concat(Array(count).fill(response)));
  });
  socket.on("error", () => socket.destroy());
}).listen(port, "127.0.0.1");
