/**
 * htpasswd entries for the basic-auth tests: made by the real `htpasswd` (Debian apache2-utils)
 * when it is installed, in each of its formats, plus fixed vectors (made by htpasswd 2.4 and
 * glibc's crypt, and nginx's `{SSHA}`/`{PLAIN}`) that hold without it. In CI htpasswd is
 * required, so the formats are checked against what the tool makes today.
 */
import { execFileSync } from "node:child_process";
import { findTool } from "../../bench/lib/tools.ts";

export interface Entry {
  user: string;
  password: string;
  format: string;
  line: string;
}

/** Fixed vectors: [format, user, password, line]. */
const fixed: [string, string, string, string][] = [
  ["apr1 (htpasswd -m)", "fixed-apr1", "pässword 1", "$apr1$ft7KujQ3$IFU08fy3WLzy18f/TX6Z5."],
  [
    "sha256-crypt (htpasswd -2)",
    "fixed-sha256",
    "pässword 1",
    "$5$rounds=5000$n3V0aesZgRMOLJSa$/rWz/D6xrdouVbsvaXr1Uf7RVogqDbKMIOJT3KuFeF9",
  ],
  [
    "sha512-crypt (htpasswd -5)",
    "fixed-sha512",
    "pässword 1",
    "$6$rounds=5000$YkEdVg7uHa1gFM25$P0ToamdrLD/lufoHbO34Sj8WNlGwuGrahx/X75uvaSvvVoeoRW25Uxg5pD6vjCSY6/zDWOypshq25UKyWcbsY/",
  ],
  ["sha1 (htpasswd -s)", "fixed-sha1", "pässword 1", "{SHA}wBFJYYjnh5eS5Eft5JORpd7Gkko="],
  [
    "bcrypt (htpasswd -B)",
    "fixed-bcrypt",
    "pässword 1",
    "$2y$05$.jQIQZzpmP.TuZtI2npIFej137C0au1qAmCwYv3sT6O70YXy/JNTu",
  ],
  [
    "sha256-crypt, default rounds (glibc)",
    "fixed-sha256-glibc",
    "Hello world!",
    "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
  ],
  ["md5-crypt $1$ (glibc)", "fixed-md5", "pass word", "$1$saltsalt$1K7dkhtbTNVUwUicA5kOT1"],
  // {SSHA}: base64(sha1("secret" + "salt") + "salt")
  ["ssha (nginx)", "fixed-ssha", "secret", "{SSHA}gVK8WC9YyFT1gMsQHTGCgT3sSv5zYWx0"],
  ["plain (nginx)", "fixed-plain", "open sesame", "{PLAIN}open sesame"],
];

/** htpasswd flags per format it makes. */
const generated: [string, string[]][] = [
  ["bcrypt", ["-B", "-C", "5"]],
  ["apr1", ["-m"]],
  ["sha256-crypt", ["-2", "-r", "1000"]],
  ["sha512-crypt", ["-5", "-r", "1000"]],
  ["sha1", ["-s"]],
];

export async function htpasswdLines(): Promise<{
  text: string;
  entries: Entry[];
  refused: Entry[];
}> {
  const entries: Entry[] = fixed.map(([format, user, password, hash]) => ({
    user,
    password,
    format,
    line: `${user}:${hash}`,
  }));
  const refused: Entry[] = [
    { user: "old-des", password: "password", format: "des", line: "old-des:qVoHNQj3q6QAg" },
  ];
  const tool = findTool("htpasswd");
  if (tool === undefined && process.env.CI === "true") {
    throw new Error("htpasswd is not installed (apt-get install -y apache2-utils): required in CI");
  }
  if (tool !== undefined) {
    for (const [format, flags] of generated) {
      const user = `gen-${format}`;
      const password = `p@ss ${format} ü`;
      const line = execFileSync(tool, ["-nb", ...flags, user, password], { encoding: "utf8" })
        .trim()
        .split("\n")[0]!;
      entries.push({ user, password, format: `${format} (htpasswd now)`, line });
    }
    const des = execFileSync(tool, ["-nbd", "gen-des", "password"], { encoding: "utf8" }).trim();
    refused.push({ user: "gen-des", password: "password", format: "des", line: des });
  }
  const text = `# made for tests\n\n${[...entries, ...refused].map((e) => e.line).join("\n")}\n`;
  return { text, entries, refused };
}
