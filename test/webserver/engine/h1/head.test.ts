/**
 * What the engine remembers between responses to spend less per request (head.ts): the fields
 * found valid, the last head written. Each memory must never let through what it would have
 * refused, nor write a head that is not the response's; these fail when it does.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  checkField,
  contentLengthLine,
  LastHead,
} from "../../../../src/webserver/engine/h1/head.ts";
import { Fields, type WebResponse } from "../../../../src/webserver/exchange.ts";
import { exchange, header, startEngine } from "./helpers.ts";

test("checkField: a name found valid with one value still refuses a value with CR, LF or NUL", () => {
  checkField("x-memo", "fine");
  checkField("x-memo", "fine");
  assert.throws(() => checkField("x-memo", "a\r\nset-cookie: x=1"), /invalid characters/);
  assert.throws(() => checkField("x-memo", "a\0b"), /invalid characters/);
  assert.throws(() => checkField("x-memo", "a\u0100"), /invalid characters/);
  // The last valid value is remembered, not the refused one.
  checkField("x-memo", "fine");
  // A name that is not a token is refused every time, whatever its value.
  assert.throws(() => checkField("bad name", "v"), /invalid response field name/);
  assert.throws(() => checkField("bad name", "v"), /invalid response field name/);
});

test("contentLengthLine: the line of the length asked for, whatever was asked before", () => {
  assert.equal(contentLengthLine(5), "content-length: 5\r\n");
  assert.equal(contentLengthLine(5), "content-length: 5\r\n");
  assert.equal(contentLengthLine(0), "content-length: 0\r\n");
  assert.equal(contentLengthLine(12345678901), "content-length: 12345678901\r\n");
  assert.equal(contentLengthLine(5), "content-length: 5\r\n");
  assert.equal(contentLengthLine(50), "content-length: 50\r\n");
});

test("LastHead: found only for the same status line, fields, date, server and framing", () => {
  const c = new LastHead();
  const fields = ["content-type", "text/plain", "etag", '"a"'];
  const key = ["HTTP/1.1 200 OK\r\n", "date: x\r\n", "server: b\r\n", "content-length: 5\r\n"];
  assert.equal(c.find(key[0]!, fields, key[1]!, key[2]!, key[3]!), undefined);
  c.store(key[0]!, fields, key[1]!, key[2]!, key[3]!, "HEAD-TEXT");
  assert.equal(c.find(key[0]!, fields, key[1]!, key[2]!, key[3]!), "HEAD-TEXT");
  // Equal strings that are other objects match too.
  assert.equal(
    c.find(
      key[0]!,
      [...fields].map((f) => ` ${f}`.slice(1)),
      key[1]!,
      key[2]!,
      key[3]!,
    ),
    "HEAD-TEXT",
  );
  assert.deepEqual(c.bytes(), Buffer.from("HEAD-TEXT", "latin1"));
  assert.equal(c.find("HTTP/1.1 404 Not Found\r\n", fields, key[1]!, key[2]!, key[3]!), undefined);
  assert.equal(c.find(key[0]!, fields, "date: y\r\n", key[2]!, key[3]!), undefined);
  assert.equal(c.find(key[0]!, fields, key[1]!, "", key[3]!), undefined);
  assert.equal(c.find(key[0]!, fields, key[1]!, key[2]!, "content-length: 6\r\n"), undefined);
  assert.equal(c.find(key[0]!, fields.slice(0, 2), key[1]!, key[2]!, key[3]!), undefined);
  // The list stored was copied: changing it afterwards (a module's Fields reused) is a miss.
  fields[3] = '"b"';
  assert.equal(c.find(key[0]!, fields, key[1]!, key[2]!, key[3]!), undefined);
});

test("the same head again is reused, a changed field, status, length or keep-alive is not", async (t) => {
  // Responses made of the same strings each time (as the static module's from its cache), then
  // one changed part at a time, the unchanged again, and a value that must be refused.
  const type = "text/plain";
  const etag = '"v1"';
  const answers: Record<string, () => WebResponse> = {
    "/same": () => ({
      status: 200,
      fields: new Fields(["content-type", type, "etag", etag]),
      body: { kind: "bytes", data: Buffer.from("hello") },
    }),
    "/etag": () => ({
      status: 200,
      fields: new Fields(["content-type", type, "etag", '"v2"']),
      body: { kind: "bytes", data: Buffer.from("hello") },
    }),
    "/status": () => ({
      status: 201,
      fields: new Fields(["content-type", type, "etag", etag]),
      body: { kind: "bytes", data: Buffer.from("hello") },
    }),
    "/length": () => ({
      status: 200,
      fields: new Fields(["content-type", type, "etag", etag]),
      body: { kind: "bytes", data: "hello!" },
    }),
    "/empty": () => ({
      status: 200,
      fields: new Fields(["content-type", type, "etag", etag]),
      body: { kind: "empty" },
    }),
    "/evil": () => ({
      status: 200,
      fields: new Fields(["content-type", type, "etag", `${etag}\r\nset-cookie: stolen=1`]),
      body: { kind: "bytes", data: Buffer.from("hello") },
    }),
  };
  const { port } = await startEngine(t, { handler: (req) => answers[req.path]!() });
  const paths = ["/same", "/same", "/etag", "/same", "/status", "/same", "/length", "/same"];
  paths.push("/same", "/empty", "/empty", "/same");
  const x = await exchange(
    port,
    paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: a\r\n\r\n`),
    { responses: paths.length },
  );
  assert.equal(x.error, undefined);
  const got = x.responses.map(
    (m) => `${m.status} ${header(m, "etag")} ${header(m, "content-length")} ${m.body.toString()}`,
  );
  const same = '200 "v1" 5 hello';
  assert.deepEqual(got, [
    same,
    same,
    '200 "v2" 5 hello',
    same,
    '201 "v1" 5 hello',
    same,
    '200 "v1" 6 hello!',
    same,
    same,
    '200 "v1" 0 ',
    '200 "v1" 0 ',
    same,
  ]);
  // A head that differs from the last one only by a value that must be refused is refused.
  const y = await exchange(
    port,
    ["/same", "/same", "/evil"].map((p) => `GET ${p} HTTP/1.1\r\nHost: a\r\n\r\n`),
    {
      responses: 3,
    },
  );
  assert.deepEqual(
    y.responses.map((m) => m.status),
    [200, 200, 500],
  );
  assert.doesNotMatch(y.raw.toString(), /stolen/);
  // HTTP/1.0 and Connection: close change the head's connection line.
  const z = await exchange(port, "GET /same HTTP/1.0\r\n\r\n", { responses: 1 });
  assert.equal(header(z.responses[0], "connection"), "close");
  const w = await exchange(port, "GET /same HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", {
    responses: 1,
  });
  assert.equal(header(w.responses[0], "connection"), "keep-alive");
  const v = await exchange(port, "GET /same HTTP/1.1\r\nHost: a\r\n\r\n", { responses: 1 });
  assert.equal(header(v.responses[0], "connection"), undefined);
});

test("the path and host normalised last are reused only for the same raw path, setting and host", async (t) => {
  const echo = (req: { path: string; host: string }): WebResponse => ({
    status: 200,
    fields: new Fields(),
    body: { kind: "bytes", data: `${req.path} ${req.host}` },
  });
  const merging = await startEngine(t, { handler: echo, options: { mergeSlashes: true } });
  const keeping = await startEngine(t, { handler: echo, options: { mergeSlashes: false } });
  const get = async (port: number, target: string, host: string) =>
    (
      await exchange(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`, { responses: 1 })
    ).responses[0]!.body.toString();
  assert.equal(await get(merging.port, "/a//b", "A.example"), "/a/b a.example");
  assert.equal(await get(keeping.port, "/a//b", "A.example"), "/a//b a.example");
  assert.equal(await get(merging.port, "/a//b", "A.example:8080"), "/a/b a.example");
  assert.equal(await get(merging.port, "/a//c", "b.example"), "/a/c b.example");
  const bad = await exchange(merging.port, "GET /a//c HTTP/1.1\r\nHost: b..example\r\n\r\n", {
    responses: 1,
  });
  assert.equal(bad.responses[0]!.status, 400);
});

test("a short text after the same head: the bytes made for one text are never sent for another", async (t) => {
  const c = new LastHead();
  c.store("S", [], "D", "V", "F", "HEAD\r\n\r\n");
  assert.equal(c.find("S", [], "D", "V", "F"), "HEAD\r\n\r\n");
  assert.equal(c.whole("one").toString("latin1"), "HEAD\r\n\r\none");
  assert.equal(c.whole("two").toString("latin1"), "HEAD\r\n\r\ntwo");
  assert.equal(c.whole("two"), c.whole("two"), "the same text: the same bytes");
  c.store("S", [], "D", "V", "F", "OTHER\r\n\r\n");
  assert.equal(c.whole("two").toString("latin1"), "OTHER\r\n\r\ntwo");

  // Through the engine: texts of the same length, same head, alternating.
  const texts: Record<string, string> = { "/1": "one", "/2": "two", "/3": "six" };
  const { port } = await startEngine(t, {
    handler: (req) => ({
      status: 200,
      fields: new Fields(["content-type", "text/plain"]),
      body: { kind: "bytes", data: texts[req.path]! },
    }),
  });
  const paths = ["/1", "/1", "/2", "/2", "/1", "/3", "/3", "/2"];
  const x = await exchange(
    port,
    paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: a\r\n\r\n`),
    { responses: paths.length },
  );
  assert.deepEqual(
    x.responses.map((m) => m.body.toString()),
    paths.map((p) => texts[p]),
  );
});

test("a shared body after the same head: the bytes made for one Buffer are never sent for another", async (t) => {
  const files: Record<string, Buffer> = {
    "/a": Buffer.from("aaaa"),
    "/b": Buffer.from("bbbb"),
  };
  const own = Buffer.from("cccc");
  const { port } = await startEngine(t, {
    handler: (req) => {
      if (req.path === "/own") {
        // Not shared: a Buffer its module changes between responses is sent as it is now.
        own[0] = own[0] === 0x63 ? 0x64 : 0x63;
        return { status: 200, fields: new Fields(), body: { kind: "bytes", data: own } };
      }
      return {
        status: 200,
        fields: new Fields(),
        body: { kind: "bytes", data: files[req.path]!, shared: true },
      };
    },
  });
  const paths = ["/a", "/a", "/b", "/b", "/a", "/own", "/own", "/own"];
  const x = await exchange(
    port,
    paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: a\r\n\r\n`),
    { responses: paths.length },
  );
  assert.deepEqual(
    x.responses.map((m) => m.body.toString()),
    ["aaaa", "aaaa", "bbbb", "bbbb", "aaaa", "dccc", "cccc", "dccc"],
  );
});
