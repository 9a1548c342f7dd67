/**
 * Test helpers for the HTTP/1.1 engine: start an engine on an ephemeral loopback port (stopped
 * when the test ends), and talk to it with raw bytes, reading what it writes back with our own
 * strict response parser (so every test also checks that the engine's output is well-framed).
 */
import { connect, type Socket } from "node:net";
import type { TestContext } from "node:test";
import type { Logger } from "../../../../src/core/logger.ts";
import { WebEngine } from "../../../../src/webserver/engine/listener.ts";
import type { EngineRequest } from "../../../../src/webserver/engine/request.ts";
import type { EngineOptions } from "../../../../src/webserver/engine/types.ts";
import { Fields, HttpError, type WebResponse } from "../../../../src/webserver/exchange.ts";
import type { Completion } from "../../../../src/webserver/module.ts";
import { defaultPage } from "../../../../src/webserver/statusPages.ts";
import { collect, type Message } from "../../../core/http1/collect.ts";

export interface Running {
  engine: WebEngine;
  port: number;
  /** Log lines at info and above: `level: message error`. */
  reports: string[];
  /** Requests refused before they were one: `status reason`. */
  rejected: string[];
}

/** A logger that keeps what it is told. */
function memoryLogger(lines: string[]): Logger {
  const log =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      const e = fields?.error;
      lines.push(`${level}: ${msg}${e === undefined ? "" : ` ${(e as Error)?.message ?? e}`}`);
    };
  const logger: Logger = {
    level: "debug",
    debug: () => {},
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
    fatal: log("fatal"),
    child: () => logger,
    reopen: () => {},
    enabled: () => true,
  };
  return logger;
}

export interface EngineTestOptions {
  /** Answers a request; a thrown HttpError is answered as the pipeline would (its page, close). */
  handler(req: EngineRequest): WebResponse | Promise<WebResponse>;
  /** Every Completion, as the log phase gets it. */
  complete?(req: EngineRequest, res: WebResponse, done: Completion): void;
  options?: Partial<EngineOptions>;
  /**
   * Serve requests the core marks invalid after parsing (`*` and CONNECT targets, which the
   * pipeline refuses with 400 as nginx does), to test the engine's side of them.
   */
  acceptInvalid?: boolean;
}

/** Timeouts long enough for any test unless one sets its own. */
const defaults: Omit<EngineOptions, "logger"> = {
  engine: "brigade",
  headerTimeout: 60_000,
  bodyTimeout: 60_000,
  bodyMinRate: 0,
  bodyMinRateGrace: 0,
  keepaliveTimeout: 75_000,
  keepaliveRequests: 1000,
  sendTimeout: 60_000,
  maxRequestLine: 8192,
  maxHeaderSize: 32768,
  maxHeaders: 100,
  serverHeader: "brigade",
  mergeSlashes: true,
};

/**
 * Brigade's engine behind the listener the worker uses (engine/listener.ts), with a plain handler
 * instead of the pipeline, on 127.0.0.1 port 0; stopped when the test ends.
 */
export async function startEngine(
  t: Pick<TestContext, "after">,
  o: EngineTestOptions,
): Promise<Running> {
  const reports: string[] = [];
  const rejected: string[] = [];
  const opts: EngineOptions = { ...defaults, ...o.options, logger: memoryLogger(reports) };
  const engine = new WebEngine(
    {
      async handle(req) {
        let res: WebResponse;
        let close = false;
        try {
          if (req.invalid && !o.acceptInvalid) throw req.invalid;
          res = await o.handler(req);
        } catch (err) {
          const e = err instanceof HttpError ? err : new HttpError(500);
          if (!(err instanceof HttpError)) reports.push(`handler: ${(err as Error).message}`);
          close = e.close;
          const fields = e.fields ? e.fields.clone() : new Fields();
          fields.set("content-type", "text/html");
          const page = defaultPage(e.status, "");
          res = { status: e.status, fields, body: { kind: "bytes", data: page } };
        }
        return { response: res, close, complete: (done) => o.complete?.(req, res, done) };
      },
      rejected: (_conn, status, reason) => rejected.push(`${status} ${reason}`),
    },
    opts,
  );
  const addr = await engine.listen({ key: "test", tls: undefined }, { host: "127.0.0.1", port: 0 });
  t.after(() => engine.stop(false));
  return { engine, port: (addr as { port: number }).port, reports, rejected };
}

export interface Exchange {
  /** Responses as our parser read them. */
  responses: Message[];
  /** A framing error in what the server wrote, if any. */
  error: string | undefined;
  /** Everything the server wrote. */
  raw: Buffer;
  /** The server closed the connection (we saw its end) before the bound. */
  closed: boolean;
}

/**
 * Send `data` (pieces written one after another) and read until the server closes, or until
 * `responses` final responses arrived (then the connection is left open and destroyed), bounded
 * by `limitMs` (a safety bound, not a timing assertion).
 */
export function exchange(
  port: number,
  data: string | Buffer | (string | Buffer)[],
  options: {
    responses?: number;
    methods?: string[];
    limitMs?: number;
    end?: boolean;
    socket?: (s: Socket) => void;
  } = {},
): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    options.socket?.(socket);
    const chunks: Buffer[] = [];
    let closed = false;
    let done = false;
    const methods = options.methods ?? [];
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(limit);
      const raw = Buffer.concat(chunks);
      const o = collect(raw, { kind: "response", methods, eof: closed });
      socket.destroy();
      resolve({
        responses: o.messages.filter((m) => m.status >= 200),
        error: o.error ? `${o.error.code}: ${o.error.message}` : undefined,
        raw,
        closed,
      });
    };
    const limit = setTimeout(finish, options.limitMs ?? 5000);
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      if (options.responses !== undefined) {
        const o = collect(Buffer.concat(chunks), { kind: "response", methods });
        if (o.messages.filter((m) => m.status >= 200).length >= options.responses) finish();
      }
    });
    socket.on("end", () => {
      closed = true;
      finish();
    });
    socket.on("error", () => {
      closed = true;
      finish();
    });
    socket.on("connect", () => {
      const pieces = Array.isArray(data) ? data : [data];
      for (const p of pieces) socket.write(typeof p === "string" ? Buffer.from(p, "latin1") : p);
      if (options.end) socket.end();
    });
  });
}

/** A header's value in a parsed response. */
export function header(m: Message | undefined, name: string): string | undefined {
  return m?.headers.find(([n]) => n === name)?.[1];
}
