/**
 * Listening sockets, bound by the master and shared with its workers.
 *
 * The master binds every socket itself and keeps its file descriptor for its whole life, so a
 * worker restart or a reload never closes a listening socket; workers inherit the descriptors and
 * call `server.listen({ fd })`, and the kernel hands each new connection to whichever worker
 * accepts first (see docs/process.md for the measurement behind that choice over SO_REUSEPORT).
 *
 * The master must not accept connections itself, yet Node has no public way to hold a listening
 * socket without polling it (libuv starts watching a socket as soon as it listens). So the master
 * only *binds* (through `net._createServerHandle`, the internal helper node:cluster uses for its
 * shared handles), then a throwaway child process inherits the descriptors, calls `listen()` on
 * each and exits. The socket stays listening as long as the master holds its descriptor, even
 * with no worker alive: connections wait in the backlog instead of being refused, and the port
 * cannot be taken by another process (libuv binds with SO_REUSEADDR, which on Linux lets a second
 * socket bind a port whose first socket is bound but not listening).
 */

import { spawn } from "node:child_process";
import { lookup } from "node:dns/promises";
import { chmodSync, closeSync, lstatSync, unlinkSync } from "node:fs";
import net from "node:net";
import { getSystemErrorName } from "node:util";
import { listenExpected, parseListen as parseListenAddress } from "../config/types.ts";

/** Where to listen: a TCP address (v4 or v6) or a unix socket path. */
export type ListenSpec =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "unix"; path: string; mode?: number };

/**
 * Parse a listen address (the syntax is the config schema's, `parseListen` in config/types.ts):
 * `host:port`, `:port` or `port` (all IPv4 interfaces), `[v6addr]:port`, or `unix:/path`.
 * Throws a plain Error naming the bad text.
 */
export function parseListen(text: string): ListenSpec {
  const address = parseListenAddress(text.trim());
  if (address === undefined) {
    throw new Error(`listen address "${text}": expected ${listenExpected}`);
  }
  if (address.kind === "unix") return address;
  return { kind: "tcp", host: address.host ?? "0.0.0.0", port: address.port };
}

/** The canonical text of a spec; also the key used to match inherited sockets after USR2. */
export function formatListen(spec: ListenSpec): string {
  if (spec.kind === "unix") return `unix:${spec.path}`;
  return spec.host.includes(":") ? `[${spec.host}]:${spec.port}` : `${spec.host}:${spec.port}`;
}

/** A socket bound by the master. */
export interface BoundListener {
  readonly spec: ListenSpec;
  /** `formatListen(spec)`: what was asked for (port 0 stays 0 here). */
  readonly key: string;
  /** The descriptor workers inherit. */
  readonly fd: number;
  /** What was actually bound, e.g. `127.0.0.1:39211` or `unix:/run/app.sock`. */
  readonly address: string;
  /** The bound port (TCP), for tests and logs; undefined for unix sockets. */
  readonly port: number | undefined;
  /**
   * The raw libuv handle (a TCP or Pipe wrap) owning `fd`, when there is one: what the master
   * sends over IPC when a worker asks for a fresh copy of the socket (`ctx.acquireListener`).
   */
  readonly handle: object | undefined;
  /** Close the descriptor; `unlink` also removes a unix socket file. */
  close(unlink: boolean): void;
}

interface RawHandle {
  fd: number;
  close(): void;
  getsockname?(out: { address?: string; port?: number }): number;
}
type CreateServerHandle = (
  address: string | null,
  port: number,
  addressType: number,
  fd: number | undefined,
  flags?: number,
) => RawHandle | number;
const createServerHandle = (net as unknown as { _createServerHandle: CreateServerHandle })
  ._createServerHandle;

/** libuv's UV_TCP_REUSEPORT bind flag (uv.h), accepted by Node >= 22.12. */
const UV_TCP_REUSEPORT = 2;

function bindError(spec: ListenSpec, code: number): Error {
  const name = getSystemErrorName(code);
  const err = new Error(`cannot listen on ${formatListen(spec)}: ${name}`) as Error & {
    code: string;
  };
  err.code = name;
  return err;
}

/** Does something accept connections on this unix socket path? */
function unixSocketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export interface BindOptions {
  /**
   * Set SO_REUSEPORT on a TCP socket and leave it bound but not listening: thread workers bind
   * their own sockets beside it, and a listening socket nobody accepts on would get its share of
   * the connections.
   */
  reusePort?: boolean;
}

const PRIME_SCRIPT = `
const net = require("node:net");
const fds = JSON.parse(process.argv[1]);
let left = fds.length;
for (const fd of fds) {
  const s = net.createServer();
  s.once("error", (e) => { process.stderr.write(String(e.code || e.message)); process.exit(1); });
  s.listen({ fd, backlog: 511 }, () => { if (--left === 0) process.exit(0); });
}`;

/**
 * Turn bound sockets into listening ones without accepting on them here: a short-lived child
 * inherits them, listens, and exits (see the module comment). Rejects with the child's error
 * code (EADDRINUSE when another socket took the port between bind and listen).
 */
export function primeListeners(fds: readonly number[]): Promise<void> {
  if (fds.length === 0) return Promise.resolve();
  const childFds = fds.map((_, i) => 3 + i);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", PRIME_SCRIPT, JSON.stringify(childFds)], {
      stdio: ["ignore", "ignore", "pipe", ...fds],
    });
    let err = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (c: string) => {
      err += c;
    });
    child.once("error", reject);
    child.once("close", (code) => {
      if (code === 0) resolve();
      else reject(Object.assign(new Error(err || `exit ${code}`), { code: err }));
    });
  });
}

/**
 * Bind one socket and make it listen without accepting (see the module comment). A unix socket path left by a dead
 * process is removed first; one that still accepts connections is refused with EADDRINUSE, and a
 * path that is not a socket is never removed.
 */
export async function bindListener(
  spec: ListenSpec,
  options: BindOptions = {},
): Promise<BoundListener> {
  if (spec.kind === "unix") {
    let stat: ReturnType<typeof lstatSync> | undefined;
    try {
      stat = lstatSync(spec.path);
    } catch {
      stat = undefined;
    }
    if (stat) {
      if (!stat.isSocket()) throw bindError(spec, -17 /* EEXIST */);
      if (await unixSocketAlive(spec.path)) throw bindError(spec, -98 /* EADDRINUSE */);
      unlinkSync(spec.path);
    }
    const h = createServerHandle(spec.path, -1, -1, undefined, 0);
    if (typeof h === "number") throw bindError(spec, h);
    if (spec.mode !== undefined) chmodSync(spec.path, spec.mode);
    return primed(spec, fromHandle(spec, h));
  }
  let host = spec.host;
  if (!net.isIP(host)) host = (await lookup(host)).address;
  const flags = options.reusePort ? UV_TCP_REUSEPORT : 0;
  const h = createServerHandle(host, spec.port, net.isIPv6(host) ? 6 : 4, undefined, flags);
  if (typeof h === "number") throw bindError(spec, h);
  const l = fromHandle(spec, h);
  return options.reusePort ? l : primed(spec, l);
}

/**
 * Bind one socket now, without making it listen: for a socket of one worker's own (a pool's
 * `workerListen`), which that worker's `listen()` turns into a listening one. Nothing connects
 * before the worker is ready, so no priming child is needed. A unix path that exists and is a
 * socket is replaced (the caller owns the directory); TCP needs an IP literal.
 */
export function bindListenerSync(spec: ListenSpec): BoundListener {
  if (spec.kind === "unix") {
    let stat: ReturnType<typeof lstatSync> | undefined;
    try {
      stat = lstatSync(spec.path);
    } catch {
      stat = undefined;
    }
    if (stat) {
      if (!stat.isSocket()) throw bindError(spec, -17 /* EEXIST */);
      unlinkSync(spec.path);
    }
    const h = createServerHandle(spec.path, -1, -1, undefined, 0);
    if (typeof h === "number") throw bindError(spec, h);
    if (spec.mode !== undefined) chmodSync(spec.path, spec.mode);
    return fromHandle(spec, h);
  }
  if (!net.isIP(spec.host)) throw new Error(`${formatListen(spec)}: an IP address is needed here`);
  const h = createServerHandle(spec.host, spec.port, net.isIPv6(spec.host) ? 6 : 4, undefined, 0);
  if (typeof h === "number") throw bindError(spec, h);
  return fromHandle(spec, h);
}

async function primed(spec: ListenSpec, l: BoundListener): Promise<BoundListener> {
  try {
    await primeListeners([l.fd]);
  } catch (error) {
    l.close(true);
    throw new Error(`cannot listen on ${formatListen(spec)}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return l;
}

function fromHandle(spec: ListenSpec, h: RawHandle): BoundListener {
  let port: number | undefined;
  let address = formatListen(spec);
  if (spec.kind === "tcp" && h.getsockname) {
    const out: { address?: string; port?: number } = {};
    h.getsockname(out);
    port = out.port;
    address = formatListen({ kind: "tcp", host: out.address ?? spec.host, port: port ?? 0 });
  }
  let closed = false;
  return {
    spec,
    key: formatListen(spec),
    fd: h.fd,
    address,
    port,
    handle: h,
    close(unlink) {
      if (closed) return;
      closed = true;
      // libuv unlinks a unix socket's path when the handle that bound it closes: after a USR2
      // handover that file belongs to the new master, so close just the descriptor then.
      if (spec.kind === "unix" && !unlink) closeSync(h.fd);
      else h.close();
      if (unlink && spec.kind === "unix") {
        try {
          unlinkSync(spec.path);
        } catch {
          // already gone
        }
      }
    },
  };
}

/**
 * Adopt a descriptor inherited from a previous master (USR2). The socket is already bound and
 * listening; the master just keeps it open and hands it on.
 */
export function adoptListener(spec: ListenSpec, fd: number): BoundListener {
  // Learn the real port through a throwaway wrapper: opening a net.Server on the fd would start
  // accepting in the master, so only read the address of the raw handle.
  const h = createServerHandle(null, 0, 0, fd, 0);
  if (typeof h !== "number") return fromHandle(spec, h);
  let closed = false;
  return {
    spec,
    key: formatListen(spec),
    fd,
    address: formatListen(spec),
    port: undefined,
    handle: undefined,
    close(unlink) {
      if (closed) return;
      closed = true;
      closeSync(fd);
      if (unlink && spec.kind === "unix") {
        try {
          unlinkSync(spec.path);
        } catch {
          // already gone
        }
      }
    },
  };
}

/** The environment variable naming inherited listening sockets: JSON `[{ fd, key }]`. */
export const LISTEN_FDS_ENV = "BRIGADE_LISTEN_FDS";

/** Read and remove `BRIGADE_LISTEN_FDS`, so our own workers and a later re-exec never see it. */
export function takeInheritedFds(env: NodeJS.ProcessEnv = process.env): Map<string, number> {
  const out = peekInheritedFds(env);
  delete env[LISTEN_FDS_ENV];
  return out;
}

/**
 * Read `BRIGADE_LISTEN_FDS` without removing it: for what a master's owner adopts itself (the
 * stack's admin listener) before the master takes the rest. Empty when this process is no
 * USR2 successor.
 */
export function peekInheritedFds(env: NodeJS.ProcessEnv = process.env): Map<string, number> {
  const out = new Map<string, number>();
  const text = env[LISTEN_FDS_ENV];
  if (!text) return out;
  try {
    for (const item of JSON.parse(text) as { fd: number; key: string }[]) {
      if (Number.isInteger(item.fd) && typeof item.key === "string") out.set(item.key, item.fd);
    }
  } catch {
    // A malformed value is ignored: we bind fresh sockets instead.
  }
  return out;
}
