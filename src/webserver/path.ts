/**
 * The request path every module relies on (nginx's `$uri`): the request-target's path,
 * percent-decoded once, with dot segments resolved and repeated slashes merged, like nginx's
 * ngx_http_parse_complex_uri. What cannot be made safe is refused (the caller answers 400):
 * an invalid percent escape, a NUL (raw or `%00`), a `..` above the root, bytes that are not
 * UTF-8 once decoded (an intended difference: nginx works on bytes, our paths are strings).
 *
 * Decoding happens exactly once: `%252e` is the three characters `%2e`, never a dot. A decoded
 * `%2F` is a slash like any other (nginx's behaviour too).
 */

const utf8 = new TextDecoder("utf-8", { fatal: true });

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

/**
 * Normalise a raw path (the target before `?`, as node:http gives it: one char per byte) into
 * `$uri`, or undefined when it must be refused with 400. `mergeSlashes` is nginx's
 * `merge_slashes`.
 */
export function normalizePath(raw: string, mergeSlashes = true): string | undefined {
  if (raw.charCodeAt(0) !== 47) return undefined;
  // Fast path: nothing to decode, no dot segment, no repeated slash, no control or 8-bit byte.
  let simple = true;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 || c < 0x21 || c > 0x7e) {
      simple = false;
      break;
    }
    if (c === 47) {
      const n = raw.charCodeAt(i + 1);
      if (n === 47 || n === 46) {
        simple = false;
        break;
      }
    }
  }
  if (simple) return raw;

  const bytes = new Uint8Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    let c = raw.charCodeAt(i);
    if (c > 0xff) return undefined;
    if (c === 37) {
      const hi = hexValue(raw.charCodeAt(i + 1));
      const lo = hexValue(raw.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return undefined;
      c = hi * 16 + lo;
      i += 2;
    }
    if (c === 0) return undefined;
    bytes[n++] = c;
  }
  let decoded: string;
  try {
    decoded = utf8.decode(bytes.subarray(0, n));
  } catch {
    return undefined;
  }
  return resolveDots(decoded, mergeSlashes);
}

/**
 * Resolve `.` and `..` segments (and merge `//`) in an already decoded path starting with "/";
 * undefined when `..` climbs above the root. A path ending in a dot segment ends with "/".
 */
export function resolveDots(path: string, mergeSlashes = true): string | undefined {
  const segments = path.split("/");
  const out: string[] = [];
  const last = segments.length - 1;
  let trailingSlash = false;
  for (let i = 1; i <= last; i++) {
    const s = segments[i]!;
    if (s === ".") {
      trailingSlash = i === last;
      continue;
    }
    if (s === "..") {
      if (out.length === 0) return undefined;
      out.pop();
      trailingSlash = i === last;
      continue;
    }
    if (s === "" && i !== last) {
      if (mergeSlashes) continue;
    }
    trailingSlash = false;
    out.push(s);
  }
  let result = `/${out.join("/")}`;
  if (trailingSlash && !result.endsWith("/")) result += "/";
  return result;
}

/**
 * Split a request-target into its raw path and query: origin form (`/a?b`), absolute form
 * (`http://host/a?b`, also giving the host, which RFC 9112 §3.2.2 says replaces Host), or
 * undefined for what has no path (`*`, authority form).
 */
export function splitTarget(
  target: string,
): { path: string; query: string; host: string | undefined } | undefined {
  let rest = target;
  let host: string | undefined;
  if (rest.charCodeAt(0) !== 47) {
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(rest);
    if (!m) return undefined;
    const authority = m[1]!;
    host = authority.slice(authority.lastIndexOf("@") + 1);
    rest = rest.slice(m[0].length);
    if (rest === "" || rest.charCodeAt(0) === 63) rest = `/${rest}`;
  }
  // A fragment is not part of a request-target; drop it as a client should have.
  const hash = rest.indexOf("#");
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf("?");
  return q < 0
    ? { path: rest, query: "", host }
    : { path: rest.slice(0, q), query: rest.slice(q + 1), host };
}

/**
 * Validate and normalise a Host value like nginx's ngx_http_validate_host: lowercased, without
 * the port and a trailing dot; IPv6 literals keep their brackets. Undefined (400) for a NUL, a
 * slash or backslash, a control character or space, or "..".
 */
export function normalizeHost(raw: string): string | undefined {
  let end = -1;
  let literal = false;
  let prevDot = -2;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c === 47 || c === 92) return undefined;
    if (end >= 0) continue;
    if (c === 46) {
      if (prevDot === i - 1) return undefined;
      prevDot = i;
    } else if (c === 58) {
      if (!literal) end = i;
    } else if (c === 91) {
      if (i === 0) literal = true;
    } else if (c === 93) {
      if (literal) end = i + 1;
    }
  }
  let host = end < 0 ? raw : raw.slice(0, end);
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (host.startsWith(".")) return undefined;
  return host.toLowerCase();
}
