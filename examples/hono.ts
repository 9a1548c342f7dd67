/**
 * A Hono app, served unchanged: a Hono instance is a fetch handler. `c.env` is Brigade's
 * AppContext (client address, TLS, waitUntil).
 *
 *   brigade app examples/hono.ts
 */
import { Hono } from "hono";
import type { AppContext } from "../src/gateway/index.ts";

const app = new Hono<{ Bindings: AppContext }>();
app.get("/", (c) => c.text("Hello from Hono on Brigade!\n"));
app.get("/json", (c) => c.json({ hello: "world", framework: "hono", client: c.env.remoteAddress }));
app.post(
  "/echo",
  (c) =>
    new Response(c.req.raw.body, {
      headers: { "content-type": c.req.header("content-type") ?? "application/octet-stream" },
    }),
);

export default app;
