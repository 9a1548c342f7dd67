/**
 * Fields of the rewrite module (src/webserver/rewrite/): `return` and `rewrite`, nginx's
 * ngx_http_rewrite_module without `if` and `set`. Like nginx, these are not inherited: a
 * server's rules run before its location is chosen, a location's only in that location.
 */
import {
  byShape,
  field,
  integer,
  list,
  object,
  oneOf,
  optional,
  refine,
  string,
} from "../../types.ts";
import { compileRegex, parseRewriteShorthand, type RewriteFlag, rewriteFlags } from "./syntax.ts";

const returnObject = refine(
  object(
    {
      status: field({
        type: integer({ min: 100, max: 999 }),
        doc: "The status code; 444 closes the connection without a response.",
      }),
      body: field({
        type: optional(string({ allowEmpty: true })),
        doc: "The body (variables allowed).",
      }),
      url: field({
        type: optional(string()),
        doc: "For 301, 302, 303, 307, 308: the Location (variables allowed).",
      }),
      contentType: field({
        type: optional(string()),
        doc: 'The Content-Type of `body`. Default "text/plain; charset=utf-8".',
      }),
    },
    { name: "return" },
  ),
  (v, problem) =>
    v.body !== undefined && v.url !== undefined
      ? problem("give `body` or `url`, not both")
      : v.url !== undefined && ![301, 302, 303, 307, 308].includes(v.status)
        ? problem("`url` goes with a redirect status (301, 302, 303, 307, 308)")
        : v,
);

/** `return`, normalised. */
export type ReturnSettings = { status: number; body?: string; url?: string; contentType?: string };
type ReturnOut = ReturnSettings;

/** One `rewrite` rule, normalised. */
export interface RewriteRule {
  regex: string;
  replacement: string;
  flag?: RewriteFlag | undefined;
}

const redirectCodes = [301, 302, 303, 307, 308];

/** `"https://x"` (302), `"301 /new"`, `"200 hello"`, `"404"`. */
function returnShorthand(text: string): ReturnOut | string {
  if (/^(https?:\/\/|\$scheme)/.test(text)) return { status: 302, url: text };
  const m = /^(\d{3})(?:\s+([\s\S]*))?$/.exec(text);
  if (!m) {
    return `expected a status, "status text", "status URL" or an "http(s)://" URL, found ${JSON.stringify(text)}`;
  }
  const status = Number(m[1]);
  const rest = m[2];
  if (rest === undefined) return { status };
  return redirectCodes.includes(status) ? { status, url: rest } : { status, body: rest };
}

const returnType = byShape(
  {
    number: refine(integer({ min: 100, max: 999 }), (status) => ({ status }) as ReturnOut),
    string: refine(string(), (text, problem) => {
      const r = returnShorthand(text);
      return typeof r === "string" ? problem(r) : r;
    }),
    object: returnObject,
  },
  {
    name: "return",
    expected:
      'a status (404), a URL ("https://$host$request_uri"), "301 /new", "200 text", or { status, body | url }',
    metavar: "RETURN",
  },
);

const rewriteObject = refine(
  object(
    {
      regex: field({
        type: string(),
        doc: "Matched against the path (`$uri`); captures are `$1`..`$9` and named groups.",
      }),
      replacement: field({
        type: string(),
        doc: 'The new URI (variables and captures allowed). Starting with "http://", "https://" or "$scheme": a redirect.',
      }),
      flag: field({
        type: optional(oneOf(rewriteFlags)),
        doc: "`last`: choose the location again for the new URI; `break`: stay in this location; `redirect`: 302; `permanent`: 301. None: go on with the next rule, then choose the location again.",
      }),
    },
    { name: "rewrite rule" },
  ),
  (v, problem) => {
    const re = compileRegex(v.regex);
    return typeof re === "string" ? problem(`regex: ${re}`) : v;
  },
);

const rewriteRule = byShape(
  {
    string: refine(string(), (text, problem) => {
      const r = parseRewriteShorthand(text);
      if (typeof r === "string") return problem(r);
      const re = compileRegex(r.regex);
      return typeof re === "string" ? problem(`regex: ${re}`) : r;
    }),
    object: rewriteObject,
  },
  {
    name: "rewrite rule",
    expected: '"regex replacement [last|break|redirect|permanent]" or { regex, replacement, flag }',
  },
);

export const rewriteFields = {
  return: field({
    type: optional(returnType),
    doc: 'Answer at once: a status (`404`: the error page for it; `444`: close the connection), a redirect (`"https://$host$request_uri"` is a 302; `"301 /new"` or `{ status: 301, url }`), or a body (`"200 ok"` or `{ status: 200, body, contentType }`). Runs after the `rewrite` rules of the same block. In a server block it answers before any location is chosen. Not inherited.',
    nginx: "return",
  }),
  rewrite: field({
    type: optional(list(rewriteRule)),
    doc: 'Rules applied in order to the path: `"^/old/(.*)$ /new/$1 permanent"` or `{ regex, replacement, flag }`. A replacement with "?" sets the query (the old one is appended unless it ends with "?"). In a server block they run before any location is chosen. Not inherited.',
    nginx: "rewrite",
  }),
};
