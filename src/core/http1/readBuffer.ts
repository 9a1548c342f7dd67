/**
 * The one read buffer of a thread: the engine's accepted connections, the upstream client's
 * pooled connections and the forward proxy's tunnels all read into it (Node's `onread`) instead
 * of Node allocating 64 KiB per read, shrinking it and pushing it through a Readable. Safe to
 * share because a read's callback runs to its end before libuv reads into any socket again; the
 * rule for every reader: nothing may point into it once the callback returns (the parser's
 * unconsumed input: `H1Parser.own(view)`; a piece handed on: {@link detached}). Node
 * fixes each socket's next read buffer right after its previous read, so this buffer is never
 * replaced.
 */
export const READ_BUFFER: Buffer = Buffer.allocUnsafe(64 * 1024);

/** The memory behind {@link READ_BUFFER}, for {@link detached}'s identity check. */
const READ_MEMORY: ArrayBufferLike = READ_BUFFER.buffer;

/** `view` itself, or a copy of it when it points into the shared read buffer. */
export function detached(view: Buffer): Buffer {
  return view.buffer === READ_MEMORY ? Buffer.from(view) : view;
}

/** Reads up to this long get a view of their length made once (see {@link readView}). */
const VIEW_CACHE_MAX = 2048;
// (filled: a packed array, not a sparse one V8 would keep as a dictionary)
const views: (Buffer | undefined)[] = new Array(VIEW_CACHE_MAX + 1).fill(undefined);

/**
 * `READ_BUFFER.subarray(0, n)`: what a read of `n` bytes put there. A view per length is made
 * once and given to every read of that length (a request or response head is the same length
 * read after read): no typed-array object per read. Safe by the buffer's own rule: nothing may
 * point into it, the view included, once a read's callback returns.
 */
export function readView(n: number): Buffer {
  if (n > VIEW_CACHE_MAX) return READ_BUFFER.subarray(0, n);
  let v = views[n];
  if (v === undefined) {
    v = READ_BUFFER.subarray(0, n);
    views[n] = v;
  }
  return v;
}
