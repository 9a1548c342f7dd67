/**
 * Request limits (gunicorn's `limit_request_*`, plus a body limit) and the answers to malformed
 * requests, before anything reaches the app.
 *
 * - The whole head is bounded by node:http's `maxHeaderSize` (llhttp stops parsing past it):
 *   line + fields × field size, at least 16 KiB. Past it: 431.
 * - Within it, a request line longer than `limitRequestLine` gets 414, more than
 *   `limitRequestFields` header fields or one longer than `limitRequestFieldSize` 431 (checked
 *   on the parsed request; node:http is told to keep one field more than the limit, so too many
 *   is seen rather than silently cut).
 * - A body whose Content-Length is over `limitRequestBody` gets 413 without the app; a streamed
 *   (chunked) one gets 413 as soon as it passes the limit, if no response has started.
 * - Anything llhttp cannot parse gets 400 (413 for oversized chunk extensions, 408 for a head
 *   that does not arrive in time), on a connection that is then closed.
 * Every such answer closes the connection: after a bad request the stream cannot be trusted.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";

export interface Limits {
  /** Bytes; 0: none of its own. */
  requestLine: number;
  /** Header fields; 0: none of its own. */
  requestFields: number;
  /** Bytes per `name: value`; 0: none of its own. */
  requestFieldSize: number;
  /** Body bytes; 0: none. */
  requestBody: number;
}

/** node:http's bound on the whole head, from the limits (what an unset limit counts as). */
export function maxHeaderSize(l: Limits): number {
  const line = l.requestLine || 8190;
  const fields = l.requestFields || 100;
  const size = l.requestFieldSize || 8190;
  return Math.max(16 * 1024, line + 4 + fields * (size + 2));
}

/** node:http's `maxHeadersCount`: one more than the limit, so going over it is visible. */
export function maxHeadersCount(l: Limits): number {
  return l.requestFields > 0 ? l.requestFields + 1 : 2000;
}

/** The status a parsed request's head earns (414, 431), or 0 when it is within the limits. */
export function checkHead(req: IncomingMessage, l: Limits): number {
  if (l.requestLine > 0) {
    // "GET /path HTTP/1.1"
    const line = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 2 + 8;
    if (line > l.requestLine) return 414;
  }
  const raw = req.rawHeaders;
  if (l.requestFields > 0 && raw.length / 2 > l.requestFields) return 431;
  if (l.requestFieldSize > 0) {
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length + 2 + raw[i + 1]!.length > l.requestFieldSize) return 431;
    }
  }
  return 0;
}

/** Is the declared body over the limit? (413 before the app.) */
export function bodyTooLarge(req: IncomingMessage, l: Limits): boolean {
  if (l.requestBody <= 0) return false;
  const length = req.headers["content-length"];
  return length !== undefined && Number(length) > l.requestBody;
}

/** Answer `status` with a short text body and close the connection after it. */
export function refuse(res: ServerResponse, status: number): void {
  const text = `${STATUS_CODES[status] ?? "Error"}\n`;
  res.shouldKeepAlive = false;
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    connection: "close",
  });
  res.end(text);
}

/**
 * Count a streamed body as it arrives and, past the limit, answer 413 (if the app has not
 * started its response) and stop reading. `onRefused` runs once when that happens.
 */
export function limitBody(
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
  onRefused: () => void,
): void {
  // A body with a declared length was checked whole (bodyTooLarge); one with neither length
  // nor transfer-coding is empty (RFC 9112 §6.3): only a chunked body needs counting.
  const h = req.headers;
  if (limit <= 0 || h["content-length"] !== undefined || h["transfer-encoding"] === undefined) {
    return;
  }
  let seen = 0;
  const push = req.push.bind(req);
  req.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk !== null && chunk !== undefined) {
      seen += (chunk as { length: number }).length;
      if (seen > limit) {
        req.push = push;
        onRefused();
        const tooLate = res.headersSent;
        if (!tooLate) {
          refuse(res, 413);
          // The app may still be reading: end its body with an error once our answer is out.
          res.once("finish", () => req.destroy(new Error("request body over the limit")));
        } else {
          req.destroy(new Error("request body over the limit"));
        }
        // Silence the app's own late response: the client already has its answer.
        if (!tooLate) silence(res);
        return false;
      }
    }
    return push(chunk, encoding);
  };
}

/** Make a response's writing methods no-ops (the server answered for the app). */
export function silence(res: ServerResponse): void {
  const self = function (this: ServerResponse) {
    return this;
  };
  const r = res as unknown as Record<string, unknown>;
  for (const m of ["setHeader", "appendHeader", "writeHead", "end", "setHeaders"]) r[m] = self;
  for (const m of ["removeHeader", "flushHeaders", "writeContinue", "writeEarlyHints"]) {
    r[m] = () => {};
  }
  r.write = () => true;
}

/** The status for a node:http `clientError` (a request llhttp could not parse), or 0: just close. */
export function clientErrorStatus(err: NodeJS.ErrnoException): number {
  switch (err.code) {
    case "HPE_HEADER_OVERFLOW":
      return 431;
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return 413;
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return 408;
    case "ECONNRESET":
    case "EPIPE":
      return 0;
    default:
      return 400;
  }
}

/** Write a bare error response on a socket node:http gave up on, then close it. */
export function answerClientError(socket: Duplex, status: number): void {
  const inProgress = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (status === 0 || !socket.writable || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const text = `${STATUS_CODES[status] ?? "Bad Request"}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Bad Request"}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}
