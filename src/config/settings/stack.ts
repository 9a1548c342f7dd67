/**
 * The `stack` section: what `brigade up` adds on top of the two tiers it runs under one master
 * (src/stack/): the admin listener, the runtime directory (app worker sockets, the control
 * socket), rolling deploys with a canary, and the graceful stop for orchestrators.
 */
import { setting } from "../setting.ts";
import {
  boolean,
  describeFound,
  duration,
  integer,
  invalid,
  listenExpected,
  optional,
  parseListen,
  string,
  type ValueType,
} from "../types.ts";

/** A listen address, or `"off"`. */
function listenOrOff(): ValueType<string, string> {
  const expected = `${listenExpected}, or "off"`;
  return {
    name: "listen address or off",
    expected,
    metavar: "ADDRESS|off",
    kind: "scalar",
    fromString: (text) => text,
    check(value, path, issues) {
      if (value === "off" || (typeof value === "string" && parseListen(value))) {
        return value as string;
      }
      issues.push({ path, message: `expected ${expected}, found ${describeFound(value)}` });
      return invalid;
    },
  };
}

export const stack = {
  admin: setting({
    type: listenOrOff(),
    default: "127.0.0.1:9180",
    doc: 'Where the master serves operations over HTTP: `/livez` (liveness), `/readyz` (readiness: 503 until every worker is up and once a graceful stop begins), `/metrics` (Prometheus text, both tiers) and `/dashboard` (a live page, no external assets). Keep it off the public network. "off" serves none of it.',
  }),
  runtimeDir: setting({
    type: optional(string({ metavar: "DIR" })),
    default: undefined,
    defaultText: "$XDG_RUNTIME_DIR/brigade/<id>, else /tmp/brigade-<uid>/<id>",
    doc: "A directory for the running stack's sockets: one unix socket per app worker (`app-<slot>-<n>.sock`) and the master's control socket (`control.sock`, mode 0600), which `brigade status`, `reload`, `stop` and `scale` talk to. By default a directory per working directory and config file (`<id>` is a hash of both), so those commands, run where `brigade up` was, find it.",
  }),
  canary: setting({
    type: duration(),
    default: 10,
    doc: "On a reload, the first new app worker is a canary for this long: it serves beside the old workers, and if its share of 5xx answers or its mean latency is far worse than theirs (see `canaryMinRequests`), the new version is rolled back at once and the reason logged. After it, the other app workers are replaced one at a time. 0 turns the canary off (workers are still replaced one at a time).",
  }),
  canaryMinRequests: setting({
    type: integer({ min: 1 }),
    default: 20,
    doc: "How many requests the canary must have answered before it is judged: with fewer, it passes when the canary time is over (there was too little traffic to tell). It fails when its 5xx share is over twice the old workers' plus 10 points, or its mean latency is over three times theirs plus 100 ms.",
  }),
  stopDelay: setting({
    type: duration(),
    default: 0,
    doc: "On TERM, how long readiness (`/readyz`) answers 503 while everything still serves, before the web workers stop accepting and drain: time for a load balancer (a Kubernetes Service) to take the instance out of rotation. Then in-flight requests finish within the tiers' `gracefulTimeout`.",
  }),
  appQueue: setting({
    type: integer({ min: 0 }),
    default: 100,
    doc: "With `sync` app workers (one request at a time each), how many requests each web worker may hold waiting for a free app worker (the queue at the front); one more is answered 503. Async app workers take requests as they come and need no queue.",
    nginx: "queue (upstream)",
  }),
  appLeases: setting({
    type: boolean(),
    default: true,
    doc: "With `sync` app workers, each web worker takes a lease on an app worker from the master before it sends it a request, so that over all web workers a sync app worker is given one request at a time and a request waits at the front (never in a busy worker's socket queue while another worker is idle); it costs one round trip to the master per request (docs/stack.md has the figure). Off, each web worker gives each app worker one request at a time on its own: with several web workers, a request may wait behind another web worker's at a busy app worker. Async app workers never use leases.",
  }),
};
