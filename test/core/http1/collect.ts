/**
 * Run a whole byte string through an {@link H1Parser}, fed in the given pieces, and collect what
 * it made of it: every complete message (head, body, trailers) and the error that stopped it, if
 * any. Shared by the corpus test, the differential fuzz test and the unit tests.
 */
import {
  BODY,
  END,
  H1Parser,
  HEAD,
  type Head,
  NEED_MORE,
  ParseError,
  type ParserLimits,
} from "../../../src/core/http1/parser.ts";

export interface Message {
  method: string;
  target: string;
  status: number;
  version: string;
  /** `[name, value]` pairs, lowercase names. */
  headers: [string, string][];
  body: string;
  trailers: [string, string][];
  framing: string;
  keepAlive: boolean;
  host: string;
  port: number;
  form: string;
  reason: string;
  upgrade: string;
  expectContinue: boolean;
}

export interface Outcome {
  messages: Message[];
  /** Set when parsing stopped on an error. */
  error: { status: number; code: string; message: string } | undefined;
  /** A message begun but not finished when the input ran out. */
  partial: boolean;
}

function pairs(list: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < list.length; i += 2) out.push([list[i]!, list[i + 1]!]);
  return out;
}

export function collect(
  data: Buffer,
  options: {
    kind?: "request" | "response";
    limits?: Partial<ParserLimits>;
    /** Offsets where the data is cut into pieces (sorted). Default: one piece. */
    cuts?: number[];
    /** Response mode: the request methods, one per response (default GET). */
    methods?: string[];
    /** Feed eof at the end (close-delimited responses). */
    eof?: boolean;
  } = {},
): Outcome {
  const parser = new H1Parser(options.kind ?? "request", options.limits);
  const messages: Message[] = [];
  let head: Head | undefined;
  let body: Buffer[] = [];
  const pieces: Buffer[] = [];
  let at = 0;
  for (const cut of options.cuts ?? []) {
    if (cut > at && cut < data.length) {
      pieces.push(data.subarray(at, cut));
      at = cut;
    }
  }
  pieces.push(data.subarray(at));
  const methods = options.methods ?? [];
  parser.requestMethod = methods[0] ?? "GET";
  const drain = (): void => {
    for (let ev = parser.next(); ev !== NEED_MORE; ev = parser.next()) {
      if (ev === HEAD) {
        head = parser.head;
        body = [];
      } else if (ev === BODY) {
        body.push(Buffer.from(parser.chunk));
      } else if (ev === END) {
        const h = head!;
        messages.push({
          method: h.method,
          target: h.target,
          status: h.status,
          version: `1.${h.versionMinor}`,
          headers: pairs(h.fields),
          body: Buffer.concat(body).toString("latin1"),
          trailers: pairs(h.trailers ?? []),
          framing: h.framing,
          keepAlive: h.keepAlive,
          host: h.host,
          port: h.port,
          form: h.form,
          reason: h.reason,
          upgrade: h.upgrade,
          expectContinue: h.expectContinue,
        });
        head = undefined;
        if (h.status === 0 || h.status >= 200) {
          parser.requestMethod =
            methods[messages.filter((m) => m.status === 0 || m.status >= 200).length] ?? "GET";
        }
      }
    }
  };
  try {
    for (const piece of pieces) {
      parser.feed(piece);
      drain();
    }
    if (options.eof && parser.eof()) drain();
  } catch (err) {
    if (!(err instanceof ParseError)) throw err;
    return {
      messages,
      error: { status: err.status, code: err.code, message: err.message },
      partial: false,
    };
  }
  return {
    messages,
    error: undefined,
    partial: head !== undefined || !(parser.idle || parser.stopped),
  };
}

/**
 * The corpus escape syntax (gunicorn's tests/requests): real newlines in a file are layout only
 * and dropped; bytes are written `\r`, `\n`, `\t`, `\0`, `\xHH`, `\\`.
 */
export function unescapeRaw(text: string): Buffer {
  const s = text.replace(/\r?\n/g, "");
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x5c) {
      if (c > 0xff) throw new Error(`corpus: non-latin1 character at ${i}; write it as \\xHH`);
      out.push(c);
      continue;
    }
    const n = s[++i];
    if (n === "r") out.push(13);
    else if (n === "n") out.push(10);
    else if (n === "t") out.push(9);
    else if (n === "0") out.push(0);
    else if (n === "\\") out.push(0x5c);
    else if (n === "x") {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new Error(`corpus: bad \\x escape at ${i}`);
      out.push(Number.parseInt(hex, 16));
      i += 2;
    } else throw new Error(`corpus: unknown escape \\${n} at ${i}`);
  }
  return Buffer.from(out);
}
