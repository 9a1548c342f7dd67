/**
 * Fields of the headers module (src/webserver/headers/): response header rules and the
 * `expires` / Cache-Control helpers. Inherited like nginx's `add_header`: a block that sets a
 * field replaces the inherited value of that field as a whole.
 */
import {
  boolean,
  byShape,
  field,
  integer,
  list,
  object,
  optional,
  parseDuration,
  record,
  refine,
  string,
} from "../../types.ts";
import type { Expires } from "./syntax.ts";

/** One header rule, normalised. */
export interface HeaderRule {
  name: string;
  value: string;
  always: boolean;
}

const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const badName = (name: string): string | undefined =>
  token.test(name) ? undefined : `not a valid header name: ${JSON.stringify(name)}`;
const badValue = (value: string): string | undefined =>
  /[\r\n\0]/.test(value) ? "a header value may not contain CR, LF or NUL" : undefined;

const ruleValue = byShape(
  {
    string: refine(string({ allowEmpty: true }), (value, problem) => {
      const bad = badValue(value);
      return bad ? problem(bad) : { value, always: false };
    }),
    object: refine(
      object(
        {
          value: field({
            type: string({ allowEmpty: true }),
            doc: "The value (variables allowed).",
          }),
          always: field({
            type: optional(boolean()),
            doc: "Also on error responses (any status); by default only on 200, 201, 204, 206, 301, 302, 303, 304, 307, 308.",
          }),
        },
        { name: "header value" },
      ),
      (v, problem) => {
        const bad = badValue(v.value);
        return bad ? problem(bad) : { value: v.value, always: v.always ?? false };
      },
    ),
  },
  { name: "header value", expected: "a value, or { value, always: true }" },
);

const ruleList = refine(
  list(
    refine(
      object(
        {
          name: field({ type: string(), doc: "The header name." }),
          value: field({
            type: string({ allowEmpty: true }),
            doc: "The value (variables allowed).",
          }),
          always: field({ type: optional(boolean()), doc: "Also on error responses." }),
        },
        { name: "header rule" },
      ),
      (v, problem) => {
        const bad = badName(v.name) ?? badValue(v.value);
        return bad ? problem(bad) : { name: v.name, value: v.value, always: v.always ?? false };
      },
    ),
  ),
  (rules) => rules as HeaderRule[],
);

const headerRules = byShape(
  {
    object: refine(
      record(ruleValue, { name: "header rules", keyName: "<header>", key: badName }),
      (r) => Object.entries(r).map(([name, v]) => ({ name, ...v }) as HeaderRule),
    ),
    list: ruleList,
  },
  {
    name: "header rules",
    expected:
      'an object of header: value ({ "X-Frame-Options": "DENY" }) or a list of { name, value, always }',
  },
);

function parseExpires(v: string | number): Expires | string {
  if (v === "off") return { kind: "off" };
  if (v === "epoch") return { kind: "epoch" };
  if (v === "max") return { kind: "max" };
  let text = typeof v === "number" ? String(v) : v.trim();
  let kind: "offset" | "modified" = "offset";
  if (text.startsWith("modified")) {
    kind = "modified";
    text = text.slice(8).trim();
  }
  const negative = text.startsWith("-");
  const seconds = parseDuration(text.replace(/^[-+]/, ""));
  if (seconds === undefined) {
    return `expected a duration ("30d", "1h", -1), "modified 1h", "epoch", "max" or "off", found ${JSON.stringify(v)}`;
  }
  return { kind, seconds: negative ? -seconds : seconds };
}

const expiresType = byShape(
  {
    string: refine(string(), (t, problem) => {
      const r = parseExpires(t);
      return typeof r === "string" ? problem(r) : r;
    }),
    number: refine(integer(), (n, problem) => {
      const r = parseExpires(n);
      return typeof r === "string" ? problem(r) : r;
    }),
  },
  {
    name: "expires",
    expected: 'a duration ("30d", "1h", -1), "modified 1h", "epoch", "max" or "off"',
    metavar: "DURATION",
  },
);

export const headersFields = {
  addHeaders: field({
    type: optional(headerRules),
    doc: 'Response headers added (beside any of the same name), e.g. `{ "X-Frame-Options": "DENY" }`, or a list of `{ name, value, always }` to repeat a name. Values may use variables (`$request_id`). Only on 200, 201, 204, 206, 301, 302, 303, 304, 307, 308 unless `always`.',
    nginx: "add_header",
  }),
  setHeaders: field({
    type: optional(headerRules),
    doc: "Response headers set, replacing any of the same name the content handler produced (an upstream's `Server`, say). Same forms and status rule as `addHeaders`.",
    nginx: "more_set_headers (headers-more)",
  }),
  removeHeaders: field({
    type: optional(
      refine(list(string()), (names, problem) => {
        const bad = names.map(badName).find((m) => m !== undefined);
        return bad ? problem(bad) : names.map((n) => n.toLowerCase());
      }),
    ),
    doc: "Response headers removed, whatever the status (`X-Powered-By`).",
    nginx: "proxy_hide_header / more_clear_headers",
  }),
  expires: field({
    type: optional(expiresType),
    doc: 'Sets `Expires` and `Cache-Control: max-age` on 200, 201, 204, 206, 301, 302, 303, 304, 307, 308: a duration from now (`"30d"`), `"modified 1h"` (from the file\'s Last-Modified), a negative duration (`-1`: `no-cache`), `"epoch"`, `"max"` (10 years), or `"off"`.',
    nginx: "expires",
  }),
  cacheControl: field({
    type: optional(refine(string(), (v, problem) => (badValue(v) ? problem(badValue(v)!) : v))),
    doc: 'Cache-Control directives added (`"public, immutable"`, `"no-store"`): after the `max-age` of `expires`, or alone. Same status rule as `expires`.',
    nginx: 'add_header Cache-Control "..."',
  }),
};
