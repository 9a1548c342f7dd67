/**
 * An htpasswd file: `user:hash` lines (`#` comments, blank lines and a trailing `:comment` are
 * allowed, as nginx reads them), re-read when it changes.
 *
 * The file is read once when the location is set up (a missing or unreadable file is a config
 * error naming it), then checked for changes at most once a second, without blocking: the check
 * happens in the background and the entries in memory go on serving meanwhile. A file that
 * becomes unreadable keeps the last good entries (and logs why). Every reload of the server
 * reads it afresh.
 *
 * Successful checks of slow hashes (bcrypt, SHA-crypt, md5crypt) are remembered, keyed by a
 * SHA-256 of a secret random to this process, the user, the stored hash and the password, so a
 * returning client costs one SHA-256 instead of a bcrypt run; a changed entry no longer matches
 * its key. (Caddy caches the same way.)
 *
 * The checking itself is a {@link PasswordTable}, which a user list written in a config (the
 * forward proxy's `forwardAuthUsers`) uses directly. These live in core, not in a web module,
 * because two modules check passwords (access's `authBasic`, the forward proxy's
 * `Proxy-Authorization`), as nginx keeps ngx_crypt.c in its core.
 */
import { hash as digest, randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import type { Logger } from "../logger.ts";
import type { BcryptVerifier } from "./bcrypt.ts";
import { isSlow, type Scheme, schemeOf, verifySync } from "./passwords.ts";

export type CheckResult = "ok" | "no such user" | "wrong password";

/** One usable entry: its hash and the scheme read from it once. */
export interface Entry {
  hash: string;
  scheme: Scheme;
  slow: boolean;
}

interface Parsed {
  users: Map<string, Entry>;
  warnings: string[];
}

/** Parse htpasswd text. Warnings name line numbers and users, never hashes. */
export function parseHtpasswd(text: string): Parsed {
  const users = new Map<string, Entry>();
  const warnings: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) {
      warnings.push(`line ${i + 1}: expected user:hash`);
      continue;
    }
    const user = line.slice(0, colon);
    const rest = line.slice(colon + 1);
    const end = rest.indexOf(":");
    const hash = end < 0 ? rest : rest.slice(0, end);
    const scheme = schemeOf(hash);
    if (scheme === "des-crypt") {
      warnings.push(
        `line ${i + 1} (user ${JSON.stringify(user)}): DES crypt hashes are refused (only 8 characters of a password count); make a new one with htpasswd -B`,
      );
      continue;
    }
    if (scheme === undefined) {
      warnings.push(`line ${i + 1} (user ${JSON.stringify(user)}): unknown hash format`);
      continue;
    }
    if (users.has(user))
      warnings.push(`line ${i + 1}: user ${JSON.stringify(user)} again; the first entry counts`);
    else users.set(user, { hash, scheme, slow: isSlow(scheme) });
  }
  return { users, warnings };
}

const CACHE_MAX = 1000;
const CHECK_EVERY_MS = 1000;
/** Prefixed to what is hashed into cache keys, so they cannot be computed outside this process. */
const cacheSecret = randomBytes(32).toString("hex");

/**
 * The entry for one stored hash, or a problem (DES crypt and unknown formats are refused, as
 * in files): for user lists written in a config rather than a file.
 */
export function entryOf(hash: string): Entry | string {
  const scheme = schemeOf(hash);
  if (scheme === "des-crypt") {
    return "DES crypt hashes are refused (only 8 characters of a password count); make a new one with htpasswd -B";
  }
  if (scheme === undefined)
    return "unknown hash format (expected bcrypt, $5$, $6$, $apr1$, {SHA}, {SSHA} or {PLAIN})";
  return { hash, scheme, slow: isSlow(scheme) };
}

/**
 * Users and their hashes, checked with the verification cache and the constant-cost answer for
 * unknown users. {@link Htpasswd} keeps one filled from a file; a user list from a config is one
 * as it is.
 */
export class PasswordTable {
  private readonly bcrypt: BcryptVerifier;
  private users = new Map<string, Entry>();
  private dummy: Entry = { hash: "{SHA}", scheme: "sha1", slow: false };
  private readonly verified = new Map<string, true>();

  constructor(bcrypt: BcryptVerifier, users: Map<string, Entry> = new Map()) {
    this.bcrypt = bcrypt;
    this.install(users);
  }

  /** Users currently known (for tests and status). */
  get size(): number {
    return this.users.size;
  }

  /** Whether `user` has an entry. */
  has(user: string): boolean {
    return this.users.has(user);
  }

  async check(user: string, password: string): Promise<CheckResult> {
    this.refresh();
    const entry = this.users.get(user);
    if (entry === undefined) {
      // Spend about what a real check of this file costs, so timing does not tell which
      // users exist.
      await this.verify(this.dummy, password).catch(() => false);
      return "no such user";
    }
    // One-shot hashing (~1.5 µs) rather than an HMAC object per request (~50 µs on Node 24):
    // the key only has to be unguessable and change with the entry, not to authenticate.
    const key = entry.slow
      ? digest("sha256", `${cacheSecret}\0${user}\0${entry.hash}\0${password}`, "base64")
      : undefined;
    if (key !== undefined && this.verified.has(key)) {
      this.verified.delete(key);
      this.verified.set(key, true);
      return "ok";
    }
    if (!(await this.verify(entry, password))) return "wrong password";
    if (key !== undefined) {
      if (this.verified.size >= CACHE_MAX) {
        this.verified.delete(this.verified.keys().next().value!);
      }
      this.verified.set(key, true);
    }
    return "ok";
  }

  /** Called before each check: a subclass re-reads its source here. */
  protected refresh(): void {}

  private verify(entry: Entry, password: string): Promise<boolean> {
    if (entry.scheme === "bcrypt") return this.bcrypt.verify(entry.hash, password);
    return Promise.resolve(verifySync(entry.hash, password, entry.scheme));
  }

  protected install(users: Map<string, Entry>): void {
    this.users = users;
    this.verified.clear();
    // A dummy hash of the same kind as the first entry, for unknown users.
    const first = users.values().next().value;
    if (first !== undefined) {
      const hash = first.hash.replace(/.$/, (c) => (c === "." ? "/" : "."));
      this.dummy = { ...first, hash };
    }
  }
}

export class Htpasswd extends PasswordTable {
  readonly path: string;
  private readonly logger: Logger;
  private signature = "";
  private lastCheck = 0;
  private checking = false;

  /** Reads the file now; throws an Error naming it when it cannot be read. */
  constructor(path: string, logger: Logger, bcrypt: BcryptVerifier) {
    super(bcrypt);
    this.path = path;
    this.logger = logger;
    let text: string;
    try {
      const st = statSync(path);
      text = readFileSync(path, "utf8");
      this.signature = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch (error) {
      throw new Error(`cannot read ${path}: ${(error as Error).message}`);
    }
    this.load(text);
    this.lastCheck = Date.now();
  }

  private load(text: string): void {
    const { users, warnings } = parseHtpasswd(text);
    for (const w of warnings) this.logger.warn(`htpasswd ${this.path}: ${w}`);
    this.install(users);
  }

  protected override refresh(): void {
    const now = Date.now();
    if (this.checking || now - this.lastCheck < CHECK_EVERY_MS) return;
    this.lastCheck = now;
    this.checking = true;
    void this.reload().finally(() => {
      this.checking = false;
    });
  }

  private async reload(): Promise<void> {
    try {
      const st = await stat(this.path);
      const sig = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (sig === this.signature) return;
      const text = await readFile(this.path, "utf8");
      this.signature = sig;
      this.load(text);
      this.logger.info("htpasswd file re-read", { file: this.path, users: this.size });
    } catch (error) {
      if (this.signature !== "gone") {
        this.logger.error("cannot re-read the htpasswd file; keeping its last entries", {
          file: this.path,
          error: (error as Error).message,
        });
      }
      this.signature = "gone";
    }
  }
}
