/**
 * The part of `AbortSignal` that code waiting on a request uses: whether it was aborted, and an
 * `abort` listener. `AbortSignal` fits; so does the engine's request itself, which tells its
 * listeners when the client goes away without making an `AbortController` (and its EventTarget)
 * per request (see `WebRequest.clientGone`).
 */
export interface AbortLike {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** A real `AbortSignal` that follows `like` (for APIs that insist on one: undici, node:http). */
export function toAbortSignal(like: AbortLike): AbortSignal {
  if (like instanceof AbortSignal) return like;
  const ac = new AbortController();
  if (like.aborted) ac.abort(new Error("client closed the connection"));
  else
    like.addEventListener("abort", () => ac.abort(new Error("client closed the connection")), {
      once: true,
    });
  return ac.signal;
}
