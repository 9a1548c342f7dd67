/**
 * The HTTP Basic authentication scheme (RFC 7617): the credentials of an `Authorization` or
 * `Proxy-Authorization` field value, and the challenge that asks for them.
 */

/** `Basic <base64 user:password>` -> the pair, or undefined. */
export function parseBasic(
  header: string | undefined,
): { user: string; password: string } | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** The challenge (`WWW-Authenticate` or `Proxy-Authenticate` value) for `realm`. */
export function basicChallenge(realm: string): string {
  return `Basic realm="${realm}", charset="UTF-8"`;
}
