/**
 * `brigade purge`: purge the HTTP cache of a running web server through its cache admin
 * endpoint (a location with `cacheAdmin`). The endpoint and its token come from `--admin` and
 * `--token` (or `BRIGADE_CACHE_TOKEN`), else from the config: the first location with
 * `cacheAdmin`, on its server's first listen address.
 *
 *   brigade purge http://example.com/page          every stored variant of that URL
 *   brigade purge --tag product-42 --invalidate    mark everything tagged stale
 *   brigade purge --key 'http://example.com/a?b'   one key
 */
import http from "node:http";
import type { Config } from "../../config/schema.ts";
import { parseListen } from "../../config/types.ts";

export interface PurgeArgs {
  url?: string | undefined;
  tag?: string | undefined;
  key?: string | undefined;
  invalidate: boolean;
  admin?: string | undefined;
  token?: string | undefined;
}

interface Endpoint {
  /** `http://host:port/path` or a unix socket with a path. */
  url: URL | undefined;
  socketPath: string | undefined;
  path: string;
  token: string;
}

interface LocationLike {
  match?: string;
  cacheAdmin?: { token: string };
  locations?: LocationLike[];
}

function findAdmin(locations: LocationLike[] | undefined): LocationLike | undefined {
  for (const l of locations ?? []) {
    if (l.cacheAdmin !== undefined) return l;
    const inner = findAdmin(l.locations);
    if (inner) return inner;
  }
  return undefined;
}

/** The admin endpoint the config declares, or a message saying why there is none. */
export function endpointFromConfig(
  config: Config,
): (Omit<Endpoint, "token"> & { token: string }) | string {
  for (const server of config.web.servers) {
    const loc = findAdmin(server.locations as LocationLike[] | undefined);
    if (loc === undefined) continue;
    const m = /^(=\s*|\^~\s*)?(\/\S*)$/.exec(loc.match ?? "");
    if (m === null)
      return `the cacheAdmin location's match ${JSON.stringify(loc.match)} is not a path; pass --admin URL`;
    const listen = server.listen?.[0]?.address ?? config.web.listen[0];
    if (listen === undefined) return "the admin location's server listens nowhere";
    const a = parseListen(listen);
    if (a === undefined) return `cannot read the listen address ${listen}`;
    if (a.kind === "unix") {
      return { url: undefined, socketPath: a.path, path: m[2]!, token: loc.cacheAdmin!.token };
    }
    const host =
      a.host === undefined || a.host === "0.0.0.0" ? "127.0.0.1" : a.host === "::" ? "::1" : a.host;
    const h = host.includes(":") ? `[${host}]` : host;
    return {
      url: new URL(`http://${h}:${a.port}${m[2]}`),
      socketPath: undefined,
      path: m[2]!,
      token: loc.cacheAdmin!.token,
    };
  }
  return "no location has cacheAdmin in the config; pass --admin URL and --token";
}

/** Run a purge; resolves to the exit code, writing the answer or the problem. */
export async function purgeCommand(
  config: Config,
  args: PurgeArgs,
  out: (s: string) => void,
  err: (s: string) => void,
): Promise<number> {
  const what = [args.url, args.tag, args.key].filter((x) => x !== undefined);
  if (what.length !== 1) {
    err("brigade purge: name exactly one of URL, --tag TAG or --key KEY");
    return 2;
  }
  let ep: Endpoint;
  if (args.admin !== undefined) {
    let url: URL;
    try {
      url = new URL(args.admin);
    } catch {
      err(`brigade purge: --admin: not a URL: ${args.admin}`);
      return 2;
    }
    const token = args.token ?? process.env.BRIGADE_CACHE_TOKEN;
    if (token === undefined) {
      err("brigade purge: --admin needs --token (or BRIGADE_CACHE_TOKEN)");
      return 2;
    }
    ep = { url, socketPath: undefined, path: url.pathname, token };
  } else {
    const found = endpointFromConfig(config);
    if (typeof found === "string") {
      err(`brigade purge: ${found}`);
      return 2;
    }
    ep = { ...found, token: args.token ?? found.token };
  }
  const q = new URLSearchParams();
  if (args.url !== undefined) q.set("url", args.url);
  if (args.tag !== undefined) q.set("tag", args.tag);
  if (args.key !== undefined) q.set("key", args.key);
  if (args.invalidate) q.set("mode", "invalidate");
  const path = `${ep.path}?${q}`;
  try {
    const { status, body } = await new Promise<{ status: number; body: string }>(
      (resolve, reject) => {
        const r = http.request(
          {
            method: "POST",
            ...(ep.socketPath !== undefined
              ? { socketPath: ep.socketPath }
              : { host: ep.url!.hostname.replace(/^\[|\]$/g, ""), port: ep.url!.port || 80 }),
            path,
            headers: { authorization: `Bearer ${ep.token}` },
            timeout: 10_000,
          },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => {
              body += c;
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        r.on("timeout", () => r.destroy(new Error("no answer within 10 s")));
        r.on("error", reject);
        r.end();
      },
    );
    if (status !== 200) {
      err(`brigade purge: the admin endpoint answered ${status}: ${body.trim()}`);
      return 1;
    }
    out(body.trim());
    return 0;
  } catch (e) {
    err(`brigade purge: cannot reach the admin endpoint: ${(e as Error).message}`);
    return 1;
  }
}
