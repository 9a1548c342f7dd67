/** The `web` section: the web server (`brigade web`), which faces the network. */
import { setting } from "../setting.ts";
import { list, listen } from "../types.ts";
import { processSettings } from "./process.ts";

export const web = {
  listen: setting({
    type: list(listen()),
    default: ["127.0.0.1:8080"],
    doc: 'The addresses the web server listens on, each "host:port", ":port", "[::1]:port", "port" or "unix:/path". Repeat the flag for several; in an env var, separate them with commas.',
    nginx: "listen",
  }),
  ...processSettings({
    name: "web server",
    workers: "auto",
    workersDoc:
      'Each worker is event-driven and holds thousands of connections, so one per core (`"auto"`, the default) is usually right.',
    nginxWorkers: "worker_processes",
  }),
};
