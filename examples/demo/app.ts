/**
 * The demo behind `npm start`: a small but real app, written as a web-standard fetch handler.
 *
 * - `GET /`           an HTML page
 * - `GET /api/info`   JSON: which worker answered, its pid and uptime, the client as the server saw it
 * - `POST /api/echo`  echoes the request body back, with its length
 * - `GET /slow?ms=N`  answers after N ms (at most 10 s): why workers and buffering matter
 *
 * - `GET /api/version` the version of this code (`DEMO_VERSION`), for watching a rolling deploy
 *
 * Static assets under `public/` (style.css, app.js, favicon.svg, hello.json) are served by the
 * web tier in front (`brigade up`), never by the app.
 */
import type { AppContext } from "../../src/gateway/index.ts";

const started = Date.now();

const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Brigade demo</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/style.css">
</head>
<body>
<h1>Brigade is serving</h1>
<p>This page came from the demo app (<code>examples/demo/app.ts</code>), run by a Brigade app
worker; its stylesheet, script and icon are files in <code>examples/demo/public/</code>, served by
the web tier in front without the app being asked.</p>
<div class="card"><strong>Which worker answered</strong> <button id="again">ask again</button>
<div id="info">…</div></div>
<ul>
<li><a href="/api/info">/api/info</a>: the JSON API</li>
<li><a href="/slow?ms=1500">/slow?ms=1500</a>: a slow endpoint (the web tier holds the client; the worker is free for others meanwhile)</li>
<li><a href="/hello.json">/hello.json</a>: a static file</li>
</ul>
<script src="/app.js" defer></script>
</body>
</html>
`;

export default {
  async fetch(request: Request, ctx?: AppContext): Promise<Response> {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/":
        return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
      case "/api/info":
        return Response.json({
          pid: process.pid,
          uptimeSeconds: Math.round((Date.now() - started) / 1000),
          client: ctx
            ? { address: ctx.remoteAddress, port: ctx.remotePort, scheme: ctx.scheme }
            : null,
          method: request.method,
        });
      case "/api/version":
        return Response.json({ version: process.env.DEMO_VERSION ?? "1", pid: process.pid });
      case "/api/echo": {
        if (request.method !== "POST") {
          return new Response("use POST\n", { status: 405, headers: { allow: "POST" } });
        }
        const body = await request.text();
        return Response.json({ length: body.length, body });
      }
      case "/slow": {
        const ms = Math.min(Math.max(Number(url.searchParams.get("ms") ?? 1000) || 0, 0), 10_000);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          request.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            resolve();
          });
        });
        return new Response(`slept ${ms} ms\n`);
      }
      default:
        return new Response("not found\n", { status: 404 });
    }
  },
};
