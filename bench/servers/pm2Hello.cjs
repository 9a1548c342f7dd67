// The node:http hello for PM2 cluster mode (`pm2-runtime start pm2Hello.cjs -i 2`): PM2 forks
// the workers with node:cluster and every worker listens on $PORT. CommonJS, because PM2 would
// run a .ts file through ts-node.
const { createServer } = require("node:http");

const body = Buffer.from("hello");
createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
}).listen(Number(process.env.PORT), "127.0.0.1");
