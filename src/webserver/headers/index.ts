/**
 * The headers module: response header rules (nginx's `add_header`, headers-more's set/clear) and
 * the `expires` / Cache-Control helpers, as a response filter. Like nginx, additions and
 * `expires` apply to 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 only, unless a rule
 * says `always`; removals apply to every response. Order: remove, expires, set, add.
 */
import { type HeaderRule, headersFields } from "../../config/settings/web/headers.ts";
import type { Expires } from "../../config/settings/web/syntax.ts";
import type { WebRequest, WebResponse } from "../exchange.ts";
import type { ResponseFilter, WebModule } from "../module.ts";
import type { Template } from "../variables.ts";

interface Settings {
  addHeaders?: HeaderRule[];
  setHeaders?: HeaderRule[];
  removeHeaders?: string[];
  expires?: Expires;
  cacheControl?: string;
}

/** nginx's ngx_http_headers_filter: statuses additions apply to without `always`. */
const okStatuses = new Set([200, 201, 204, 206, 301, 302, 303, 304, 307, 308]);

const TEN_YEARS = 315_360_000;

interface Compiled {
  name: string;
  value: Template;
  always: boolean;
}

function expiresFields(e: Expires, res: WebResponse, now: number): [string, string][] {
  switch (e.kind) {
    case "off":
      return [];
    case "epoch":
      return [
        ["expires", "Thu, 01 Jan 1970 00:00:01 GMT"],
        ["cache-control", "no-cache"],
      ];
    case "max":
      return [
        ["expires", "Thu, 31 Dec 2037 23:55:55 GMT"],
        ["cache-control", `max-age=${TEN_YEARS}`],
      ];
    case "offset":
    case "modified": {
      let base = now;
      if (e.kind === "modified") {
        const lm = res.fields.get("last-modified");
        const t = lm === undefined ? Number.NaN : Date.parse(lm);
        // nginx sets nothing for "modified" when the response has no Last-Modified.
        if (Number.isNaN(t)) return [];
        base = t;
      }
      const expires = base + e.seconds * 1000;
      const maxAge = Math.floor((expires - now) / 1000);
      return [
        ["expires", new Date(expires).toUTCString()],
        ["cache-control", maxAge <= 0 ? "no-cache" : `max-age=${maxAge}`],
      ];
    }
  }
}

export const headers: WebModule<Settings> = {
  name: "headers",
  doc: "Response header rules (add, set, remove) and the expires / Cache-Control helpers.",
  fields: headersFields,
  setup(scope) {
    const s = scope.settings;
    const compile = (rules: HeaderRule[] | undefined, field: string): Compiled[] =>
      (rules ?? []).map((r) => {
        try {
          return { name: r.name.toLowerCase(), value: scope.template(r.value), always: r.always };
        } catch (e) {
          throw new Error(`${field}["${r.name}"]: ${(e as Error).message}`);
        }
      });
    const add = compile(s.addHeaders, "addHeaders");
    const set = compile(s.setHeaders, "setHeaders");
    const remove = s.removeHeaders ?? [];
    const expires = s.expires && s.expires.kind !== "off" ? s.expires : undefined;
    const cacheControl = s.cacheControl;
    if (add.length + set.length + remove.length === 0 && !expires && cacheControl === undefined) {
      return undefined;
    }
    const filter: ResponseFilter = (req: WebRequest, res: WebResponse) => {
      const ok = okStatuses.has(res.status);
      const fields = res.fields.clone();
      const out: WebResponse = { ...res, fields };
      for (const name of remove) {
        // The engine adds Server itself; an empty one tells it not to.
        if (name === "server") fields.set("server", "");
        else fields.delete(name);
      }
      if (ok && (expires || cacheControl !== undefined)) {
        let cc: string | undefined;
        if (expires) {
          for (const [k, v] of expiresFields(expires, res, Date.now())) {
            fields.set(k, v);
            if (k === "cache-control") cc = v;
          }
        }
        if (cacheControl !== undefined) {
          fields.set("cache-control", cc === undefined ? cacheControl : `${cc}, ${cacheControl}`);
        }
      }
      for (const h of set) {
        if (!ok && !h.always) continue;
        const v = h.value.constant ?? h.value({ req, res: out });
        // nginx adds nothing for an empty value; set with an empty value removes.
        if (v === "") fields.delete(h.name);
        else fields.set(h.name, v);
      }
      for (const h of add) {
        if (!ok && !h.always) continue;
        const v = h.value.constant ?? h.value({ req, res: out });
        if (v !== "") fields.append(h.name, v);
      }
      return out;
    };
    return { filter };
  },
};
