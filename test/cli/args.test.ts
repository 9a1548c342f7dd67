/** The schema-driven argv parser, on a made-up flag table covering every flag kind. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseArgv, UsageError } from "../../src/cli/args.ts";
import type { FlagSpec } from "../../src/config/flags.ts";
import { setting } from "../../src/config/setting.ts";
import { boolean, duration, list, listen } from "../../src/config/types.ts";

const flags: FlagSpec[] = [
  {
    long: "reuse-port",
    section: "web",
    key: "reusePort",
    setting: setting({ type: boolean(), default: false, doc: "Reuse." }),
  },
  {
    long: "bind",
    short: "b",
    section: "app",
    key: "bind",
    setting: setting({ type: list(listen()), default: [], doc: "Bind." }),
  },
  {
    long: "app-timeout",
    section: "app",
    key: "timeout",
    setting: setting({ type: duration(), default: 30, short: "t", doc: "Timeout." }),
  },
  {
    long: "web-timeout",
    section: "web",
    key: "timeout",
    setting: setting({ type: duration(), default: 30, short: "t", doc: "Timeout." }),
  },
];
const meta = [
  { long: "config", short: "c", metavar: "FILE", doc: "File." },
  { long: "help", short: "h", doc: "Help." },
];

test("values, inline values, repeats, booleans, positionals and --", () => {
  const r = parseArgv(
    [
      "app.ts",
      "-b",
      ":1",
      "--bind=:2",
      "-bunix:/s",
      "--reuse-port",
      "--no-reuse-port",
      "--app-timeout=5s",
      "-c",
      "x.yaml",
      "--",
      "--not-a-flag",
    ],
    flags,
    meta,
  );
  assert.deepEqual(r.positionals, ["app.ts", "--not-a-flag"]);
  assert.deepEqual(Object.fromEntries(r.meta), { config: "x.yaml" });
  assert.deepEqual(
    r.overrides.map((o) => [o.source, `${o.section}.${o.key}`, o.value]),
    [
      ["--reuse-port", "web.reusePort", true],
      ["--no-reuse-port", "web.reusePort", false],
      ["--app-timeout", "app.timeout", "5s"],
      ["-b", "app.bind", [":1", ":2", "unix:/s"]],
    ],
  );
});

test("mistakes are usage errors with a suggestion", () => {
  const message = (argv: string[]) => {
    try {
      parseArgv(argv, flags, meta);
    } catch (err) {
      assert.ok(err instanceof UsageError);
      return err.message;
    }
    assert.fail("no error");
  };
  assert.equal(
    message(["--bnid", "x"]),
    'unknown flag "--bnid"; did you mean "--bind"? (see --help)',
  );
  assert.equal(
    message(["--timeout", "1"]),
    'flag "--timeout" is ambiguous here; use "--app-timeout" or "--web-timeout"',
  );
  assert.equal(
    message(["-t", "1"]),
    'flag "-t" is ambiguous here; use "--app-timeout" or "--web-timeout"',
  );
  assert.equal(message(["--bind"]), 'flag "--bind" needs a value');
  assert.equal(message(["--help=yes"]), 'flag "--help" takes no value');
  assert.equal(message(["-z"]), 'unknown flag "-z" (see --help)');
});
