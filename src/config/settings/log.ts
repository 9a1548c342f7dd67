/** The `log` section: the error log shared by every process of both tiers. */
import { setting } from "../setting.ts";
import { oneOf, string } from "../types.ts";

export const log = {
  level: setting({
    type: oneOf(["debug", "info", "warn", "error", "fatal"]),
    default: "info",
    flag: "log-level",
    doc: "The lowest level written to the error log. `debug` is for finding problems, not for production: it logs every worker event.",
    nginx: "error_log (level)",
    gunicorn: "loglevel",
  }),
  format: setting({
    type: oneOf(["auto", "text", "json"]),
    default: "auto",
    flag: "log-format",
    doc: "How error log lines are written. `text` is one human-readable line per event (gunicorn's shape); `json` is one JSON object per line, for log collectors; `auto` is text on a terminal and JSON otherwise.",
  }),
  errorLog: setting({
    type: string({ metavar: "FILE" }),
    default: "-",
    flag: "error-log",
    doc: 'Where the error log goes: a file path (opened for appending, and reopened on USR1 for log rotation), or "-" for standard error.',
    nginx: "error_log (file)",
    gunicorn: "errorlog",
  }),
};
