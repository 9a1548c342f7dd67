/**
 * Calling a module's handlers directly, on real files, without an engine: a scope for `setup`,
 * requests built as the engine would build them, and response bodies read back whatever their
 * kind. Integration tests (static.integration.test.ts) do the same through real servers.
 */
import { closeSync, mkdirSync, mkdtempSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import type { TestContext } from "node:test";
import { createLogger } from "../../../src/core/logger.ts";
import {
  Fields,
  type RequestBody,
  type WebRequest,
  type WebResponse,
} from "../../../src/webserver/exchange.ts";
import type {
  LocationScope,
  ModuleHandlers,
  Reroute,
  WebModule,
} from "../../../src/webserver/module.ts";
import { compileTemplate } from "../../../src/webserver/variables.ts";

/** A temp directory with `files` in it, removed after the test. */
export function tree(
  t: Pick<TestContext, "after">,
  files: Record<string, string | Buffer>,
): string {
  const dir = mkdtempSync(join(tmpdir(), "brigade-static-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [rel, content] of Object.entries(files)) {
    const path = join(dir, rel);
    if (rel.endsWith("/")) {
      mkdirSync(path, { recursive: true });
      continue;
    }
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
  return dir;
}

/** Run `module.setup` for a location; the returned close runs the scope's onClose hooks. */
export async function setUp<S>(
  t: Pick<TestContext, "after">,
  module: WebModule<S>,
  settings: Partial<S>,
  match = "",
  base = process.cwd(),
  shared: Map<string, unknown> = new Map(),
): Promise<ModuleHandlers | undefined> {
  const closers: (() => void | Promise<void>)[] = [];
  const scope: LocationScope<S> = {
    settings: settings as S,
    own: settings,
    location: { path: "web.servers[0]", match },
    serverNames: ["localhost"],
    logger: createLogger({ level: "fatal" }),
    resolvePath: (p) => resolve(base, p),
    template: (text, options) => compileTemplate(text, { vars: new Set() }, options?.escape),
    services: new Map(),
    onClose: (fn) => closers.push(fn),
    onReopen: () => {},
    serving: true,
    shared,
  };
  const handlers = await module.setup(scope);
  t.after(async () => {
    for (const c of closers) await c();
  });
  return handlers;
}

const emptyBody: RequestBody = {
  length: undefined,
  empty: true,
  consumed: false,
  stream: () => {
    throw new Error("no body");
  },
  buffer: async () => Buffer.alloc(0),
  discard: async () => {},
};

/** A request as the engine hands it to modules. */
export function request(
  method: string,
  target: string,
  headers: Record<string, string> = {},
  vars: Record<string, string> = {},
): WebRequest {
  const q = target.indexOf("?");
  const rawPath = q < 0 ? target : target.slice(0, q);
  return {
    method,
    target,
    httpVersion: "1.1",
    fields: Fields.from({ host: "localhost", ...headers }),
    host: "localhost",
    scheme: "http",
    connection: {
      id: 1,
      remoteAddress: "127.0.0.1",
      remotePort: 50000,
      localAddress: "127.0.0.1",
      localPort: 8080,
      listener: "127.0.0.1:8080",
      tls: undefined,
      requests: 0,
    },
    path: decodeURIComponent(rawPath),
    query: q < 0 ? "" : target.slice(q + 1),
    body: emptyBody,
    signal: new AbortController().signal,
    clientGone: new AbortController().signal,
    aborted: false,
    startTime: Date.now(),
    id: "0".repeat(32),
    vars: new Map(Object.entries(vars)),
    canTakeover: false,
  };
}

export function isReroute(r: WebResponse | Reroute): r is Reroute {
  return "reroute" in r;
}

/** The body of a response as bytes; a file body's descriptor is closed, as the engine would. */
export async function bodyOf(res: WebResponse): Promise<Buffer> {
  const b = res.body;
  switch (b.kind) {
    case "empty":
      return Buffer.alloc(0);
    case "bytes":
      return Buffer.from(b.data);
    case "file": {
      const out = Buffer.alloc(b.end - b.start);
      let off = 0;
      while (off < out.length) {
        const n = readSync(b.fd, out, off, out.length - off, b.start + off);
        if (n === 0) break;
        off += n;
      }
      if (!b.keepOpen) closeSync(b.fd);
      return out.subarray(0, off);
    }
    case "stream": {
      const chunks: Buffer[] = [];
      for await (const c of b.stream as Readable) chunks.push(Buffer.from(c));
      return Buffer.concat(chunks);
    }
    default:
      throw new Error(`unexpected body kind ${b.kind}`);
  }
}

/** Release a response's resources without reading it (what the engine does for HEAD or on abort). */
export function discard(res: WebResponse): void {
  const b = res.body;
  if (b.kind === "file" && !b.keepOpen) closeSync(b.fd);
  if (b.kind === "stream") b.stream.destroy();
}
