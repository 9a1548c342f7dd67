/**
 * Brigade's HTTP/1 engine's requests: the core's {@link EngineRequest} (path, host and their
 * validation live there, for every engine) filled in from our parser's {@link Head}, and a
 * {@link RequestBody} that pulls straight from the connection's parser: no stream unless the
 * module asks for one, and the connection stops reading when the module stops consuming.
 */
import { Readable } from "node:stream";
import type { Head } from "../../../core/http1/parser.ts";
import { Fields, type RequestBody, type WebConnection } from "../../exchange.ts";
import { type ConnectionBase, connectionView } from "../connection.ts";
import { EngineRequest } from "../request.ts";

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
      head.framing === "length"
        ? head.contentLength
        : head.framing === "none"
          ? head.contentLength === 0
            ? 0
            : undefined
          : undefined;
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
    if (this.consumed || this.empty) {
      this.consumed = true;
      return Promise.resolve();
    }
    this.consumed = true;
    return new Promise((resolve) => {
      this.source.readBody({ chunk: () => true, end: resolve, error: () => resolve() });
    });
  }
}

/** An upgrade or CONNECT: no body (what follows the head is the tunnel's). */
const takeoverBody: RequestBody = {
  length: undefined,
  empty: true,
  consumed: false,
  stream: () => Readable.from([]),
  buffer: async () => Buffer.alloc(0),
  discard: async () => {},
};

export class H1Request extends EngineRequest {
  readonly canTakeover: boolean;
  readonly listenerKey: string;
  /** The parsed head (framing, keep-alive, expectations), for the connection. */
  readonly head: Head;
  private readonly base: ConnectionBase;
  private readonly position: number;
  private readonly source: BodySource;
  private view: WebConnection | undefined = undefined;
  private bodyCache: RequestBody | undefined = undefined;
  private fieldList: Fields | undefined = undefined;

  constructor(
    head: Head,
    base: ConnectionBase,
    position: number,
    scheme: "http" | "https",
    mergeSlashes: boolean,
    source: BodySource,
  ) {
    super({
      method: head.method,
      target: head.target,
      httpVersion: head.versionMinor === 1 ? "1.1" : "1.0",
      authority: head.hostField,
      scheme,
      mergeSlashes,
    });
    this.head = head;
    this.base = base;
    this.position = position;
    this.source = source;
    this.listenerKey = base.listener;
    this.canTakeover = head.upgrade !== "" || head.method === "CONNECT";
    this.declaredLength = head.contentLength >= 0 ? head.contentLength : undefined;
  }

  get connection(): WebConnection {
    this.view ??= connectionView(this.base, this.position);
    return this.view;
  }

  get body(): RequestBody {
    this.bodyCache ??= this.canTakeover ? takeoverBody : new H1Body(this.source, this.head);
    return this.bodyCache;
  }

  /** Whether no module touched the body (it is the engine's to drop). */
  get bodyUnread(): boolean {
    return this.bodyCache === undefined || !this.bodyCache.consumed;
  }

  /** The engine drops the body: reading it later gets nothing. */
  bodyDiscarded(): void {
    this.bodyCache = takeoverBody;
  }

  /** Our parser lowercases names already: no copy. */
  override get fields(): Fields {
    this.fieldList ??= new Fields(this.head.fields);
    return this.fieldList;
  }

  protected rawFields(): string[] {
    return this.head.fields;
  }
}
