/**
 * Fields of the block module (src/webserver/block/): requests refused on their method, path or
 * headers, before any other access check (scanners, unwanted methods). Inherited.
 */
import {
  boolean,
  byShape,
  field,
  integer,
  list,
  object,
  optional,
  record,
  refine,
  string,
} from "../../types.ts";
import { compileRegex } from "./syntax.ts";

/** A regex as written: `"\\.php$"` (case-sensitive) or `"~* \\.php$"` (caseless). */
export interface PatternText {
  source: string;
  caseless: boolean;
}

/** One block rule, normalised: every condition given must hold. */
export interface BlockRule {
  methods: string[] | undefined;
  path: PatternText | undefined;
  /** name -> true (present), false (absent), or a pattern its value must match. */
  headers: Record<string, boolean | PatternText> | undefined;
  /** 403 by default; 444 closes the connection unanswered. */
  status: number;
}

const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const pattern = refine(string(), (text, problem) => {
  const m = /^(~\*?)\s+(.*)$/s.exec(text);
  const p: PatternText = m
    ? { source: m[2]!, caseless: m[1] === "~*" }
    : { source: text, caseless: false };
  const re = compileRegex(p.source, p.caseless);
  return typeof re === "string" ? problem(re) : p;
});

const methodList = refine(list(string()), (methods, problem) => {
  const bad = methods.find((m) => !token.test(m));
  return bad !== undefined
    ? problem(`not a method: ${JSON.stringify(bad)}`)
    : methods.map((m) => m.toUpperCase());
});

const blockRule = refine(
  object(
    {
      methods: field({ type: optional(methodList), doc: 'Methods: `["TRACE", "PROPFIND"]`.' }),
      path: field({
        type: optional(pattern),
        doc: 'A regular expression the path (`$uri`, decoded and normalised) matches: `"\\\\.(php|aspx?)$"`, `"~* ^/wp-admin"` (caseless).',
      }),
      headers: field({
        type: optional(
          record(
            byShape(
              { boolean: boolean(), string: pattern },
              { name: "header condition", expected: "true (present), false (absent) or a pattern" },
            ),
            {
              name: "header conditions",
              key: (k) => (token.test(k) ? undefined : `not a header name: ${JSON.stringify(k)}`),
            },
          ),
        ),
        doc: '`{ "x-scanner": true }` (present), `{ "user-agent": false }` (absent), `{ "user-agent": "~* (sqlmap|nikto|masscan)" }` (value matches).',
      }),
      status: field({
        type: optional(integer({ min: 400, max: 599 })),
        doc: "What a matching request gets: 403 (the default), 404, ..., or 444 to close the connection without an answer.",
      }),
    },
    { name: "block rule" },
  ),
  (v, problem) => {
    if (v.methods === undefined && v.path === undefined && v.headers === undefined) {
      return problem("a block rule needs at least one of `methods`, `path`, `headers`");
    }
    const headers =
      v.headers === undefined
        ? undefined
        : Object.fromEntries(Object.entries(v.headers).map(([k, c]) => [k.toLowerCase(), c]));
    return {
      methods: v.methods,
      path: v.path,
      headers,
      status: v.status ?? 403,
    } as BlockRule;
  },
);

export const blockFields = {
  block: field({
    type: optional(list(blockRule)),
    doc: 'Refuse requests by method, path pattern or headers, before every other access check: `[{ path: "~* \\\\.(php|env|git)", status: 444 }, { headers: { "user-agent": false } }]`. A request matching a rule (every condition of it) gets its status.',
    nginx: "if (...) { return 403|444; }",
  }),
  allowMethods: field({
    type: optional(methodList),
    doc: "The only methods allowed: others get 405 with `Allow`. `GET` allows `HEAD` too. Default: any.",
    nginx: "limit_except",
  }),
};
