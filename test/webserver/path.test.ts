/** `$uri` normalisation, target splitting and Host validation (src/webserver/path.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  normalizeHost,
  normalizePath,
  resolveDots,
  splitTarget,
} from "../../src/webserver/path.ts";

test("paths are decoded once, dot segments resolved, slashes merged", () => {
  const cases: [string, string | undefined][] = [
    ["/", "/"],
    ["/a/b", "/a/b"],
    ["/a//b///c", "/a/b/c"],
    ["/a/./b", "/a/b"],
    ["/a/b/../c", "/a/c"],
    ["/a/b/..", "/a/"],
    ["/a/.", "/a/"],
    ["/a/b/", "/a/b/"],
    ["/%61%62c", "/abc"],
    ["/a%2Fb", "/a/b"],
    ["/a/%2e%2e/b", "/b"],
    ["/a/%2E./b", "/b"],
    ["/a/..%2fb", "/b"],
    ["/%252e%252e/x", "/%2e%2e/x"],
    ["/caf%C3%A9", "/café"],
    ["/..a/b..", "/..a/b.."],
    ["/a\\..\\b", "/a\\..\\b"],
    // refused
    ["/..", undefined],
    ["/a/../..", undefined],
    ["/%2e%2e/etc/passwd", undefined],
    ["/a/%2e%2e%2f%2e%2e/x", undefined],
    ["/a%00b", undefined],
    ["/a%zz", undefined],
    ["/a%4", undefined],
    ["/%ff", undefined],
    ["/%C3", undefined],
    ["a/b", undefined],
  ];
  for (const [raw, want] of cases) assert.equal(normalizePath(raw), want, raw);
});

test("merge_slashes off keeps empty segments", () => {
  assert.equal(normalizePath("/a//b", false), "/a//b");
  assert.equal(normalizePath("/a//b/../c", false), "/a//c");
  assert.equal(resolveDots("/x/./y//z", true), "/x/y/z");
});

test("raw bytes of a UTF-8 path arrive as latin1 characters and are decoded", () => {
  const raw = Buffer.from("/café", "utf8").toString("latin1");
  assert.equal(normalizePath(raw), "/café");
});

test("request-targets: origin, absolute (its host wins), asterisk refused", () => {
  assert.deepEqual(splitTarget("/a?b=1&c"), { path: "/a", query: "b=1&c", host: undefined });
  assert.deepEqual(splitTarget("http://Example.com:8080/x?y"), {
    path: "/x",
    query: "y",
    host: "Example.com:8080",
  });
  assert.deepEqual(splitTarget("https://u:p@h.test"), { path: "/", query: "", host: "h.test" });
  assert.deepEqual(splitTarget("/a#frag"), { path: "/a", query: "", host: undefined });
  assert.equal(splitTarget("*"), undefined);
  assert.equal(splitTarget("example.com:443"), undefined);
});

test("Host: lowercased, port and trailing dot dropped; unsafe ones refused", () => {
  assert.equal(normalizeHost("Example.COM:8080"), "example.com");
  assert.equal(normalizeHost("example.com."), "example.com");
  assert.equal(normalizeHost("[::1]:8080"), "[::1]");
  assert.equal(normalizeHost(""), "");
  for (const bad of ["a..b", "a/b", "a\\b", "a b", "a\0b", ".a", "h:8/0"]) {
    assert.equal(normalizeHost(bad), undefined, bad);
  }
});
