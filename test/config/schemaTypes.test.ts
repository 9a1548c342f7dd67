/**
 * The config types are derived from the declarations: these assignments are checked by
 * `tsc --noEmit` (part of `npm test`); each `@ts-expect-error` fails the type check if the
 * mistake it marks stops being an error. The runtime test checks the same shapes validate.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Config, UserConfig } from "../../src/config/schema.ts";
import {
  field,
  type InOf,
  type Issue,
  invalid,
  list,
  listen,
  type OutOf,
  object,
  optional,
  string,
} from "../../src/config/types.ts";

const location = object({
  root: field({ type: string(), doc: "Document root." }),
  index: field({ type: string(), default: "index.html", doc: "Index file." }),
  alias: field({ type: optional(string()), doc: "Alias." }),
});
const servers = list(
  object({
    listen: field({ type: list(listen()), doc: "Addresses." }),
    locations: field({ type: list(location), default: [], doc: "Locations." }),
  }),
);

export function typeChecks(c: Config, so: OutOf<typeof servers>): unknown[] {
  const workers: number = c.app.workers;
  const level: "debug" | "info" | "warn" | "error" | "fatal" = c.log.level;
  const pidfile: string | undefined = c.app.pidfile;
  const listens: string[] = c.web.listen;
  const mode: "process" | "thread" = c.web.workerMode;
  const user: UserConfig = { app: { timeout: "30s", workers: "auto", bind: ":8000" } };
  // @ts-expect-error not a level
  const badLevel: UserConfig = { log: { level: "loud" } };
  // @ts-expect-error unknown key
  const badKey: UserConfig = { app: { wrokers: 2 } };
  const nested: InOf<typeof servers> = [{ listen: ["a"], locations: [{ root: "/x" }] }];
  // @ts-expect-error root is required
  const noRoot: InOf<typeof servers> = [{ listen: ["a"], locations: [{ index: "i" }] }];
  const root: string = so[0]!.locations[0]!.root;
  const alias: string | undefined = so[0]!.locations[0]!.alias;
  // @ts-expect-error root is a string
  const notNumber: number = so[0]!.locations[0]!.root;
  return [
    workers,
    level,
    pidfile,
    listens,
    mode,
    user,
    badLevel,
    badKey,
    nested,
    noRoot,
    root,
    alias,
    notNumber,
  ];
}

test("nested objects validate with key paths into lists", () => {
  const issues: Issue[] = [];
  const r = servers.check(
    [
      { listen: [":80"], locations: [{ root: "/a" }] },
      { listen: [":81", "bad:port"], locations: [{ index: "x", rot: "/b" }] },
    ],
    ["web", "servers"],
    issues,
  );
  assert.equal(r, invalid);
  const lines = issues.map((i) => `${i.path.join("/")}: ${i.message}`);
  assert.deepEqual(lines, [
    'web/servers/1/listen/1: expected a listen address ("host:port", ":port", "[::1]:port", "port" or "unix:/path"), found "bad:port"',
    'web/servers/1/locations/0/rot: unknown setting; did you mean "root"?',
    "web/servers/1/locations/0/root: required; expected a non-empty string",
  ]);
  const ok = servers.check([{ listen: ":80" }], ["web", "servers"], []);
  assert.deepEqual(ok, [{ listen: [":80"], locations: [] }]);
});
