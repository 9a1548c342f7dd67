/**
 * Test helpers for the HTTP/1.1 engine: start an engine on an ephemeral loopback port (stopped
 * when the test ends), and talk to it with raw bytes, reading what it writes back with our own
 * strict response parser (so every test also checks that the engine's output is well-framed).
 */
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import type { TestContext } from "node:test";
import { H1Engine, type H1Options } from "../../../../src/webserver/engine/h1/engine.ts";
import { collect, type Message } from "../../../core/http1/collect.ts";

export interface Running {
  engine: H1Engine;
  server: Server;
  port: number;
  /** Problems the engine reported (kind: message). */
  reports: string[];
}

export async function startEngine(
  t: Pick<TestContext, "after">,
  options: Partial<H1Options> & Pick<H1Options, "handler">,
): Promise<Running> {
  const reports: string[] = [];
  const engine = new H1Engine({
    report: (kind, err) => reports.push(`${kind}: ${(err as Error)?.message ?? err}`),
    ...options,
  });
  const server = createServer(engine.serverOptions, (s) => engine.handle(s, "test"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(async () => {
    engine.destroyAll();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { engine, server, port: (server.address() as AddressInfo).port, reports };
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
