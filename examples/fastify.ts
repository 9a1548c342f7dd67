/**
 * A Fastify app, served unchanged: export the instance (not listening); Brigade awaits
 * `ready()` and hands requests to its `.routing`.
 *
 *   brigade app examples/fastify.ts
 */
import Fastify from "fastify";

const app = Fastify();
app.removeAllContentTypeParsers();
// Echo any body as it came: a buffer parser for every content type.
app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
app.get("/", async (_req, reply) =>
  reply.type("text/plain").send("Hello from Fastify on Brigade!\n"),
);
app.get("/json", async () => ({ hello: "world", framework: "fastify" }));
app.post("/echo", async (req, reply) =>
  reply.type(req.headers["content-type"] ?? "application/octet-stream").send(req.body),
);

export default app;
