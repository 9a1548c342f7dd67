/**
 * The rewrite module: nginx's `rewrite` and `return` (without `if` and `set`).
 *
 * `rewrite` rules apply in order to the path: a match replaces the URI (captures `$1`..`$9` and
 * named groups in the replacement); `last` stops and chooses the location again, `break` stops
 * and stays, `redirect` / `permanent` (or a replacement starting with `http://`, `https://`,
 * `$scheme`) answer 302 / 301; without a flag the next rules see the new URI and the location is
 * chosen again at the end. `return` runs after the rules. In a server block both run in the
 * server rewrite phase, before any location is chosen; like nginx they are not inherited.
 */
import type { ReturnSettings, RewriteRule } from "../../config/settings/web/rewrite.ts";
import { rewriteFields } from "../../config/settings/web/rewrite.ts";
import { compileRegex } from "../../config/settings/web/syntax.ts";
import { Fields, HttpError, type WebRequest, type WebResponse } from "../exchange.ts";
import type { LocationScope, PhaseHandler, PhaseResult, WebModule } from "../module.ts";
import { resolveDots } from "../path.ts";
import type { Template } from "../variables.ts";

interface Settings {
  return?: ReturnSettings;
  rewrite?: RewriteRule[];
}

interface Rule {
  regex: RegExp;
  replacement: Template;
  flag: RewriteRule["flag"];
  redirect: boolean;
}

/** `uri` with the request's query appended as nginx does (unless it ends with "?"). */
function withArgs(uri: string, query: string): { uri: string; query: string | undefined } {
  if (uri.endsWith("?")) return { uri: uri.slice(0, -1), query: "" };
  const q = uri.indexOf("?");
  if (q < 0) return { uri, query: undefined };
  const args = uri.slice(q + 1);
  return { uri: uri.slice(0, q), query: query === "" ? args : `${args}&${query}` };
}

function compileReturn(scope: LocationScope<Settings>, r: ReturnSettings): PhaseHandler {
  if (r.status === 444) {
    const drop: WebResponse = { status: 444, fields: new Fields(), body: { kind: "empty" } };
    return () => drop;
  }
  if (r.url !== undefined) {
    const url = scope.template(r.url);
    return (req) => {
      throw new HttpError(r.status, "return", {
        fields: Fields.from([["location", url({ req })]]),
      });
    };
  }
  if (r.body !== undefined) {
    const body = scope.template(r.body);
    const type = r.contentType ?? "text/plain; charset=utf-8";
    return (req) => ({
      status: r.status,
      fields: new Fields(["content-type", type]),
      body: { kind: "bytes", data: body.constant ?? body({ req }) },
    });
  }
  if (r.status >= 300) {
    return () => {
      throw new HttpError(r.status, "return");
    };
  }
  return () => ({ status: r.status, fields: new Fields(), body: { kind: "empty" } });
}

function compileRules(scope: LocationScope<Settings>, rules: RewriteRule[]): Rule[] {
  return rules.map((r, i) => {
    const regex = compileRegex(r.regex);
    if (typeof regex === "string") throw new Error(`rewrite[${i}]: ${regex}`);
    let replacement: Template;
    try {
      replacement = scope.template(r.replacement);
    } catch (e) {
      throw new Error(`rewrite[${i}]: ${(e as Error).message}`);
    }
    return {
      regex,
      replacement,
      flag: r.flag,
      redirect:
        r.flag === "redirect" ||
        r.flag === "permanent" ||
        /^(https?:\/\/|\$scheme)/.test(r.replacement),
    };
  });
}

function uriOf(req: WebRequest): string {
  return req.query === "" ? `${req.path}?` : `${req.path}?${req.query}`;
}

/**
 * The handler for one block's rules and return. `server`: in the server rewrite phase, where
 * the location is chosen next anyway (so `last` and `break` both just stop).
 */
function handler(
  rules: Rule[],
  ret: PhaseHandler | undefined,
  server: boolean,
): PhaseHandler | undefined {
  if (rules.length === 0) return ret;
  return (req: WebRequest): PhaseResult | Promise<PhaseResult> => {
    let changed = false;
    for (const rule of rules) {
      const m = rule.regex.exec(req.path);
      if (!m) continue;
      const target = rule.replacement({ req, captures: m });
      if (rule.redirect) {
        const { uri, query } = withArgs(target, req.query);
        const q = query ?? req.query;
        throw new HttpError(rule.flag === "permanent" ? 301 : 302, "rewrite", {
          fields: Fields.from([["location", q === "" ? uri : `${uri}?${q}`]]),
        });
      }
      const { uri, query } = withArgs(target, req.query);
      const path = uri.startsWith("/") ? resolveDots(uri) : undefined;
      if (path === undefined) {
        throw new HttpError(500, `rewrite to ${JSON.stringify(target)}: not a path`);
      }
      req.path = path;
      if (query !== undefined) req.query = query;
      changed = true;
      if (rule.flag === "break") return undefined;
      if (rule.flag === "last") {
        return server ? undefined : { reroute: uriOf(req) };
      }
    }
    if (ret) return ret(req);
    if (changed && !server) return { reroute: uriOf(req) };
    return undefined;
  };
}

export const rewrite: WebModule<Settings> = {
  name: "rewrite",
  doc: "`rewrite` rules and `return`: redirects, internal rewrites, fixed answers.",
  fields: rewriteFields,
  setup(scope) {
    const own = scope.own;
    if (own.rewrite === undefined && own.return === undefined) return undefined;
    const ret = own.return === undefined ? undefined : compileReturn(scope, own.return);
    const rules = compileRules(scope, own.rewrite ?? []);
    const server = scope.location.match === "";
    const h = handler(rules, ret, server);
    if (!h) return undefined;
    return server ? { serverRewrite: h } : { rewrite: h };
  },
};
