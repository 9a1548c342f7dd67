/**
 * A lazy `Request` over a Node `IncomingMessage`: the hot path of the fetch bridge.
 *
 * Building a real `Request` (URL parsing, a `Headers` copy, a body stream, an AbortSignal
 * chain) costs more than many handlers do. Most handlers read `method`, `url`, maybe a header
 * or the body as text/JSON. So this object answers those from the Node request directly and
 * builds the real `Request` only when something else is touched (the idea of
 * @hono/node-server's request.ts, written anew). It passes `instanceof Request`.
 *
 * Limit: it is not a genuine undici Request, so `new Request(request)` or `fetch(request)`
 * (which check the brand) need `toRequest(request)` first.
 */
import type { IncomingMessage } from "node:http";

const bodyless = new Set(["GET", "HEAD"]);

/** Turn a Node request body into a byte stream with backpressure (pauses the socket). */
export function incomingBody(req: IncomingMessage): ReadableStream<Uint8Array> {
  let closed = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        const finish = (err?: unknown) => {
          if (closed) return;
          closed = true;
          if (err === undefined) controller.close();
          else controller.error(err);
        };
        req.on("data", (chunk: Buffer) => {
          if (closed) return;
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) req.pause();
        });
        req.once("end", () => finish());
        req.once("error", (err) => finish(err));
        req.once("close", () => {
          if (!req.complete) finish(new Error("client closed the connection mid-body"));
        });
      },
      pull() {
        req.resume();
      },
      cancel() {
        closed = true;
        // Discard the rest so the connection can be reused (node:http drains what is unread).
        req.resume();
      },
    },
    { highWaterMark: 64 * 1024, size: (chunk) => chunk.byteLength },
  );
}

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.once("error", reject);
    req.once("close", () => {
      if (!req.complete) reject(new Error("client closed the connection mid-body"));
    });
  });
}

const decoder = new TextDecoder();

/**
 * The request an app sees. Construct with the Node request, a function computing the absolute
 * URL (scheme may come from trusted forwarding headers, so it is computed only when read).
 */
export class LazyRequest {
  #req: IncomingMessage;
  #urlOf: () => string;
  #url: string | undefined;
  #headers: Headers | undefined;
  #controller: AbortController | undefined;
  #abortReason: unknown;
  #aborted = false;
  #real: Request | undefined;
  #bodyUsed = false;

  constructor(req: IncomingMessage, urlOf: () => string) {
    this.#req = req;
    this.#urlOf = urlOf;
  }

  get method(): string {
    return this.#req.method ?? "GET";
  }
  get url(): string {
    this.#url ??= this.#urlOf();
    return this.#url;
  }
  get headers(): Headers {
    if (this.#headers === undefined) {
      const h = new Headers();
      const raw = this.#req.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) h.append(raw[i]!, raw[i + 1]!);
      this.#headers = h;
    }
    return this.#headers;
  }
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }
  /** Abort the signal. Cheap when nobody has looked at the signal yet. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#abortReason = reason;
    this.#controller?.abort(reason);
  }
  get body(): ReadableStream<Uint8Array> | null {
    if (bodyless.has(this.method)) return null;
    return this.toRequest().body;
  }
  get bodyUsed(): boolean {
    return this.#real ? this.#real.bodyUsed : this.#bodyUsed;
  }
  get duplex(): "half" {
    return "half";
  }

  /** The genuine undici `Request` (built once; then every read goes through it). */
  toRequest(): Request {
    if (this.#real === undefined) {
      const method = this.method;
      const hasBody = !bodyless.has(method) && !this.#bodyUsed;
      this.#real = new Request(this.url, {
        method,
        headers: this.headers,
        body: hasBody ? incomingBody(this.#req) : null,
        duplex: "half",
        signal: this.signal,
      } as RequestInit);
    }
    return this.#real;
  }

  async #bytes(): Promise<Buffer> {
    if (this.#bodyUsed) throw new TypeError("Body is unusable: Body has already been read");
    this.#bodyUsed = true;
    if (bodyless.has(this.method)) return Buffer.alloc(0);
    return readAll(this.#req);
  }
  /** Fast paths: read the Node stream straight into one buffer, no web stream in between. */
  text(): Promise<string> {
    if (this.#real) return this.#real.text();
    return this.#bytes().then((b) => decoder.decode(b));
  }
  json(): Promise<unknown> {
    if (this.#real) return this.#real.json();
    return this.text().then(JSON.parse);
  }
  arrayBuffer(): Promise<ArrayBuffer> {
    if (this.#real) return this.#real.arrayBuffer();
    return this.#bytes().then((b) => {
      const out = new ArrayBuffer(b.byteLength);
      new Uint8Array(out).set(b);
      return out;
    });
  }
  bytes(): Promise<Uint8Array> {
    if (this.#real) return this.#real.bytes();
    return this.#bytes().then((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  }
  blob(): Promise<Blob> {
    return this.toRequest().blob();
  }
  formData(): Promise<FormData> {
    return this.toRequest().formData();
  }
  clone(): Request {
    return this.toRequest().clone();
  }
}

// Everything else a Request has (cache, mode, redirect...) is answered by the real Request.
for (const key of Object.getOwnPropertyNames(Request.prototype)) {
  if (key === "constructor" || Object.hasOwn(LazyRequest.prototype, key)) continue;
  const desc = Object.getOwnPropertyDescriptor(Request.prototype, key);
  if (desc?.get) {
    Object.defineProperty(LazyRequest.prototype, key, {
      get(this: LazyRequest) {
        return (this.toRequest() as unknown as Record<string, unknown>)[key];
      },
      configurable: true,
    });
  } else if (typeof desc?.value === "function") {
    Object.defineProperty(LazyRequest.prototype, key, {
      value(this: LazyRequest, ...args: unknown[]) {
        const real = this.toRequest() as unknown as Record<string, (...a: unknown[]) => unknown>;
        return real[key]!(...args);
      },
      configurable: true,
      writable: true,
    });
  }
}
Object.setPrototypeOf(LazyRequest.prototype, Request.prototype);

/** A genuine `Request` for any request an app was handed (for `fetch(request)` and the like). */
export function toRequest(request: Request): Request {
  return request instanceof LazyRequest ? request.toRequest() : request;
}
