/**
 * Byte classes of the HTTP/1.1 grammar (RFC 9110 §5.6, RFC 9112, RFC 3986), as 256-entry tables
 * so the parser tests a byte with one load instead of a chain of comparisons.
 */

function table(accept: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = accept(c) ? 1 : 0;
  return t;
}

const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/** tchar: `!#$%&'*+-.^_\`|~`, DIGIT, ALPHA (RFC 9110 §5.6.2). */
export const TOKEN = table(
  (c) => isAlpha(c) || isDigit(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)),
);

/** field-vchar / SP / HTAB: VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5). No CR, LF, NUL, CTL, DEL. */
export const FIELD_VALUE = table((c) => c === 0x09 || (c >= 0x20 && c !== 0x7f));

/**
 * Bytes of a request-target. RFC 3986 allows unreserved, sub-delims, `:@/?` and `%`; we also take
 * the visible ASCII that clients send unescaped in practice (`"<>\^\`{|}`), as nginx does, since
 * none of them can change where the target ends. Never: CTL, SP, DEL, `#` (a fragment is not
 * part of a request), bytes above 0x7f (clients percent-encode them).
 */
export const TARGET = table((c) => c > 0x20 && c < 0x7f && c !== 0x23);

/** reg-name / IPv4 / port characters of a Host (unreserved, pct-encoded, sub-delims, `:`). */
export const HOST = table(
  (c) => isAlpha(c) || isDigit(c) || "-._~%!$&'()*+,;=:".includes(String.fromCharCode(c)),
);

/** Inside an IP-literal `[...]`: hex digits, `:`, `.`, and IPvFuture's `v` plus unreserved/sub-delims. */
export const IP_LITERAL = table(
  (c) => isAlpha(c) || isDigit(c) || "-._~!$&'()*+,;=:".includes(String.fromCharCode(c)),
);

/** Scheme characters after the first ALPHA (RFC 3986 §3.1). */
export const SCHEME = table(
  (c) => isAlpha(c) || isDigit(c) || c === 0x2b || c === 0x2d || c === 0x2e,
);

/** HEXDIG -> value, or 255. */
export const HEX = (() => {
  const t = new Uint8Array(256).fill(255);
  for (let c = 0; c < 10; c++) t[0x30 + c] = c;
  for (let c = 0; c < 6; c++) {
    t[0x41 + c] = 10 + c;
    t[0x61 + c] = 10 + c;
  }
  return t;
})();

/** qdtext of a quoted-string: HTAB, SP, `!`, `#`-`[`, `]`-`~`, obs-text (RFC 9110 §5.6.4). */
export const QDTEXT = table(
  (c) =>
    c === 0x09 ||
    c === 0x20 ||
    c === 0x21 ||
    (c >= 0x23 && c <= 0x5b) ||
    (c >= 0x5d && c <= 0x7e) ||
    c >= 0x80,
);

/** What may follow a backslash in a quoted-pair: HTAB, SP, VCHAR, obs-text. */
export const QUOTED_PAIR = table((c) => c === 0x09 || c === 0x20 || (c > 0x20 && c !== 0x7f));

/** Reason-phrase bytes: HTAB, SP, VCHAR, obs-text. */
export const REASON = QUOTED_PAIR;
