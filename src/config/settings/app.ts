/** The `app` section: the app server (`brigade app`), which runs the user's app. */
import { setting } from "../setting.ts";
import { appSpec, list, listen, optional, workers } from "../types.ts";
import { processSettings } from "./process.ts";

export const app = {
  app: setting({
    type: optional(appSpec()),
    default: undefined,
    env: "BRIGADE_APP",
    positional: "APP",
    doc: 'The app to serve: a module path, optionally with the export to use, `"path:name"`, or a factory called once per worker, `"path:factory()"`. Without a name the default export is used. Required by `brigade app` and `brigade up`; also their positional argument.',
    gunicorn: "wsgi_app (APP_MODULE)",
  }),
  bind: setting({
    type: list(listen()),
    default: ["127.0.0.1:8000"],
    short: "b",
    doc: 'The addresses the app server listens on, each "host:port", ":port", "[::1]:port", "port" or "unix:/path". Repeat the flag for several; in an env var, separate them with commas.',
    gunicorn: "bind",
  }),
  ...processSettings({
    name: "app server",
    // A non-numeric $WEB_CONCURRENCY is passed on as is, so validation names what it found.
    workers: (env) =>
      env.WEB_CONCURRENCY === undefined || env.WEB_CONCURRENCY === ""
        ? 1
        : (workers().fromString(env.WEB_CONCURRENCY) as number),
    workersText: "$WEB_CONCURRENCY if set, else 1",
    workersDoc:
      'Each worker runs one copy of the app. Like gunicorn, the default is `$WEB_CONCURRENCY` when set (the convention of Heroku-style platforms), else 1; `"auto"` is one per core.',
  }),
};
