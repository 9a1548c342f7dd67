/**
 * Fields of the access log module (src/webserver/accessLog/): where each request is logged and
 * how. Inherited: a location without `accessLog` logs where its server does.
 */
import {
  boolean,
  byShape,
  duration,
  field,
  list,
  object,
  optional,
  record,
  refine,
  size,
  string,
} from "../../types.ts";

/** One access log, normalised. */
export interface AccessLogTarget {
  /** A file (opened for appending, reopened on USR1), or "-" for standard output. */
  path: string;
  /** `combined`, `common`, `json`, or a template with `$variables`. */
  format: string;
  /** For `json`: the keys and the template of each value (default: a standard set). */
  fields?: Record<string, string>;
  /** Bytes kept before a write; 0 writes each line at once. */
  buffer: number;
  /** Seconds a buffered line may wait. */
  flush: number;
}

export const accessLogFormats = ["combined", "common", "json"] as const;

const defaults = { format: "combined", buffer: 64 * 1024, flush: 1 };

const formatDoc =
  '`"combined"` (nginx\'s default), `"common"`, `"json"` (one object per line), or a template such as `"$remote_addr $request $status $request_time"`.';

const target = byShape(
  {
    string: refine(
      string({ metavar: "FILE" }),
      (path) => [{ path, ...defaults }] as AccessLogTarget[],
    ),
    object: refine(
      object(
        {
          path: field({
            type: string({ metavar: "FILE" }),
            doc: 'A file, or "-" for standard output.',
          }),
          format: field({ type: optional(string()), doc: `${formatDoc} Default "combined".` }),
          fields: field({
            type: optional(
              record(string({ allowEmpty: true }), {
                name: "json fields",
                keyName: "<key>",
                key: () => undefined,
              }),
            ),
            doc: 'For `"json"`: key -> template (`{ "ip": "$remote_addr", "ua": "$http_user_agent" }`).',
          }),
          buffer: field({
            type: optional(size()),
            doc: 'Bytes buffered before a write; 0: each line at once. Default "64k".',
          }),
          flush: field({
            type: optional(duration()),
            doc: 'Longest a buffered line waits. Default "1s".',
          }),
        },
        { name: "access log" },
      ),
      (v, problem) => {
        if (v.fields !== undefined && v.format !== "json") {
          return problem('`fields` goes with format "json"');
        }
        const out: AccessLogTarget = {
          path: v.path,
          format: v.format ?? (v.fields ? "json" : defaults.format),
          buffer: v.buffer ?? defaults.buffer,
          flush: v.flush ?? defaults.flush,
        };
        if (v.fields) out.fields = v.fields;
        if (
          !(accessLogFormats as readonly string[]).includes(out.format) &&
          !out.format.includes("$")
        ) {
          return problem(
            `format: expected ${accessLogFormats.map((f) => `"${f}"`).join(", ")} or a template with $variables, found ${JSON.stringify(out.format)}`,
          );
        }
        return [out];
      },
    ),
  },
  { name: "access log", expected: "a file path, or { path, format, buffer, flush }" },
);

/** `false` / `"off"` is no log (an empty list); a list logs to each. */
export const accessLogType = byShape(
  {
    boolean: refine(boolean(), (b, problem) =>
      b
        ? problem('expected false ("off") or a log; `true` says nowhere to log')
        : ([] as AccessLogTarget[]),
    ),
    string: refine(string({ metavar: "FILE" }), (path) =>
      path === "off" ? ([] as AccessLogTarget[]) : [{ path, ...defaults }],
    ),
    object: target,
    list: refine(list(target), (lists) => lists.flat()),
  },
  {
    name: "access log",
    expected:
      'a file path ("-" for standard output), "off", { path, format, ... } or a list of them',
    metavar: "FILE",
  },
);

export const accessLogFields = {
  accessLog: field({
    type: optional(accessLogType),
    doc: `Where requests are logged: a file path ("-" for standard output), \`{ path, format, fields, buffer, flush }\`, a list of these, or "off". Formats: ${formatDoc} Writes are buffered (64 KiB or 1 s by default) and files reopened on USR1.`,
    nginx: "access_log / log_format",
  }),
};
