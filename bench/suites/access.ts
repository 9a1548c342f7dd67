/**
 * access: what a rate limit and basic auth cost per request, in brigade and in nginx, each
 * against the same server without them (one worker each; wrk sends the same Authorization header
 * to every case).
 *
 * - `plain`: no rule. nginx serves a 5-byte file; brigade (no static module yet) answers the
 *   location's 404 through `errorPages: ["404 = @ok"]` with `return 200 "hello"`, so that the
 *   access phase runs (a location's own `return` runs in the rewrite phase, before access, in
 *   both servers).
 * - `limitReq`: the same plus a leaky bucket per client address at a rate nothing exceeds
 *   (what is measured is the counting: nginx's shared memory zone, brigade's master round trip).
 * - `auth sha`: basic auth against an htpasswd entry in `{SHA}` (cheap to check).
 * - `auth bcrypt`: the same user with a bcrypt entry (htpasswd -B, cost 5). nginx runs crypt()
 *   on every request; brigade checks once in its bcrypt thread and then remembers the success.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startCommand, startNginx } from "../lib/peers.ts";
import { benchFile, type Case, defineSuite } from "../lib/suite.ts";

const user = "bench";
const password = "bench-password";
// Made with `htpasswd -nbs` and `htpasswd -nbB -C 5` for bench:bench-password.
const shaLine = "bench:{SHA}o3cOkwHD7Gf2y1wTOReNwr96zYY=";
const bcryptLine = "bench:$2y$05$.KgSF56kbtYbn0X3b1yToechBmFiLa4F6uaK85448kKd9CRov3og6";

type Variant = "plain" | "limitReq" | "auth sha" | "auth bcrypt";
const paths: Record<Variant, string> = {
  plain: "plain/hello.txt",
  limitReq: "limited/hello.txt",
  "auth sha": "sha/hello.txt",
  "auth bcrypt": "bc/hello.txt",
};

const nginxServer = `
  location /plain/ { }
  location /limited/ { limit_req zone=bench burst=1000000 nodelay; }
  location /sha/ { auth_basic "bench"; auth_basic_user_file {dir}/sha.htpasswd; }
  location /bc/ { auth_basic "bench"; auth_basic_user_file {dir}/bc.htpasswd; }
`;

function nginxCase(v: Variant): Case {
  return {
    name: `nginx ${v}`,
    description: `nginx, 1 worker, ${v === "plain" ? "a 5-byte file" : `a 5-byte file behind ${v}`}`,
    start: async () => {
      const files: Record<string, string> = {
        "sha.htpasswd": `${shaLine}\n`,
        "bc.htpasswd": `${bcryptLine}\n`,
      };
      for (const dir of ["plain", "limited", "sha", "bc"]) files[`html/${dir}/hello.txt`] = "hello";
      const server = await startNginx({
        workers: 1,
        files,
        http: "  limit_req_zone $binary_remote_addr zone=bench:10m rate=1000000r/s;",
        serverBlock: nginxServer,
      });
      return { ...server, url: `${server.url}${paths[v]}` };
    },
  };
}

function brigadeConfig(port: number) {
  const big = { rate: "1000000r/s", burst: 1000000, nodelay: true };
  return {
    log: { level: "warn", format: "text" },
    web: {
      workers: 1,
      servers: [
        {
          listen: [`127.0.0.1:${port}`],
          errorPages: ["404 = @ok"],
          locations: [
            { match: "@ok", return: '200 "hello"' },
            { match: "/plain/" },
            { match: "/limited/", limitReq: [big] },
            { match: "/sha/", authBasic: "bench", authBasicUserFile: "sha.htpasswd" },
            { match: "/bc/", authBasic: "bench", authBasicUserFile: "bc.htpasswd" },
          ],
        },
      ],
    },
  };
}

function brigadeCase(v: Variant): Case {
  return {
    name: `brigade ${v}`,
    description: `brigade web, 1 worker, ${v === "plain" ? "404 -> @ok return" : `the same behind ${v}`}`,
    start: async () => {
      const server = await startCommand({
        name: "brigade web",
        command: process.execPath,
        args: [benchFile("bin/brigade.ts"), "web", "-c", "{dir}/web.json"],
        files: { "sha.htpasswd": `${shaLine}\n`, "bc.htpasswd": `${bcryptLine}\n` },
        beforeSpawn(port, dir) {
          writeFileSync(join(dir, "web.json"), JSON.stringify(brigadeConfig(port)));
        },
      });
      return { ...server, url: `${server.url}${paths[v]}` };
    },
  };
}

const variants: Variant[] = ["plain", "limitReq", "auth sha", "auth bcrypt"];

export default defineSuite({
  description: "the cost of a rate limit and of basic auth per request, brigade and nginx",
  baseline: "nginx plain",
  tools: ["nginx"],
  headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` },
  cases: [...variants.map(nginxCase), ...variants.map(brigadeCase)],
});
