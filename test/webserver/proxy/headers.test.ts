/**
 * The client's fields from an upstream's (src/webserver/proxy/headers.ts): the memo of the last
 * field list per plan must never give a list other than the one the plan makes of these fields.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultForwardedHeaders } from "../../../src/config/settings/web/proxy.ts";
import { Fields, type WebRequest } from "../../../src/webserver/exchange.ts";
import {
  type CompiledReplace,
  clientResponseFields,
  type RequestHeaderPlan,
  type ResponseHeaderPlan,
  upstreamRequestFields,
} from "../../../src/webserver/proxy/headers.ts";

function constant(to: string): CompiledReplace["to"] {
  return Object.assign(() => to, { constant: to, usesCaptures: false }) as CompiledReplace["to"];
}

function plan(extra: Partial<ResponseHeaderPlan> = {}): ResponseHeaderPlan {
  return {
    hide: new Set(),
    pass: new Set(),
    redirect: [],
    cookieDomain: [],
    cookiePath: [],
    ...extra,
  };
}

const req = {} as WebRequest;
const of = (p: ResponseHeaderPlan, fields: string[]) => {
  const h = clientResponseFields({ headers: {}, fields }, p, req);
  return { ...h, fields: [...h.fields.list] };
};

test("the last upstream field list per plan: the same list makes the same fields, any change its own", () => {
  const p = plan();
  const a = [
    "content-type",
    "text/plain",
    "content-length",
    "5",
    "date",
    "x",
    "connection",
    "keep-alive, x-hop",
    "x-hop",
    "1",
    "x-accel-buffering",
    "NO",
    "x-app",
    "1",
  ];
  const want = {
    fields: ["content-type", "text/plain", "x-app", "1"],
    length: 5,
    contentType: "text/plain",
    accelBuffering: "no",
    accelRedirect: undefined,
  };
  assert.deepEqual(of(p, a), want);
  assert.deepEqual(of(p, a), want);
  assert.deepEqual(of(p, a.slice()), want);
  // The result is the caller's: changing it changes neither the next nor the memo.
  const mine = clientResponseFields({ headers: {}, fields: a }, p, req);
  mine.fields.set("x-app", "changed");
  mine.fields.append("set-cookie", "s=1");
  assert.deepEqual(of(p, a), want);
  // One value different, one field more or less: its own fields.
  const b = a.slice();
  b[13] = "2";
  assert.deepEqual(of(p, b).fields, ["content-type", "text/plain", "x-app", "2"]);
  b[3] = "7";
  assert.equal(of(p, b).length, 7);
  assert.deepEqual(of(p, a.slice(0, 12)).fields, ["content-type", "text/plain"]);
  assert.equal(of(p, a.slice(0, 2)).length, undefined);
  assert.deepEqual(of(p, a), want);
  // A list changed in place after it was given is not the same list.
  const c = a.slice();
  of(p, c);
  c[1] = "text/html";
  assert.equal(of(p, c).contentType, "text/html");
  assert.deepEqual(of(p, c).fields.slice(0, 2), ["content-type", "text/html"]);
  // The result of the call that was remembered is the caller's too.
  const q = plan();
  const first = clientResponseFields({ headers: {}, fields: a }, q, req);
  first.fields.set("x-app", "changed");
  assert.deepEqual(of(q, a), want);
  // Only a name different (the first element), or only the length: remembered, then changed.
  const named = ["content-type", "a/b", "content-length", "9"];
  assert.equal(of(q, named).length, 9);
  assert.equal(of(q, named).length, 9);
  assert.deepEqual(of(q, ["x-type", "a/b", "content-length", "9"]).fields, ["x-type", "a/b"]);
  assert.equal(of(q, ["x-type", "a/b", "content-length", "9"]).contentType, undefined);
  // Another plan, the same list: its own rules (hidden here).
  const hiding = plan({ hide: new Set(["x-app"]) });
  assert.deepEqual(of(hiding, a).fields, ["content-type", "text/plain"]);
  assert.deepEqual(of(p, a), want);
});

test("fields rewritten per request are never taken from the memo", () => {
  let host = "one";
  const to = Object.assign(() => `http://${host}/`, {
    constant: undefined,
    usesCaptures: false,
  }) as CompiledReplace["to"];
  const p = plan({
    redirect: [
      {
        rule: { from: "http://up/", to: "", regex: false, caseless: true },
        regex: undefined,
        to,
        caseless: true,
      },
    ],
    cookiePath: [
      {
        rule: { from: "/up", to: "/x", regex: false, caseless: false },
        regex: undefined,
        to: constant("/x"),
        caseless: false,
      },
    ],
  });
  const loc = ["location", "http://up/a"];
  assert.deepEqual(of(p, loc).fields, ["location", "http://one/a"]);
  host = "two";
  assert.deepEqual(of(p, loc).fields, ["location", "http://two/a"]);
  const cookie = ["set-cookie", "a=1; Path=/up/b"];
  assert.deepEqual(of(p, cookie).fields, ["set-cookie", "a=1; Path=/x/b"]);
  assert.deepEqual(of(p, cookie).fields, ["set-cookie", "a=1; Path=/x/b"]);
  // Without rules the same fields pass as they are (and may be remembered).
  const plain = plan();
  assert.deepEqual(of(plain, loc).fields, loc);
  assert.deepEqual(of(plain, loc).fields, loc);
});

test("the last request fields per plan: the same request makes the same list, any change its own", () => {
  let n = 0;
  const counter = Object.assign(() => String(++n), { constant: undefined, usesCaptures: false });
  const plan = (set: RequestHeaderPlan["set"] = []): RequestHeaderPlan => ({
    forwarded: new Set(defaultForwardedHeaders),
    set,
    setNames: new Set(set.map((r) => r.name)),
  });
  type Shape = {
    fields?: string[];
    host?: string;
    httpVersion?: string;
    scheme?: string;
    remoteAddress?: string;
    localPort?: number;
  };
  const request = (o: Shape = {}) =>
    ({
      fields: new Fields((o.fields ?? ["host", "a.example", "accept", "*/*"]).slice()),
      host: o.host ?? "a.example",
      httpVersion: o.httpVersion ?? "1.1",
      scheme: o.scheme ?? "http",
      connection: { remoteAddress: o.remoteAddress ?? "10.0.0.1", localPort: o.localPort ?? 8080 },
    }) as unknown as WebRequest;
  const p = plan([
    { name: "x-set", value: Object.assign(() => "k", { constant: "k", usesCaptures: false }) },
  ]);
  const want = (
    o: {
      host?: string;
      xff?: string;
      proto?: string;
      port?: string;
      ip?: string;
      extra?: string[];
    } = {},
  ) => [
    "host",
    o.host ?? "a.example",
    ...(o.extra ?? ["accept", "*/*"]),
    "x-forwarded-for",
    o.xff ?? "10.0.0.1",
    "x-forwarded-proto",
    o.proto ?? "http",
    "x-forwarded-host",
    o.host ?? "a.example",
    "x-forwarded-port",
    o.port ?? "8080",
    "x-real-ip",
    o.ip ?? o.xff ?? "10.0.0.1",
    "x-set",
    "k",
  ];
  const first = upstreamRequestFields(request(), p, undefined);
  assert.deepEqual(first, want());
  first.push("content-length", "3");
  const again = upstreamRequestFields(request(), p, undefined);
  assert.deepEqual(again, want());
  again.push("content-length", "4");
  assert.deepEqual(upstreamRequestFields(request(), p, undefined), want());
  // Each input changed alone, right after the request it differs from.
  const alone = (o: Shape, expected: string[]) => {
    assert.deepEqual(upstreamRequestFields(request(), p, undefined), want());
    assert.deepEqual(upstreamRequestFields(request(o), p, undefined), expected);
  };
  alone({ remoteAddress: "10.0.0.2" }, want({ xff: "10.0.0.2" }));
  alone({ localPort: 9090 }, want({ port: "9090" }));
  alone({ scheme: "https" }, want({ proto: "https" }));
  alone({ fields: ["host", "b.example", "accept", "*/*"] }, want({ host: "b.example" }));
  alone(
    { fields: ["host", "a.example", "x-forwarded-for", "1.2.3.4"] },
    want({ xff: "1.2.3.4, 10.0.0.1", ip: "10.0.0.1", extra: [] }),
  );
  // No Host field: the request's host, whichever it is.
  assert.equal(
    upstreamRequestFields(request({ fields: [], host: "c.example" }), p, undefined)[1],
    "c.example",
  );
  assert.equal(
    upstreamRequestFields(request({ fields: [], host: "d.example" }), p, undefined)[1],
    "d.example",
  );
  // HTTP/2's split cookies are joined; the same fields over HTTP/1.1 are not.
  const cookies = ["host", "a.example", "cookie", "a=1", "cookie", "b=2"];
  assert.ok(
    upstreamRequestFields(request({ fields: cookies, httpVersion: "2" }), p, undefined).includes(
      "a=1; b=2",
    ),
  );
  assert.ok(
    !upstreamRequestFields(request({ fields: cookies }), p, undefined).includes("a=1; b=2"),
  );
  assert.deepEqual(upstreamRequestFields(request(), p, undefined), want());
  // An upgrade: its own fields, never the memo's.
  const up = upstreamRequestFields(request(), p, "websocket");
  assert.deepEqual(up.slice(-4), ["connection", "upgrade", "upgrade", "websocket"]);
  assert.deepEqual(upstreamRequestFields(request(), p, undefined), want());
  // A template value is worked out for every request.
  const q = plan([{ name: "x-n", value: counter }]);
  assert.deepEqual(upstreamRequestFields(request(), q, undefined).slice(-2), ["x-n", "1"]);
  assert.deepEqual(upstreamRequestFields(request(), q, undefined).slice(-2), ["x-n", "2"]);
});
