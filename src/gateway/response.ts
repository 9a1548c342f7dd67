/**
 * A lighter global `Response` for app workers: the response half of the bridge's hot path.
 *
 * undici's `new Response("hello")` builds a byte stream, a Headers list and internal state up
 * front, and reading the body back out costs several promise turns. Most responses are a string
 * or bytes with a few headers. So in a worker, `globalThis.Response` is replaced by this class:
 * for a string / Uint8Array / ArrayBuffer / empty body it only records `(body, init)`, and the
 * bridge writes those straight to the socket. Touching anything beyond `status`, `ok`,
 * `statusText` (e.g. `headers`, `body`, `text()`) builds the real undici Response once and
 * delegates to it from then on, so behaviour stays the standard one. Other bodies (streams,
 * Blob, FormData...) build the real Response at once.
 *
 * `instanceof Response` holds both ways (native responses from `fetch()` are instances too).
 * Limit: a light response is not a genuine undici object, so handing one to an API that checks
 * the brand (`Response.prototype.text.call(x)`) fails; `toNativeResponse()` gives the real one.
 * (@hono/node-server ships the same idea; this is our own.)
 */

const NativeResponse: typeof Response = globalThis.Response;

type LightBody = string | Uint8Array | ArrayBuffer | null;

/** What the bridge needs to write a light response without building the real one. */
export interface LightParts {
  status: number;
  statusText: string;
  headers: HeadersInit | undefined;
  body: LightBody;
}

function isLightBody(body: unknown): body is LightBody | undefined {
  return (
    body === undefined ||
    body === null ||
    typeof body === "string" ||
    body instanceof Uint8Array ||
    body instanceof ArrayBuffer
  );
}

function isLight(value: unknown): value is LightResponse {
  return LightResponse.isLight(value);
}

const nullBodyStatus = new Set([101, 103, 204, 205, 304]);

export class LightResponse {
  #parts: LightParts | undefined;
  #real: Response | undefined;

  constructor(body?: BodyInit | null, init?: ResponseInit) {
    const status = init?.status ?? 200;
    if (
      isLightBody(body) &&
      Number.isInteger(status) &&
      status >= 200 &&
      status <= 599 &&
      !(body != null && nullBodyStatus.has(status))
    ) {
      this.#parts = {
        status,
        statusText: init?.statusText ?? "",
        headers: init?.headers,
        body: body ?? null,
      };
    } else {
      // Anything unusual gets the standard behaviour, errors included.
      this.#real = new NativeResponse(body, init);
    }
  }

  /** The recorded parts while the real Response has not been built; else undefined. */
  static parts(response: unknown): LightParts | undefined {
    return isLight(response) ? response.#parts : undefined;
  }

  /** The genuine undici Response behind this one (built on first need). */
  static native(response: Response): Response {
    return isLight(response) ? response.#native() : response;
  }

  /** A brand check: `instanceof` is widened to native responses, this is not. */
  static isLight(value: unknown): value is LightResponse {
    return typeof value === "object" && value !== null && #real in value;
  }

  #native(): Response {
    if (this.#real === undefined) {
      const p = this.#parts!;
      this.#real = new NativeResponse(p.body as BodyInit | null, {
        status: p.status,
        statusText: p.statusText,
        headers: p.headers,
      });
      this.#parts = undefined;
    }
    return this.#real;
  }

  get status(): number {
    return this.#parts ? this.#parts.status : this.#real!.status;
  }
  get ok(): boolean {
    const s = this.status;
    return s >= 200 && s <= 299;
  }
  get statusText(): string {
    return this.#parts ? this.#parts.statusText : this.#real!.statusText;
  }

  static json(data: unknown, init?: ResponseInit): Response {
    const text = JSON.stringify(data);
    if (text === undefined) return NativeResponse.json(data, init);
    let headers: HeadersInit = { "content-type": "application/json" };
    if (init?.headers !== undefined) {
      const h = new Headers(init.headers);
      if (!h.has("content-type")) h.set("content-type", "application/json");
      headers = h;
    }
    return new LightResponse(text, { ...init, headers }) as unknown as Response;
  }
  static redirect(url: string | URL, status?: number): Response {
    return NativeResponse.redirect(url, status);
  }
  static error(): Response {
    return NativeResponse.error();
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return (
      typeof value === "object" &&
      value !== null &&
      (Object.prototype.isPrototypeOf.call(LightResponse.prototype, value) ||
        Object.prototype.isPrototypeOf.call(NativeResponse.prototype, value))
    );
  }
}

// Everything else a Response has is answered by the real one.
for (const key of Object.getOwnPropertyNames(NativeResponse.prototype)) {
  if (key === "constructor" || Object.hasOwn(LightResponse.prototype, key)) continue;
  const desc = Object.getOwnPropertyDescriptor(NativeResponse.prototype, key);
  if (desc?.get) {
    Object.defineProperty(LightResponse.prototype, key, {
      get(this: LightResponse) {
        return (
          LightResponse.native(this as unknown as Response) as unknown as Record<string, unknown>
        )[key];
      },
      configurable: true,
    });
  } else if (typeof desc?.value === "function") {
    Object.defineProperty(LightResponse.prototype, key, {
      value(this: LightResponse, ...args: unknown[]) {
        const real = LightResponse.native(this as unknown as Response) as unknown as Record<
          string,
          (...a: unknown[]) => unknown
        >;
        return real[key]!(...args);
      },
      configurable: true,
      writable: true,
    });
  }
}
Object.setPrototypeOf(LightResponse.prototype, NativeResponse.prototype);
Object.setPrototypeOf(LightResponse, NativeResponse);

/**
 * Make `globalThis.Response` the light one in this process (idempotent). A worker process runs
 * one app, so the bridge does this when it is created unless `fastResponse: false`.
 * Returns a function restoring the native class.
 */
export function installLightResponse(): () => void {
  if (globalThis.Response !== (LightResponse as unknown as typeof Response)) {
    globalThis.Response = LightResponse as unknown as typeof Response;
  }
  return () => {
    globalThis.Response = NativeResponse;
  };
}

/** The genuine undici Response for any response (for APIs that check the brand). */
export function toNativeResponse(response: Response): Response {
  return LightResponse.native(response);
}

/** The native class, whatever `globalThis.Response` is now. */
export { NativeResponse };
