/**
 * The access log module: one line per request, after the response, in nginx's `combined` or
 * `common` format, a template of variables, or JSON; to files (buffered, reopened on USR1) or
 * standard output. Per server and location (inherited), several logs at once, or off.
 */
import { accessSync, constants, existsSync } from "node:fs";
import { dirname } from "node:path";
import { type AccessLogTarget, accessLogFields } from "../../config/settings/web/accessLog.ts";
import type { WebRequest, WebResponse } from "../exchange.ts";
import type { Completion, LocationScope, LogHandler, WebModule } from "../module.ts";
import { escapeJson, escapeLog, type Template } from "../variables.ts";
import { LogWriter } from "./writer.ts";

interface Settings {
  accessLog?: AccessLogTarget[];
}

/** nginx's predefined formats. */
export const formats: Record<string, string> = {
  combined:
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"',
  common: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent',
};

/** The JSON format's fields unless `fields` says otherwise. */
export const jsonFields: Record<string, string> = {
  time: "$time_iso8601",
  remote_addr: "$remote_addr",
  remote_user: "$remote_user",
  request: "$request",
  method: "$request_method",
  uri: "$request_uri",
  protocol: "$server_protocol",
  status: "$status",
  body_bytes_sent: "$body_bytes_sent",
  request_time: "$request_time",
  referer: "$http_referer",
  user_agent: "$http_user_agent",
  host: "$host",
  request_id: "$request_id",
};

/** Variables written as JSON numbers when a field is exactly one of them. */
const numeric = new Set([
  "$status",
  "$body_bytes_sent",
  "$bytes_sent",
  "$request_time",
  "$request_length",
  "$connection",
  "$connection_requests",
  "$msec",
]);

type Line = (req: WebRequest, res: WebResponse, done: Completion) => string;

/** nginx writes "-" for a variable with no value. */
const textEscape = (v: string): string => (v === "" ? "-" : escapeLog(v));

function compileFormat(scope: LocationScope<Settings>, t: AccessLogTarget): Line {
  if (t.format === "json") {
    const parts: { key: string; tpl: Template; number: boolean }[] = Object.entries(
      t.fields ?? jsonFields,
    ).map(([key, text]) => ({
      key: JSON.stringify(key),
      tpl: scope.template(text, { escape: escapeJson }),
      number: numeric.has(text.trim()),
    }));
    return (req, res, done) => {
      let out = "{";
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i]!;
        const v = p.tpl({ req, res, done });
        out += `${i === 0 ? "" : ","}${p.key}:${p.number && v !== "" ? v : `"${v}"`}`;
      }
      return `${out}}\n`;
    };
  }
  const tpl = scope.template(formats[t.format] ?? t.format, { escape: textEscape });
  return (req, res, done) => `${tpl({ req, res, done })}\n`;
}

/** In the master: say now if the file cannot be written, instead of failing in each worker. */
function checkWritable(path: string): void {
  if (path === "-") return;
  try {
    if (existsSync(path)) accessSync(path, constants.W_OK);
    else accessSync(dirname(path), constants.W_OK);
  } catch (e) {
    throw new Error(`accessLog: cannot write ${path}: ${(e as Error).message}`);
  }
}

export const accessLog: WebModule<Settings> = {
  name: "accessLog",
  doc: "The access log: one line per request (combined, common, a template, or JSON).",
  fields: accessLogFields,
  setup(scope) {
    const targets = scope.settings.accessLog;
    if (targets === undefined || targets.length === 0) return undefined;
    const logs: { line: Line; writer: LogWriter | undefined }[] = [];
    for (const t of targets) {
      const path = t.path === "-" ? "-" : scope.resolvePath(t.path);
      const line = compileFormat(scope, t);
      if (!scope.serving) {
        checkWritable(path);
        logs.push({ line, writer: undefined });
        continue;
      }
      let writer = scope.shared.get(path) as LogWriter | undefined;
      if (writer === undefined) {
        const w = new LogWriter(path, t.buffer, t.flush, (error) =>
          scope.logger.error("cannot write the access log", { path, error }),
        );
        writer = w;
        scope.shared.set(path, w);
        scope.onReopen(() => w.reopen());
        scope.onClose(() => w.close());
      } else writer.tighten(t.buffer, t.flush);
      logs.push({ line, writer });
    }
    const log: LogHandler = (req, res, done) => {
      for (const l of logs) l.writer?.write(l.line(req, res, done));
    };
    return { log };
  },
};
