/**
 * What every engine does the same way when writing a response: which fields go out (framing is
 * the engine's), how long a body is, and closing a file body's descriptor.
 */
import { close } from "node:fs";
import type { Body, WebResponse } from "../exchange.ts";

/** Fields an engine never takes from a module: it writes its own framing. */
const framing = new Set(["content-length", "transfer-encoding", "connection", "keep-alive"]);

/**
 * The response's fields without framing ones (a `content-length` on an empty-bodied HEAD or 304
 * response is kept: it describes the representation), plus `server` unless the response has one.
 * Returns the list and the length the engine must announce (undefined: none or chunked).
 */
export function outgoingFields(
  res: WebResponse,
  head: boolean,
  serverHeader: string | undefined,
): { list: string[]; length: number | undefined; keptLength: boolean } {
  const src = res.fields.list;
  const list: string[] = [];
  let keptLength = false;
  let hasServer = false;
  const keepLength = res.body.kind === "empty" && (head || res.status === 304);
  for (let i = 0; i < src.length; i += 2) {
    const name = src[i]!;
    if (framing.has(name)) {
      if (name === "content-length" && keepLength && !keptLength) {
        list.push(name, src[i + 1]!);
        keptLength = true;
      }
      continue;
    }
    if (name === "server") {
      hasServer = true;
      // An empty Server says "none" (the headers module's removeHeaders: ["Server"]).
      if (src[i + 1] === "") continue;
    }
    list.push(name, src[i + 1]!);
  }
  if (!hasServer && serverHeader !== undefined) list.push("server", serverHeader);
  return { list, length: bodyLength(res.body), keptLength };
}

/** The body's length in bytes, when known before writing. */
export function bodyLength(body: Body): number | undefined {
  switch (body.kind) {
    case "empty":
      return 0;
    case "bytes":
      return typeof body.data === "string" ? Buffer.byteLength(body.data) : body.data.byteLength;
    case "file":
      return body.end - body.start;
    case "stream":
      return body.length;
    case "takeover":
      return undefined;
  }
}

/** Close a file body's descriptor unless an open-file cache owns it; destroy a stream body. */
export function releaseBody(body: Body): void {
  if (body.kind === "file" && !body.keepOpen) close(body.fd, () => {});
  else if (body.kind === "stream" && !body.stream.destroyed) body.stream.destroy();
}
