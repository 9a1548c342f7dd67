/**
 * An Express 5 app, served unchanged: Brigade detects an Express app and runs it as a Node
 * `(req, res)` listener.
 *
 *   brigade app examples/express.ts
 */
import express from "express";

const app = express();
app.get("/", (_req, res) => {
  res.type("text/plain").send("Hello from Express on Brigade!\n");
});
app.get("/json", (_req, res) => {
  res.json({ hello: "world", framework: "express" });
});
app.post("/echo", express.raw({ type: () => true, limit: "1mb" }), (req, res) => {
  res.type(req.get("content-type") ?? "application/octet-stream").send(req.body);
});

export default app;
