/**
 * The `app` section: the app server (`brigade app`), which runs the user's app. Every gunicorn
 * setting that means something for Node is here, under a camelCase key, with its gunicorn name
 * in `gunicorn:`; docs/appserver.md tells how the pieces fit together.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../core/logger.ts";
import { setting } from "../setting.ts";
import {
  account,
  appSpec,
  boolean,
  duration,
  envAssignment,
  hook,
  integer,
  list,
  listen,
  mode,
  oneOf,
  optional,
  size,
  string,
  trustedPeer,
  workers,
} from "../types.ts";
import { processSettings } from "./process.ts";

/** What master-side hooks get as `server` (gunicorn passes its Arbiter). */
export interface HookServer {
  /** The master's pid. */
  readonly pid: number;
  /** The validated config (the `app` section and the rest), as the master runs it. */
  readonly config: Readonly<Record<string, unknown>>;
  /** The error log. */
  readonly logger: Logger;
}

/** What worker-side hooks get as `worker`. */
export interface HookWorker {
  /** Slot number 1..N (a replacement takes the slot of the worker it replaces). */
  readonly id: number;
  readonly pid: number;
  /** Incremented on every reload (HUP). */
  readonly generation: number;
  /** The error log, with this worker's fields. */
  readonly logger: Logger;
}

/** What `childExit` gets: a worker that has ended, seen from the master. */
export interface HookExitedWorker {
  readonly id: number;
  readonly pid: number;
  readonly generation: number;
  readonly code: number | null;
  readonly signal: string | null;
  /** `stopped`, `timeout`, `max requests`, `memory limit`, `exit code 1`, ... */
  readonly reason: string;
}

/** What `postRequest` gets besides the request and response. */
export interface HookRequestInfo {
  /** The status sent (0 if the connection died first). */
  readonly status: number;
  /** Milliseconds from the request head to the end of the response. */
  readonly durationMs: number;
}

type ServerHook = (server: HookServer) => void | Promise<void>;
type WorkerHook = (worker: HookWorker) => void | Promise<void>;

const hookDoc = (when: string, where: string, args: string) =>
  `Server hook: ${when} Runs in the ${where}, called with ${args}. A function, so only in a .ts/.js config file; an async hook is awaited. A hook that throws is logged${where === "master" ? "" : " and the worker goes on"}.`;

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
  workerClass: setting({
    type: oneOf(["async", "sync"]),
    default: "async",
    short: "k",
    doc: "The worker kind. `async`: an event loop serving many requests at once (up to `workerConnections` connections), with HTTP/1.1 keep-alive: right for almost every Node app. `sync`: one request at a time per worker, gunicorn's sync model, for CPU-bound or blocking code: a busy sync worker stops accepting, so the next connection goes to an idle worker, and it closes the connection after each response. Like gunicorn's, sync workers must sit behind a buffering proxy (`brigade web`, nginx): a slow client holds a whole worker. Process mode only.",
    gunicorn: "worker_class",
  }),
  workerConnections: setting({
    type: integer({ min: 1 }),
    default: 1000,
    doc: "The most connections an async worker holds at once. At the limit it stops accepting (new connections wait in the socket's queue for a worker with room) until one closes; nothing is refused.",
    gunicorn: "worker_connections",
  }),
  keepAlive: setting({
    type: duration(),
    default: 5,
    doc: "How long an async worker keeps an idle HTTP/1.1 connection open for its next request; 0 closes after every response. gunicorn's default is 2 s; 5 s (Node's) outlasts the idle timeout of most proxy pools in front, which must close first to avoid a request racing the close.",
    gunicorn: "keepalive",
  }),
  requestTimeout: setting({
    type: duration(),
    default: 0,
    doc: "The deadline of one request: when it passes, the app's `request.signal` aborts (so it can stop its work), the client gets 504, and the worker goes on. 0 means no deadline. Unlike `timeout`, nothing is killed.",
  }),
  maxRequests: setting({
    type: integer({ min: 0 }),
    default: 0,
    doc: "After this many requests a worker is replaced: its successor starts, then it stops gracefully (no request is lost). A simple guard against memory leaks; 0 disables it.",
    gunicorn: "max_requests",
  }),
  maxRequestsJitter: setting({
    type: integer({ min: 0 }),
    default: 0,
    doc: "A random number from 0 to this is added to `maxRequests` for each worker, so that workers started together are not all replaced at once.",
    gunicorn: "max_requests_jitter",
  }),
  maxWorkerMemory: setting({
    type: optional(size()),
    default: undefined,
    doc: 'A worker whose resident memory (RSS) grows past this ("512m") stops accepting, finishes its requests and is replaced; it is never killed mid-request. Checked every second. None by default.',
  }),
  limitRequestLine: setting({
    type: integer({ min: 0, max: 65536 }),
    default: 4094,
    doc: "The longest request line (method, target and version) accepted, in bytes; a longer one gets 414 URI Too Long. 0 means no limit of its own (the whole head stays bounded, see `limitRequestFieldSize`).",
    gunicorn: "limit_request_line",
  }),
  limitRequestFields: setting({
    type: integer({ min: 0, max: 32768 }),
    default: 100,
    doc: "The most header fields a request may have; more get 431 Request Header Fields Too Large. 0 means no limit of its own.",
    gunicorn: "limit_request_fields",
  }),
  limitRequestFieldSize: setting({
    type: integer({ min: 0, max: 65536 }),
    default: 8190,
    doc: "The largest header field (`name: value`) accepted, in bytes; a larger one gets 431. 0 means no limit of its own. The whole request head is bounded by line + fields × field size (at least 16 KiB), beyond which a request also gets 431.",
    gunicorn: "limit_request_field_size",
  }),
  limitRequestBody: setting({
    type: size(),
    default: 0,
    doc: 'The largest request body accepted ("10m"); a larger one gets 413 Content Too Large before the app sees it when its Content-Length says so, or as soon as a streamed body passes the limit. 0 means no limit: the web tier in front usually sets one.',
  }),
  forwardedAllowIps: setting({
    type: list(trustedPeer()),
    default: ["127.0.0.1", "::1", "unix"],
    doc: 'The peers whose `Forwarded` / `X-Forwarded-For` / `X-Forwarded-Proto` headers are believed, for `ctx.remoteAddress` and `ctx.scheme`: IPs, CIDRs ("10.0.0.0/8"), `unix` (unix socket peers) or `*` (everyone: only when nothing else can reach the app server).',
    gunicorn: "forwarded_allow_ips",
  }),
  preload: setting({
    type: boolean(),
    default: false,
    doc: "Load the app in the master before starting workers, so that an app that cannot load stops everything at once (exit 4) with its error, before anything listens. Workers still load their own copy: Node processes are spawned, not forked, so nothing is shared copy-on-write as with gunicorn, and preload saves no memory.",
    gunicorn: "preload_app",
  }),
  reload: setting({
    type: boolean(),
    default: false,
    doc: "Development: replace the workers (as on HUP) whenever a source file under the app's folder changes (.ts, .mts, .cts, .js, .mjs, .cjs, .json; node_modules and dot-folders ignored), or the config file, or a `reloadExtraFiles` file.",
    gunicorn: "reload",
  }),
  reloadExtraFiles: setting({
    type: list(string({ metavar: "FILE" })),
    default: [],
    flag: "reload-extra-file",
    doc: "More files or folders to watch with `reload`.",
    gunicorn: "reload_extra_files",
  }),
  chdir: setting({
    type: optional(string({ metavar: "DIR" })),
    default: undefined,
    doc: "Change to this directory before loading the app (the app spec and relative paths are then taken from it). Under `brigade up` the app workers move there and the stack master stays where it started (the web tier's paths are unaffected).",
    gunicorn: "chdir",
  }),
  env: setting({
    type: list(envAssignment()),
    default: [],
    short: "e",
    doc: 'Environment variables to set for the app, each "NAME=value" (repeat the flag).',
    gunicorn: "raw_env",
  }),
  user: setting({
    type: optional(account()),
    default: undefined,
    short: "u",
    doc: "Run the workers as this user (a name or uid), with its supplementary groups; the master keeps its own (it binds the sockets, so root can bind a low port and the app still runs unprivileged). Process mode only.",
    gunicorn: "user",
  }),
  group: setting({
    type: optional(account()),
    default: undefined,
    short: "g",
    doc: "Run the workers as this group (a name or gid); by default the user's primary group when `user` is set.",
    gunicorn: "group",
  }),
  umask: setting({
    type: optional(mode()),
    default: undefined,
    short: "m",
    doc: 'The umask of the master and workers ("022"): the mode of unix socket files, the pidfile and anything the app writes. By default the inherited one is kept. Under `brigade up` it is the app workers\' only.',
    gunicorn: "umask",
  }),
  accessLog: setting({
    type: optional(string({ metavar: "FILE" })),
    default: undefined,
    doc: 'Where the access log goes: a file (appended to, reopened on USR1), or "-" for standard output. None by default.',
    gunicorn: "accesslog (--access-logfile)",
  }),
  accessLogFormat: setting({
    type: string(),
    default: '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    doc: 'The access log line, with gunicorn\'s atoms: `h` client address, `l` "-", `u` user (basic auth), `t` time, `r` request line, `m` method, `U` path, `q` query, `H` protocol, `s` status, `B`/`b` response bytes (`b`: "-" for none), `f` referer, `a` user agent, `T`/`M`/`D`/`L` duration in s/ms/µs/decimal s, `p` pid, `{name}i` a request header, `{name}o` a response header, `{NAME}e` an environment variable; written `%(h)s` or `%({x-real-ip}i)s`. Or `json`: one JSON object per line with every atom.',
    gunicorn: "access_log_format",
  }),
  metricsBind: setting({
    type: optional(listen()),
    default: undefined,
    doc: "Serve Prometheus metrics aggregated over all workers (requests, status classes, a latency histogram, requests in flight, event-loop lag, memory per worker) at `/metrics` on this address, from the master. None by default.",
  }),
  stackOnTimeout: setting({
    type: boolean(),
    default: true,
    doc: "When a worker is killed for a `timeout` (its event loop was blocked), first read and log the JavaScript stack it is blocked in and the requests it was serving (method, path, age), through the inspector opened on loopback for that moment only. Process mode.",
  }),
  onStarting: setting({
    type: optional(hook<ServerHook>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc("before the master binds its sockets.", "master", "`(server)`"),
    gunicorn: "on_starting",
  }),
  onReload: setting({
    type: optional(hook<ServerHook>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc(
      "on a reload (HUP or `reload`), once the new config is read, before new workers start.",
      "master",
      "`(server)`",
    ),
    gunicorn: "on_reload",
  }),
  whenReady: setting({
    type: optional(hook<ServerHook>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc(
      "once the sockets are bound and the first full set of workers is ready.",
      "master",
      "`(server)`",
    ),
    gunicorn: "when_ready",
  }),
  postFork: setting({
    type: optional(hook<(server: HookServer, worker: HookWorker) => void | Promise<void>>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc(
      "in a new worker before it loads the app (and before it switches to `user`/`group`).",
      "worker",
      "`(server, worker)`",
    ),
    gunicorn: "post_fork",
  }),
  postWorkerInit: setting({
    type: optional(hook<WorkerHook>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc(
      "in a worker once the app is loaded, before it accepts requests.",
      "worker",
      "`(worker)`",
    ),
    gunicorn: "post_worker_init",
  }),
  preRequest: setting({
    type: optional(hook<(worker: HookWorker, req: IncomingMessage) => void>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc(
      "before each request is handed to the app (synchronous: its result is not awaited).",
      "worker",
      "`(worker, req)`, the Node request",
    ),
    gunicorn: "pre_request",
  }),
  postRequest: setting({
    type: optional(
      hook<
        (
          worker: HookWorker,
          req: IncomingMessage,
          res: ServerResponse,
          info: HookRequestInfo,
        ) => void
      >(),
    ),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc(
      "after each response is finished (synchronous).",
      "worker",
      "`(worker, req, res, { status, durationMs })`",
    ),
    gunicorn: "post_request",
  }),
  workerInt: setting({
    type: optional(hook<WorkerHook>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc("when a worker gets a fast stop (INT or QUIT).", "worker", "`(worker)`"),
    gunicorn: "worker_int",
  }),
  workerAbort: setting({
    type: optional(hook<(worker: HookWorker) => unknown>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc(
      "when a worker is being killed for a timeout. Its event loop is blocked, so the hook is run on the blocked thread through the debugger (with `stackOnTimeout`): it must be synchronous, and what it returns (an object) is logged with the stack.",
      "worker",
      "`(worker)`",
    ),
    gunicorn: "worker_abort",
  }),
  workerExit: setting({
    type: optional(hook<(server: HookServer, worker: HookWorker) => void | Promise<void>>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc(
      "in a worker that is stopping, after its last request, just before it exits.",
      "worker",
      "`(server, worker)`",
    ),
    gunicorn: "worker_exit",
  }),
  childExit: setting({
    type: optional(hook<(server: HookServer, worker: HookExitedWorker) => void>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc(
      "after a worker has ended, however it ended (synchronous).",
      "master",
      "`(server, worker)`",
    ),
    gunicorn: "child_exit",
  }),
  onExit: setting({
    type: optional(hook<ServerHook>()),
    default: undefined,
    flag: false,
    env: false,
    doc: hookDoc("just before the master exits.", "master", "`(server)`"),
    gunicorn: "on_exit",
  }),
};

/** The hooks that run in workers; the worker re-imports the config file to get them. */
export const workerHookNames = [
  "postFork",
  "postWorkerInit",
  "preRequest",
  "postRequest",
  "workerInt",
  "workerAbort",
  "workerExit",
] as const;
