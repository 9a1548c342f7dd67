/**
 * The smallest Brigade app: a web-standard fetch handler.
 *
 *   brigade app examples/hello-fetch.ts
 */
import type { AppContext } from "../src/gateway/index.ts";

export default {
  async fetch(request: Request, ctx: AppContext): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (request.method === "GET" && pathname === "/") {
      return new Response("Hello from Brigade!\n", {
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    if (request.method === "GET" && pathname === "/json") {
      return Response.json({ hello: "world", client: ctx.remoteAddress });
    }
    if (request.method === "POST" && pathname === "/echo") {
      return new Response(request.body, {
        headers: {
          "content-type": request.headers.get("content-type") ?? "application/octet-stream",
        },
      });
    }
    return new Response("Not Found\n", { status: 404 });
  },
};
