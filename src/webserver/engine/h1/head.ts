/**
 * Writing response heads: status lines prepared once per status, field names and values checked
 * (a CR/LF from a module or a variable must never become response splitting), and the `date`
 * field computed once per second.
 */
import { Buffer } from "node:buffer";
import { TOKEN } from "../../../core/http1/chars.ts";
import { sameStrings } from "../../../core/lists.ts";
import { reasonPhrase } from "../../statusPages.ts";

const statusLines11: string[] = [];
for (let s = 100; s < 600; s++) {
  statusLines11[s] = `HTTP/1.1 ${s} ${reasonPhrase(s)}\r\n`;
}

/** `HTTP/1.1 <status> <reason>\r\n`; throws on a status outside 100-599 or a reason with CR/LF. */
export function statusLine(status: number, reason: string | undefined): string {
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new Error(`invalid response status ${status}`);
  }
  if (reason === undefined) return statusLines11[status]!;
  if (BAD_VALUE.test(reason)) throw new Error(`invalid reason phrase ${JSON.stringify(reason)}`);
  return `HTTP/1.1 ${status} ${reason}\r\n`;
}

/** Anything but HTAB, SP, VCHAR and obs-text (RFC 9110 §5.5). */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * Valid names, each with the last value found valid with it: a response carries the same fields
 * as the last one (the static module's `content-type`, `accept-ranges`, a file's `etag` and
 * `last-modified`, an upstream's `server`), and the same string needs no second look (a Map
 * lookup against a regular expression per field: about 10 ns against 37). Bounded: names from a
 * hostile upstream cannot grow it forever, and long values are not kept.
 */
const checked = new Map<string, string>();
const CHECKED_NAMES = 2000;
const CHECKED_VALUE_MAX = 256;

function isToken(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 0x7f || TOKEN[c] !== 1) return false;
  }
  return true;
}

/**
 * Throws for a field name that is not a token, or a value that would break the head (CR, LF,
 * NUL, other controls). Names go out lowercase, as they are in `Fields` (and as the node:http
 * engine writes them).
 */
export function checkField(name: string, value: string): void {
  const last = checked.get(name);
  if (last === value) return;
  if (last === undefined && !isToken(name)) {
    throw new Error(`invalid response field name ${JSON.stringify(name)}`);
  }
  if (BAD_VALUE.test(value)) {
    throw new Error(`invalid characters in the value of response field ${name}`);
  }
  if (value.length <= CHECKED_VALUE_MAX && (last !== undefined || checked.size < CHECKED_NAMES)) {
    checked.set(name, value);
  }
}

let dateLine = "";
let dateUntil = 0;

/** `date: <IMF-fixdate>\r\n` for now, recomputed at most once per second. */
export function currentDateLine(now = Date.now()): string {
  if (now >= dateUntil) {
    dateLine = `date: ${new Date(now).toUTCString()}\r\n`;
    dateUntil = (Math.floor(now / 1000) + 1) * 1000;
  }
  return dateLine;
}

let lengthValue = -1;
let lengthText = "";

/**
 * `content-length: <n>\r\n`, the same string as last time for the same length: a fresh one per
 * response would be a cons string, flattened and compared char by char against the last head's
 * (LastHead) in a runtime call; the same one compares by identity.
 */
export function contentLengthLine(n: number): string {
  if (n !== lengthValue) {
    lengthValue = n;
    lengthText = `content-length: ${n}\r\n`;
  }
  return lengthText;
}

/** Fields the engine owns: dropped from a response's fields and written from the body. */
export function isFramingField(name: string): boolean {
  return (
    name === "content-length" ||
    name === "transfer-encoding" ||
    name === "connection" ||
    name === "keep-alive"
  );
}

/**
 * The last response head written by the thread, for the next response that would write the same
 * one: a hot file served again (the static module's fields are the same strings from its open-file
 * cache), a `return`, the same upstream response. A head is a pure function of its status line,
 * its fields (name and value, in order), the `date` and `server` lines and the framing lines, so
 * when all of them are the same strings as last time the head is too: no concatenation, no field
 * checks (they passed when it was built), no encoding (its bytes are made on the second use and
 * written as they are). Compared: identity first, then content (short strings). One entry: a
 * miss costs a few comparisons and a copy of the field list.
 */
export class LastHead {
  private statusLine = "";
  private fields: string[] = [];
  private date = "";
  private server = "";
  private framing = "";
  /** The head, when the key above is set. */
  private text = "";
  private encoded: Buffer | undefined = undefined;
  /** The last whole response made with this head and a body that cannot change, and that body. */
  private wholeBody: string | Uint8Array = "";
  private wholeBytes: Buffer | undefined = undefined;

  /** The head for this key, if it is the last one built; else undefined. */
  find(
    statusLine: string,
    fields: readonly string[],
    date: string,
    server: string,
    framing: string,
  ): string | undefined {
    if (
      statusLine !== this.statusLine ||
      framing !== this.framing ||
      date !== this.date ||
      server !== this.server
    ) {
      return undefined;
    }
    return sameStrings(fields, this.fields) ? this.text : undefined;
  }

  /** Remember `text`, the head just built for this key (the fields are copied: lists change). */
  store(
    statusLine: string,
    fields: readonly string[],
    date: string,
    server: string,
    framing: string,
    text: string,
  ): void {
    this.statusLine = statusLine;
    this.fields = fields.slice();
    this.date = date;
    this.server = server;
    this.framing = framing;
    this.text = text;
    this.encoded = undefined;
    this.wholeBytes = undefined;
  }

  /** The bytes of the head {@link find} just returned (latin1), made once: never to be changed. */
  bytes(): Buffer {
    this.encoded ??= Buffer.from(this.text, "latin1");
    return this.encoded;
  }

  /**
   * The head {@link find} just returned and `body` after it: a text of single-byte characters (a
   * `return`, an error page), or bytes that never change (a `shared` body: a file from the
   * open-file cache). The same body as last time (the same text, the same Buffer) is the same
   * bytes, written as they are. Never for a Buffer a module could change afterwards.
   */
  whole(body: string | Uint8Array): Buffer {
    if (this.wholeBytes === undefined || body !== this.wholeBody) {
      const head = this.bytes();
      const buf = Buffer.allocUnsafe(head.length + body.length);
      buf.set(head);
      if (typeof body === "string") buf.write(body, head.length, "latin1");
      else buf.set(body, head.length);
      this.wholeBody = body;
      this.wholeBytes = buf;
    }
    return this.wholeBytes;
  }
}
