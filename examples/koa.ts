/**
 * A Koa app, served unchanged: export the Koa instance (or `app.callback()`); Brigade detects
 * it and runs `app.callback()` as a Node listener.
 *
 *   brigade app examples/koa.ts
 */
import Koa from "koa";

const app = new Koa();
app.use(async (ctx) => {
  if (ctx.method === "GET" && ctx.path === "/") {
    ctx.type = "text/plain";
    ctx.body = "Hello from Koa on Brigade!\n";
  } else if (ctx.method === "GET" && ctx.path === "/json") {
    ctx.body = { hello: "world", framework: "koa" };
  } else if (ctx.method === "POST" && ctx.path === "/echo") {
    ctx.type = ctx.get("content-type") || "application/octet-stream";
    ctx.body = ctx.req; // streamed straight back
  }
});

export default app;
