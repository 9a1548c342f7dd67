/**
 * Password hashes as htpasswd files hold them, verified with node:crypto (bcrypt, which Node's
 * crypto lacks, runs in a thread: bcrypt.ts).
 *
 * - `$apr1$` (Apache's MD5 variant, htpasswd's default) and `$1$` (the same algorithm under
 *   glibc's prefix): Poul-Henning Kamp's md5crypt, 1000 rounds of MD5.
 * - `$5$` / `$6$`: SHA-256/SHA-512-crypt (Ulrich Drepper's spec, htpasswd -2 / -5), with
 *   `rounds=N$` (default 5000).
 * - `{SHA}`: base64 SHA-1 of the password (htpasswd -s; unsalted, weak but common).
 * - `{SSHA}`: base64 of SHA-1(password + salt) + salt (nginx reads it; LDAP's form).
 * - `{PLAIN}`: the password itself (nginx's; for tests only).
 * - `$2y$` / `$2a$` / `$2b$`: bcrypt.
 * - 13-character DES crypt is refused: it reads only the first 8 characters of a password and
 *   has a 12-bit salt, so accepting it would accept `password123` for `password`.
 *
 * Every comparison of a computed hash with a stored one is constant-time (timingSafeEqual).
 */
import { createHash, hash as oneShot, timingSafeEqual } from "node:crypto";

export type Scheme =
  | "bcrypt"
  | "sha512-crypt"
  | "sha256-crypt"
  | "md5-crypt"
  | "sha1"
  | "ssha"
  | "plain";

/** The scheme of a stored hash, `des-crypt` (refused), or undefined when unknown. */
export function schemeOf(hash: string): Scheme | "des-crypt" | undefined {
  if (/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) return "bcrypt";
  if (hash.startsWith("$6$")) return "sha512-crypt";
  if (hash.startsWith("$5$")) return "sha256-crypt";
  if (hash.startsWith("$apr1$") || hash.startsWith("$1$")) return "md5-crypt";
  if (hash.startsWith("{SHA}")) return "sha1";
  if (hash.startsWith("{SSHA}")) return "ssha";
  if (hash.startsWith("{PLAIN}")) return "plain";
  if (/^[./A-Za-z0-9]{13}$/.test(hash)) return "des-crypt";
  return undefined;
}

/** Constant-time equality of two strings (lengths may differ: compared as SHA-256 digests). */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const da = oneShot("sha256", a, "buffer");
  const db = oneShot("sha256", b, "buffer");
  return timingSafeEqual(da, db) && Buffer.byteLength(a) === Buffer.byteLength(b);
}

/**
 * Constant-time equality of a computed digest with a stored one. Only the length can differ
 * (a malformed stored hash), and it is no secret: the contents are compared in constant time.
 */
function digestEqual(computed: string | Buffer, stored: string | Buffer): boolean {
  const a = typeof computed === "string" ? Buffer.from(computed) : computed;
  const b = typeof stored === "string" ? Buffer.from(stored) : stored;
  return a.length === b.length && timingSafeEqual(a, b);
}

const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function to64(v: number, n: number): string {
  let out = "";
  for (let i = 0; i < n; i++) {
    out += itoa64[v & 0x3f];
    v >>>= 6;
  }
  return out;
}

/** md5crypt: `magic` is `$apr1$` or `$1$`; returns the whole hash string. */
export function md5Crypt(password: string, salt: string, magic: string): string {
  const pw = Buffer.from(password, "utf8");
  const s = Buffer.from(salt.slice(0, 8), "utf8");
  const md5 = () => createHash("md5");
  const alt = md5().update(pw).update(s).update(pw).digest();
  const ctx = md5().update(pw).update(magic).update(s);
  for (let left = pw.length; left > 0; left -= 16) ctx.update(alt.subarray(0, Math.min(16, left)));
  const zero = Buffer.from([0]);
  const first = pw.subarray(0, 1);
  for (let i = pw.length; i > 0; i >>= 1) ctx.update(i & 1 ? zero : first);
  let fin = ctx.digest();
  for (let i = 0; i < 1000; i++) {
    const c = md5();
    c.update(i & 1 ? pw : fin);
    if (i % 3) c.update(s);
    if (i % 7) c.update(pw);
    c.update(i & 1 ? fin : pw);
    fin = c.digest();
  }
  const b = fin;
  const enc =
    to64((b[0]! << 16) | (b[6]! << 8) | b[12]!, 4) +
    to64((b[1]! << 16) | (b[7]! << 8) | b[13]!, 4) +
    to64((b[2]! << 16) | (b[8]! << 8) | b[14]!, 4) +
    to64((b[3]! << 16) | (b[9]! << 8) | b[15]!, 4) +
    to64((b[4]! << 16) | (b[10]! << 8) | b[5]!, 4) +
    to64(b[11]!, 2);
  return `${magic}${s.toString("utf8")}$${enc}`;
}

// The byte order of SHA-crypt's final encoding, in groups of three (Drepper's spec).
const sha256Order = [
  [0, 10, 20],
  [21, 1, 11],
  [12, 22, 2],
  [3, 13, 23],
  [24, 4, 14],
  [15, 25, 5],
  [6, 16, 26],
  [27, 7, 17],
  [18, 28, 8],
  [9, 19, 29],
];
const sha512Order = [
  [0, 21, 42],
  [22, 43, 1],
  [44, 2, 23],
  [3, 24, 45],
  [25, 46, 4],
  [47, 5, 26],
  [6, 27, 48],
  [28, 49, 7],
  [50, 8, 29],
  [9, 30, 51],
  [31, 52, 10],
  [53, 11, 32],
  [12, 33, 54],
  [34, 55, 13],
  [56, 14, 35],
  [15, 36, 57],
  [37, 58, 16],
  [59, 17, 38],
  [18, 39, 60],
  [40, 61, 19],
  [62, 20, 41],
];

const ROUNDS_DEFAULT = 5000;

/** The parts of a `$5$`/`$6$` hash, or undefined when malformed. */
function parseShaCrypt(
  hash: string,
): { rounds: number; explicit: boolean; salt: string; digest: string } | undefined {
  const m = /^\$[56]\$(?:rounds=(\d+)\$)?([^$]{0,16})\$([./A-Za-z0-9]+)$/.exec(hash);
  if (!m) return undefined;
  const rounds =
    m[1] === undefined ? ROUNDS_DEFAULT : Math.min(999_999_999, Math.max(1000, Number(m[1])));
  return { rounds, explicit: m[1] !== undefined, salt: m[2]!, digest: m[3]! };
}

/** SHA-crypt's encoded digest (the part after the last `$`). */
export function shaCryptDigest(
  password: string,
  salt: string,
  rounds: number,
  bits: 256 | 512,
): string {
  const algo = bits === 256 ? "sha256" : "sha512";
  const size = bits / 8;
  const P = Buffer.from(password, "utf8");
  const S = Buffer.from(salt.slice(0, 16), "utf8");
  const H = () => createHash(algo);
  const B = H().update(P).update(S).update(P).digest();
  const a = H().update(P).update(S);
  let n = P.length;
  for (; n > size; n -= size) a.update(B);
  a.update(B.subarray(0, n));
  for (let i = P.length; i > 0; i >>= 1) a.update(i & 1 ? B : P);
  const A = a.digest();
  const dp = H();
  for (let i = 0; i < P.length; i++) dp.update(P);
  const DP = dp.digest();
  const pSeq = Buffer.alloc(P.length);
  for (let i = 0; i < P.length; i += size) DP.copy(pSeq, i, 0, Math.min(size, P.length - i));
  const ds = H();
  for (let i = 0; i < 16 + A[0]!; i++) ds.update(S);
  const DS = ds.digest();
  const sSeq = Buffer.alloc(S.length);
  for (let i = 0; i < S.length; i += size) DS.copy(sSeq, i, 0, Math.min(size, S.length - i));
  let C = A;
  for (let i = 0; i < rounds; i++) {
    const c = H();
    c.update(i & 1 ? pSeq : C);
    if (i % 3) c.update(sSeq);
    if (i % 7) c.update(pSeq);
    c.update(i & 1 ? C : pSeq);
    C = c.digest();
  }
  let out = "";
  for (const [x, y, z] of bits === 256 ? sha256Order : sha512Order) {
    out += to64((C[x!]! << 16) | (C[y!]! << 8) | C[z!]!, 4);
  }
  out += bits === 256 ? to64((C[31]! << 8) | C[30]!, 3) : to64(C[63]!, 2);
  return out;
}

/** Whether `password` matches `hash`, for every scheme but bcrypt (async, in bcrypt.ts). */
export function verifySync(
  hash: string,
  password: string,
  scheme: ReturnType<typeof schemeOf> = schemeOf(hash),
): boolean {
  switch (scheme) {
    case "md5-crypt": {
      const magic = hash.startsWith("$apr1$") ? "$apr1$" : "$1$";
      const rest = hash.slice(magic.length);
      const dollar = rest.indexOf("$");
      if (dollar < 0) return false;
      return digestEqual(md5Crypt(password, rest.slice(0, dollar), magic), hash);
    }
    case "sha256-crypt":
    case "sha512-crypt": {
      const p = parseShaCrypt(hash);
      if (!p) return false;
      const bits = hash.startsWith("$5$") ? 256 : 512;
      return digestEqual(shaCryptDigest(password, p.salt, p.rounds, bits), p.digest);
    }
    case "sha1":
      return digestEqual(oneShot("sha1", password, "base64"), hash.slice(5));
    case "ssha": {
      const raw = Buffer.from(hash.slice(6), "base64");
      if (raw.length <= 20) return false;
      const salt = raw.subarray(20);
      const digest = createHash("sha1").update(password, "utf8").update(salt).digest();
      return digestEqual(digest, raw.subarray(0, 20));
    }
    case "plain":
      // The password's length is a secret here: compare digests.
      return safeEqual(password, hash.slice(7));
    default:
      return false;
  }
}

/** How expensive a scheme is to check (for the verification cache: only slow ones are cached). */
export function isSlow(s: ReturnType<typeof schemeOf>): boolean {
  return s === "bcrypt" || s === "sha256-crypt" || s === "sha512-crypt" || s === "md5-crypt";
}
