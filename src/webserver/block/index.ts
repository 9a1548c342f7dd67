/**
 * block: refuse requests on their method, path or headers, before any other access check
 * (scanners probing for `.php` and `.env`, unwanted methods, clients without a User-Agent), and
 * `allowMethods` (nginx's `limit_except`): any other method gets 405 with `Allow`.
 *
 * Runs in the access phase, first of the access modules: refusing a scanner costs nothing
 * further, not even a rate-limit count.
 */
import { type BlockRule, blockFields, type PatternText } from "../../config/settings/web/block.ts";
import { compileRegex } from "../../config/settings/web/syntax.ts";
import type { ObjectOut } from "../../config/types.ts";
import { Fields, HttpError, response, type WebRequest } from "../exchange.ts";
import type { WebModule } from "../module.ts";

type Settings = ObjectOut<typeof blockFields>;

function regex(p: PatternText): RegExp {
  const re = compileRegex(p.source, p.caseless);
  // The schema compiled it already; a string here would be a bug upstream of us.
  if (typeof re === "string") throw new Error(re);
  return re;
}

type Test = (req: WebRequest) => boolean;

/** One rule as a predicate: every condition given must hold. */
export function compileRule(rule: BlockRule): Test {
  const tests: Test[] = [];
  if (rule.methods) {
    const methods = new Set(rule.methods);
    tests.push((req) => methods.has(req.method));
  }
  if (rule.path) {
    const re = regex(rule.path);
    tests.push((req) => re.test(req.path));
  }
  for (const [name, cond] of Object.entries(rule.headers ?? {})) {
    if (cond === true) tests.push((req) => req.fields.has(name));
    else if (cond === false) tests.push((req) => !req.fields.has(name));
    else {
      const re = regex(cond);
      tests.push((req) => {
        const v = req.fields.joined(name);
        return v !== undefined && re.test(v);
      });
    }
  }
  return (req) => {
    for (const t of tests) if (!t(req)) return false;
    return true;
  };
}

export const blockModule: WebModule<Settings> = {
  name: "block",
  doc: "Refuse requests by method, path pattern or headers; allow only some methods.",
  fields: blockFields,
  setup(scope) {
    const { block, allowMethods } = scope.settings;
    if ((block === undefined || block.length === 0) && allowMethods === undefined) return undefined;
    const rules = (block ?? []).map((r) => ({ test: compileRule(r), status: r.status }));
    let allowed: Set<string> | undefined;
    let allowHeader = "";
    if (allowMethods !== undefined) {
      allowed = new Set(allowMethods);
      if (allowed.has("GET")) allowed.add("HEAD");
      allowHeader = [...allowed].join(", ");
    }
    return {
      access(req) {
        for (const r of rules) {
          if (!r.test(req)) continue;
          // 444 is the engine's: close without an answer. Others get the error page.
          if (r.status === 444) return response(444);
          throw new HttpError(r.status);
        }
        if (allowed && !allowed.has(req.method)) {
          throw new HttpError(405, undefined, { fields: Fields.from({ allow: allowHeader }) });
        }
        return undefined;
      },
    };
  },
};
