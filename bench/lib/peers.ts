/**
 * Launchers for real servers as non-daemon children on free loopback ports: nginx, gunicorn, and
 * any command (Node peers, later `brigade`). The one implementation of these: the test helpers
 * in test/helpers/peers.ts wrap it with `t.after` cleanup, the bench suites use it directly.
 *
 * Contract for every launcher: it resolves only once the child's own process tree listens on the
 * port and accepts connections, and rejects (after cleaning up the child and its temp dir) if
 * the child exits first or does not listen within `timeoutMs`. `stop()` is idempotent.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { freePort, OutputTail, stopChild, waitForListen } from "./process.ts";
import { toolPath } from "./tools.ts";

/** A server we started and must stop. */
export interface RunningServer {
  /** Loopback port it listens on. */
  port: number;
  /** PID of the root process (master); its whole tree belongs to the server. */
  pid: number;
  /** `[pid]`, the shape bench suites report memory over. */
  pids: number[];
  /** `http://127.0.0.1:<port>/`. */
  url: string;
  /** The server's temp directory (config, logs, files), removed by stop(). */
  dir: string;
  /** Everything the child printed so far, for diagnostics. */
  output(): string;
  /** Stop it (signal, then SIGKILL to the tree after a grace period) and remove `dir`. */
  stop(): Promise<void>;
}

export interface CommandOptions {
  /** Used in error messages. */
  name?: string;
  /** Executable (use `process.execPath` for Node). */
  command: string;
  /** Arguments; every `{port}` and `{dir}` is replaced by the chosen port and the temp dir. */
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Files to write into the temp dir before starting (relative path -> content). */
  files?: Record<string, string | Buffer>;
  /** Signal for a graceful stop. Default SIGTERM. */
  stopSignal?: NodeJS.Signals;
  /** How long to wait for the port, per attempt. Default 15 s. */
  timeoutMs?: number;
  /** Fixed port instead of a free one (no retry then). */
  port?: number;
  /** Runs before each spawn attempt, once the port is chosen (e.g. to write a config file). */
  beforeSpawn?(port: number, dir: string): void;
}

function writeFiles(dir: string, files: Record<string, string | Buffer> | undefined): void {
  for (const [rel, content] of Object.entries(files ?? {})) {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
}

/**
 * Start any server command on a free port and wait until it listens. A port taken by someone
 * else between choosing and binding makes the child fail with "address already in use"; that
 * is retried on a new port (3 attempts) unless `port` was given.
 */
export async function startCommand(options: CommandOptions): Promise<RunningServer> {
  const dir = mkdtempSync(join(tmpdir(), "brigade-peer-"));
  const name = options.name ?? options.command;
  try {
    writeFiles(dir, options.files);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const attempts = options.port === undefined ? 3 : 1;
  let lastError: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = options.port ?? (await freePort());
    const fill = (s: string) => s.replaceAll("{port}", String(port)).replaceAll("{dir}", dir);
    try {
      options.beforeSpawn?.(port, dir);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const child: ChildProcess = spawn(options.command, options.args.map(fill), {
      cwd: options.cwd ?? dir,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
    const tail = new OutputTail(child);
    try {
      await Promise.race([
        waitForListen(child, port, { output: tail, what: name, timeoutMs: options.timeoutMs }),
        spawnError.then((e) => Promise.reject(e)),
      ]);
    } catch (err) {
      lastError = err;
      await stopChild(child, { signal: "SIGKILL", graceMs: 2000 });
      // Only losing the port race is worth another try; a bad config fails the same way again.
      if (/address already in use|EADDRINUSE|connection in use/i.test(String(err))) continue;
      break;
    }
    // A child that fails later must not crash us on an unhandled 'error'.
    child.on("error", () => {});
    let stopping: Promise<void> | undefined;
    return {
      port,
      pid: child.pid!,
      pids: [child.pid!],
      url: `http://127.0.0.1:${port}/`,
      dir,
      output: () => tail.toString(),
      stop() {
        stopping ??= stopChild(child, { signal: options.stopSignal ?? "SIGTERM" }).finally(() =>
          rmSync(dir, { recursive: true, force: true }),
        );
        return stopping;
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

/**
 * nginx `proxy_set_header` lines sending an upstream the request fields Brigade's proxy sends by
 * default (`proxyForwardedHeaders`: X-Forwarded-For/-Proto/-Host/-Port, X-Real-IP; Host as the
 * client sent it), so that both fronts give the app the same head to parse.
 */
export const nginxForwardingHeaders =
  "proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $host; proxy_set_header X-Forwarded-Port $server_port; proxy_set_header X-Real-IP $remote_addr;";

export interface NginxOptions {
  /** Directives inside `server { listen 127.0.0.1:<port>; ... }`. Ignored when `conf` is given. */
  serverBlock?: string;
  /** Extra directives at `http {}` level (upstreams, caches, more servers). */
  http?: string;
  /**
   * A whole nginx.conf instead of the generated one; `{port}` and `{dir}` are substituted.
   * It must not say `daemon` (we pass `daemon off;`) and should keep pid/logs under `{dir}`.
   */
  conf?: string;
  /** worker_processes. Default 1. */
  workers?: number;
  /** Files to put under `<dir>/` before start, e.g. `{ "html/index.html": "hi" }`. */
  files?: Record<string, string | Buffer>;
  /** Log requests to `<dir>/access.log` (off by default, as benches want). */
  accessLog?: boolean;
  timeoutMs?: number;
}

/** The generated nginx.conf: everything nginx writes stays inside `dir`. */
export function nginxConf(options: NginxOptions, dir = "{dir}", port = "{port}"): string {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  return `# generated by bench/lib/peers.ts
${isRoot ? "user root;\n" : ""}worker_processes ${options.workers ?? 1};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
  ${options.accessLog ? `access_log ${dir}/access.log;` : "access_log off;"}
  client_body_temp_path ${dir}/tmp/client_body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  types { text/html html; text/plain txt; application/json json; text/css css; application/javascript js; }
  default_type text/plain;
  keepalive_requests 100000;
${options.http ?? ""}
  server {
    listen 127.0.0.1:${port};
    root ${dir}/html;
${options.serverBlock ?? ""}
  }
}
`;
}

/**
 * Real nginx in the foreground (`nginx -p <dir> -c <dir>/nginx.conf -e <dir>/error.log
 * -g 'daemon off;'`) on a free loopback port. Run as root it runs its workers as root
 * (`user root;`) rather than switching to www-data, who may not read a temp dir. The system
 * nginx (the Debian service on port 80) is neither needed nor touched.
 */
export async function startNginx(options: NginxOptions = {}): Promise<RunningServer> {
  const template = options.conf ?? nginxConf(options);
  return startCommand({
    name: "nginx",
    command: toolPath("nginx"),
    args: ["-p", "{dir}", "-c", "{dir}/nginx.conf", "-e", "{dir}/error.log", "-g", "daemon off;"],
    files: { "html/.keep": "", "tmp/.keep": "", ...options.files },
    beforeSpawn(port, dir) {
      const conf = template.replaceAll("{port}", String(port)).replaceAll("{dir}", dir);
      writeFileSync(join(dir, "nginx.conf"), conf);
    },
    // QUIT is nginx's graceful stop; TERM would cut in-flight requests.
    stopSignal: "SIGQUIT",
    timeoutMs: options.timeoutMs,
  });
}

export interface GunicornOptions {
  /** Python source of the WSGI module (written to `<dir>/app.py`). */
  app: string;
  /** The WSGI callable in that module. Default `application`. */
  callable?: string;
  /** Extra gunicorn arguments, e.g. `["-w", "2", "-k", "sync"]`. */
  args?: string[];
  timeoutMs?: number;
}

/**
 * Real gunicorn (`gunicorn --chdir <dir> -b 127.0.0.1:<port> app:application ...args`) on a
 * free loopback port, its error log on stderr, no access log.
 */
export async function startGunicorn(options: GunicornOptions): Promise<RunningServer> {
  return startCommand({
    name: "gunicorn",
    command: toolPath("gunicorn"),
    args: [
      "--chdir",
      "{dir}",
      "--bind",
      "127.0.0.1:{port}",
      "--worker-tmp-dir",
      "{dir}",
      "--graceful-timeout",
      "5",
      ...(options.args ?? []),
      `app:${options.callable ?? "application"}`,
    ],
    files: { "app.py": options.app },
    env: { ...process.env, PYTHONUNBUFFERED: "1", PYTHONDONTWRITEBYTECODE: "1" },
    timeoutMs: options.timeoutMs,
  });
}

export interface SquidOptions {
  /** `workers` (SMP kids). Default 1. */
  workers?: number;
  /** Extra squid.conf directives, after the generated ones (`{port}` and `{dir}` substituted). */
  extra?: string;
  timeoutMs?: number;
}

/**
 * The generated squid.conf: a forward proxy on 127.0.0.1:<port> for loopback clients, every
 * file it writes inside `dir`, no cache (`cache deny all`), no access log, CONNECT to any port,
 * `Via` on and `X-Forwarded-For` not added (as brigade's defaults), no ICMP pinger.
 */
export function squidConf(options: SquidOptions, dir = "{dir}", port = "{port}"): string {
  return `# generated by bench/lib/peers.ts
http_port 127.0.0.1:${port}
workers ${options.workers ?? 1}
pid_filename ${dir}/squid.pid
cache_log ${dir}/cache.log
access_log none
cache_store_log none
cache deny all
cache_mem 0 MB
coredump_dir ${dir}
netdb_filename none
pinger_enable off
logfile_rotate 0
shutdown_lifetime 1 seconds
max_filedescriptors 8192
forwarded_for transparent
via on
http_access allow localhost
http_access deny all
${options.extra ?? ""}
`;
}

/**
 * Real Squid (Debian's `squid`) in the foreground (`squid --foreground -f <dir>/squid.conf`, a
 * master and its `workers` kids) on a free loopback port. Run as root, Squid's kids switch to the
 * `proxy` user, so its temp dir is made writable for them. The system Squid service is neither
 * needed nor touched.
 */
export async function startSquid(options: SquidOptions = {}): Promise<RunningServer> {
  return startCommand({
    name: "squid",
    command: toolPath("squid"),
    args: ["--foreground", "-f", "{dir}/squid.conf"],
    beforeSpawn(port, dir) {
      chmodSync(dir, 0o777);
      const conf = squidConf(options, dir, String(port));
      writeFileSync(
        join(dir, "squid.conf"),
        conf.replaceAll("{port}", String(port)).replaceAll("{dir}", dir),
      );
    },
    timeoutMs: options.timeoutMs,
  });
}
