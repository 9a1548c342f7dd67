/**
 * Upstream failures, classified the way a proxy has to answer and log them: what went wrong
 * (`kind`), in which phase of the exchange (`phase`), whether the request may have reached
 * the peer (`sent`, which decides if a non-idempotent request may be retried), and the status
 * a proxy answers with (502 for refused, reset and bad responses, 504 for timeouts, 503 when
 * every peer is busy). nginx's error log lines are the model: `connect() failed (111:
 * Connection refused) while connecting to upstream, upstream: "http://127.0.0.1:8000/"`.
 */

export type UpstreamErrorKind =
  /** Connection refused, no such socket file, host or network unreachable. */
  | "refused"
  /** The connection was reset or closed before a complete response. */
  | "reset"
  /** Connect, send or read timeout. */
  | "timeout"
  /** The peer answered with something that is not valid HTTP/1.1 (or a truncated body). */
  | "badResponse"
  /** No peer is live: every one is down, failed, unhealthy or draining ("no live upstreams"). */
  | "unavailable"
  /** Every live peer is at its maxConns and the queue is full or off, or the wait timed out. */
  | "busy"
  /** The caller aborted (the client went away): not the peer's fault. */
  | "aborted"
  /**
   * The request cannot be sent as given (a CR, LF or NUL in a header value, a bad name or
   * method, typically from a `proxySetHeaders` variable): refused before anything is written,
   * not the peer's fault, never retried; a proxy answers 500 (nginx: an internal error).
   */
  | "invalidRequest";

/** One attempt of a request, as the access log wants it ($upstream_addr, $upstream_status). */
export interface AttemptRecord {
  peer: string;
  /** The response status, when a response head arrived. */
  status?: number;
  /** The error kind, when the attempt failed without a response. */
  error?: UpstreamErrorKind;
  /** Whether the request then moved on to another peer. */
  retried: boolean;
}

export type UpstreamPhase = "select" | "prepare" | "connect" | "send" | "read";

const statusOf: Record<UpstreamErrorKind, number> = {
  refused: 502,
  reset: 502,
  timeout: 504,
  badResponse: 502,
  unavailable: 502,
  busy: 503,
  aborted: 499,
  invalidRequest: 500,
};

const phaseText: Record<UpstreamPhase, string> = {
  select: "while selecting a peer",
  prepare: "while preparing the request to upstream",
  connect: "while connecting to upstream",
  send: "while sending the request to upstream",
  read: "while reading the response from upstream",
};

export class UpstreamError extends Error {
  override readonly name = "UpstreamError";
  readonly kind: UpstreamErrorKind;
  readonly phase: UpstreamPhase;
  /**
   * The status a proxy should answer with: 502, 503 or 504 (499 for aborted, nginx's; 500 for
   * a request that cannot be sent).
   */
  readonly status: number;
  /** True when the request may have reached the peer (retrying a POST is then unsafe). */
  readonly sent: boolean;
  /** The peer (`host:port` or `unix:/path`), when one was involved. */
  peer: string | undefined;
  /** The low-level code: ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT, HPE_INVALID_CONSTANT... */
  readonly code: string | undefined;
  /** Every attempt made for the request, when it came through the retry driver. */
  attempts: AttemptRecord[] = [];

  constructor(
    kind: UpstreamErrorKind,
    phase: UpstreamPhase,
    options: {
      message?: string;
      peer?: string | undefined;
      sent?: boolean;
      code?: string | undefined;
      cause?: unknown;
    } = {},
  ) {
    const detail = options.message ?? kind;
    const where = options.peer ? `, upstream: "${options.peer}"` : "";
    super(`${detail} ${phaseText[phase]}${where}`, { cause: options.cause });
    this.kind = kind;
    this.phase = phase;
    this.status = statusOf[kind];
    this.sent = options.sent ?? (phase === "send" || phase === "read");
    this.peer = options.peer;
    this.code = options.code;
  }
}

const refusedCodes = new Set([
  "ECONNREFUSED",
  "ENOENT",
  "EACCES",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EADDRNOTAVAIL",
  "ENOTSOCK",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
const resetCodes = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNABORTED",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
]);
/** Thrown (by our client, node:http or undici) for a request field that cannot be sent. */
const invalidRequestCodes = new Set([
  "ERR_INVALID_HTTP_TOKEN",
  "ERR_INVALID_CHAR",
  "ERR_UNESCAPED_CHARACTERS",
  "UND_ERR_INVALID_ARG",
]);
const badResponseCodes = new Set([
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
  "UND_ERR_RES_EXCEEDED_MAX_SIZE",
  "UND_ERR_INFO",
]);

/**
 * Turn whatever a socket or undici threw into an `UpstreamError`. `state` says how far the
 * exchange got: `connected` false means nothing was sent; `headers` true means the response
 * head had arrived (an error then is in the body). An `UpstreamError` passes through.
 */
export function classifyError(
  err: unknown,
  state: {
    peer?: string | undefined;
    connected?: boolean;
    headers?: boolean;
    sending?: boolean;
  } = {},
): UpstreamError {
  if (err instanceof UpstreamError) {
    if (err.peer === undefined) err.peer = state.peer;
    return err;
  }
  const e = err as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
  const code = typeof e?.code === "string" ? e.code : undefined;
  const message = typeof e?.message === "string" ? e.message : String(err);
  const peer = state.peer;
  const base = { peer, code, cause: err };
  const readPhase: UpstreamPhase = state.sending ? "send" : "read";
  if (code === "UND_ERR_ABORTED" || e?.name === "AbortError" || code === "ABORT_ERR") {
    return new UpstreamError("aborted", state.connected ? readPhase : "connect", {
      ...base,
      message: "request aborted",
      sent: state.connected ?? false,
    });
  }
  if (code !== undefined && invalidRequestCodes.has(code)) {
    return new UpstreamError("invalidRequest", "prepare", {
      ...base,
      message: `invalid request to upstream: ${message}`,
      sent: false,
    });
  }
  if (code === "UND_ERR_CONNECT_TIMEOUT") {
    return new UpstreamError("timeout", "connect", {
      ...base,
      message: "connect timed out",
      sent: false,
    });
  }
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
    return new UpstreamError("timeout", readPhase, {
      ...base,
      message: `upstream timed out (${code === "UND_ERR_BODY_TIMEOUT" ? "body" : "response head"})`,
    });
  }
  if (
    e?.name === "HTTPParserError" ||
    (code !== undefined && (code.startsWith("HPE_") || badResponseCodes.has(code)))
  ) {
    return new UpstreamError("badResponse", "read", {
      ...base,
      message: `upstream sent an invalid response: ${message}`,
    });
  }
  if (code !== undefined && refusedCodes.has(code) && !state.connected) {
    return new UpstreamError("refused", "connect", {
      ...base,
      message: `connect() failed (${code}: ${message})`,
      sent: false,
    });
  }
  if (code !== undefined && resetCodes.has(code)) {
    if (!state.connected) {
      return new UpstreamError("reset", "connect", {
        ...base,
        message: `connection reset (${code})`,
        sent: false,
      });
    }
    return new UpstreamError("reset", state.headers ? "read" : readPhase, {
      ...base,
      message: `upstream ${state.headers ? "closed the connection mid-body" : "closed the connection"} (${code}: ${message})`,
    });
  }
  // Anything else (an unexpected error inside the client) is treated as a broken connection.
  return new UpstreamError("reset", state.connected ? readPhase : "connect", {
    ...base,
    message: `upstream error (${code ?? "unknown"}: ${message})`,
    sent: state.connected ?? false,
  });
}
