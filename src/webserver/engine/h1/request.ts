/**
 * The engine's {@link WebRequest} and {@link RequestBody}: built straight from a parsed head, with
 * everything a plain request does not need (the abort signal, the request id, `vars`) made on
 * first use.
 */
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import type { Head } from "../../../core/http1/parser.ts";
import { Fields, type RequestBody, type WebConnection, type WebRequest } from "../../exchange.ts";
import { pathAndQuery } from "./target.ts";

/** Where a body's bytes come from: the connection. `sink.chunk` returning false pauses delivery. */
export interface BodySource {
  readBody(sink: BodySink): void;
  resumeBody(): void;
}

export interface BodySink {
  chunk(data: Buffer): boolean;
  end(): void;
  error(err: Error): void;
}

const consumedError = () => new Error("the request body was already read");

export class H1Body implements RequestBody {
  readonly length: number | undefined;
  readonly empty: boolean;
  consumed = false;
  private readonly source: BodySource;

  constructor(source: BodySource, head: Head) {
    this.source = source;
    this.length =
      head.framing === "length" ? head.contentLength : head.framing === "none" ? 0 : undefined;
    this.empty = head.framing === "none";
  }

  stream(): Readable {
    if (this.consumed) throw consumedError();
    this.consumed = true;
    if (this.empty) return Readable.from([]);
    const source = this.source;
    const readable = new Readable({
      read() {
        source.resumeBody();
      },
    });
    source.readBody({
      chunk: (data) => readable.push(data),
      end: () => readable.push(null),
      error: (err) => readable.destroy(err),
    });
    return readable;
  }

  buffer(): Promise<Buffer> {
    if (this.consumed) return Promise.reject(consumedError());
    this.consumed = true;
    if (this.empty) return Promise.resolve(Buffer.alloc(0));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      this.source.readBody({
        chunk: (data) => {
          chunks.push(data);
          return true;
        },
        end: () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)),
        error: reject,
      });
    });
  }

  discard(): Promise<void> {
    if (this.consumed) return Promise.resolve();
    this.consumed = true;
    if (this.empty) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.source.readBody({ chunk: () => true, end: resolve, error: reject });
    });
  }
}

export class H1Request implements WebRequest {
  readonly method: string;
  readonly target: string;
  readonly httpVersion: "1.0" | "1.1";
  readonly fields: Fields;
  readonly host: string;
  readonly scheme: "http" | "https";
  readonly connection: WebConnection;
  path: string;
  query: string;
  readonly body: H1Body;
  readonly startTime: number;
  readonly canTakeover: boolean;
  /** The parsed head (framing, keep-alive, expectations), for the engine. */
  readonly head: Head;
  private controller: AbortController | undefined = undefined;
  private _id: string | undefined = undefined;
  private _vars: Map<string, string> | undefined = undefined;

  constructor(
    head: Head,
    connection: WebConnection,
    scheme: "http" | "https",
    source: BodySource,
    mergeSlashes: boolean,
  ) {
    this.head = head;
    this.method = head.method;
    this.target = head.target;
    this.httpVersion = head.versionMinor === 1 ? "1.1" : "1.0";
    this.fields = new Fields(head.fields);
    this.host = head.host;
    this.scheme = scheme;
    this.connection = connection;
    const pq = pathAndQuery(head.target, head.form, mergeSlashes);
    this.path = pq.path;
    this.query = pq.query;
    this.body = new H1Body(source, head);
    this.startTime = Date.now();
    this.canTakeover = head.upgrade !== "" || head.method === "CONNECT";
  }

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  get id(): string {
    this._id ??= randomUUID().replaceAll("-", "");
    return this._id;
  }

  get vars(): Map<string, string> {
    this._vars ??= new Map();
    return this._vars;
  }

  /** The client went away (or the worker stops fast): abort whoever listens. */
  abort(reason: string): void {
    // Only a signal someone asked for needs aborting.
    this.controller?.abort(new Error(reason));
  }
}
