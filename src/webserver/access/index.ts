/**
 * access: who may come in. nginx's access (allow/deny), auth_basic and auth_request modules, and
 * `satisfy` combining them, in one access-phase handler (they must see each other's verdicts for
 * `satisfy any`, and a module never imports another).
 *
 * The checks run in that order: address rules (free), basic auth (a hash check), the
 * subrequest (a network round trip). With `satisfy all` every check set must pass and the first
 * refusal answers; with `satisfy any` the first that passes lets the request in, and if none
 * does, a 401 from basic auth or the subrequest wins over a 403 (so a browser asks for a
 * password), as nginx does.
 *
 * The client address is `vars.remote_addr` (set by realip), else the peer's address.
 * Variables set: `remote_user` (the basic-auth user who passed).
 */
import { type AccessRule, accessFields } from "../../config/settings/web/access.ts";
import type { ObjectOut } from "../../config/types.ts";
import { basicChallenge, parseBasic } from "../../core/credentials/basic.ts";
import { BcryptQueueFull, BcryptVerifier } from "../../core/credentials/bcrypt.ts";
import { Htpasswd } from "../../core/credentials/htpasswd.ts";
import { createTrust, type TrustPredicate } from "../../gateway/forwarded.ts";
import { Fields, HttpError, response, type WebRequest, type WebResponse } from "../exchange.ts";
import type { LocationScope, ModuleHandlers, WebModule } from "../module.ts";
import type { Template } from "../variables.ts";
import { AuthRequester } from "./authRequest.ts";

type Settings = ObjectOut<typeof accessFields>;

/** A check's verdict: pass, or the answer that refuses. */
type Verdict = "pass" | HttpError | WebResponse;
type Check = (req: WebRequest, client: string) => Verdict | Promise<Verdict>;

function clientOf(req: WebRequest): string {
  return req.vars.get("remote_addr") ?? req.connection.remoteAddress;
}

/** Compile allow/deny rules: the first rule matching the client decides; none matching passes. */
export function compileRules(
  rules: readonly AccessRule[],
): (client: string) => AccessRule | undefined {
  const compiled: { rule: AccessRule; test: TrustPredicate }[] = rules.map((rule) => ({
    rule,
    test: createTrust(rule.addresses),
  }));
  return (client) => {
    const a = client === "" ? undefined : client;
    for (const c of compiled) if (c.test(a)) return c.rule;
    return undefined;
  };
}

function addressCheck(rules: readonly AccessRule[], scope: LocationScope<Settings>): Check {
  const match = compileRules(rules);
  return (req, client) => {
    const rule = match(client);
    if (rule === undefined || rule.allow) return "pass";
    scope.logger.info("access forbidden by rule", {
      client: client || "unix:",
      path: req.path,
      location: scope.location.path,
    });
    return rule.status === 444 ? response(444) : new HttpError(rule.status, "access forbidden");
  };
}

function bcryptOf(scope: LocationScope<Settings>): BcryptVerifier {
  let v = scope.shared.get("bcrypt") as BcryptVerifier | undefined;
  if (v === undefined) {
    v = new BcryptVerifier();
    scope.shared.set("bcrypt", v);
    const verifier = v;
    scope.onClose(() => verifier.close());
  }
  return v;
}

function basicCheck(realm: string, file: string, scope: LocationScope<Settings>): Check {
  // One reader per file per pipeline, whichever locations share it.
  const key = `htpasswd:${file}`;
  let users = scope.shared.get(key) as Htpasswd | undefined;
  if (users === undefined) {
    try {
      users = new Htpasswd(file, scope.logger, bcryptOf(scope));
    } catch (e) {
      throw new Error(`authBasicUserFile: ${(e as Error).message}`);
    }
    scope.shared.set(key, users);
  }
  const htpasswd = users;
  const challenge = Fields.from({ "www-authenticate": basicChallenge(realm) });
  const refuse = (): HttpError =>
    new HttpError(401, "authorization required", { fields: challenge });
  return async (req, client) => {
    const auth = req.fields.get("authorization");
    if (auth === undefined) return refuse();
    const cred = parseBasic(auth);
    if (cred === undefined) {
      scope.logger.info("malformed basic credentials", { client, path: req.path });
      return refuse();
    }
    let result: Awaited<ReturnType<Htpasswd["check"]>>;
    try {
      result = await htpasswd.check(cred.user, cred.password);
    } catch (error) {
      if (error instanceof BcryptQueueFull) return new HttpError(503, error.message);
      throw error;
    }
    if (result === "ok") {
      req.vars.set("remote_user", cred.user);
      return "pass";
    }
    // Never the password; the user name is what an operator needs to see a brute force.
    scope.logger.warn("basic auth failed", {
      user: cred.user,
      reason: result,
      client,
      path: req.path,
      file,
    });
    return refuse();
  };
}

function requestCheck(
  config: NonNullable<Exclude<Settings["authRequest"], false>>,
  scope: LocationScope<Settings>,
): Check {
  const setHeaders: [string, Template][] = Object.entries(config.setHeaders).map(([k, v]) => {
    try {
      return [k.toLowerCase(), scope.template(v)];
    } catch (e) {
      throw new Error(`authRequest.setHeaders.${k}: ${(e as Error).message}`);
    }
  });
  // No connections until a request needs one: setup also runs in the master.
  let asker: AuthRequester | undefined;
  scope.onClose(() => asker?.close());
  const copy = config.copyHeaders;
  return async (req, client) => {
    // A header the authorization server vouches for is never the client's own.
    for (const h of copy) req.fields.delete(h);
    asker ??= new AuthRequester(config, setHeaders);
    let answer: Awaited<ReturnType<AuthRequester["ask"]>>;
    try {
      answer = await asker.ask(req, client);
    } catch (error) {
      if (req.signal.aborted) return new HttpError(499, "client closed");
      scope.logger.error("auth request failed", {
        url: config.url,
        error: (error as Error).message,
        path: req.path,
      });
      return new HttpError(500, "auth request failed");
    }
    const status = answer.status;
    if (status >= 200 && status < 300) {
      for (const h of copy) for (const v of answer.fields.getAll(h)) req.fields.append(h, v);
      return "pass";
    }
    if (status === 401) {
      const fields = new Fields();
      for (const v of answer.fields.getAll("www-authenticate"))
        fields.append("www-authenticate", v);
      return new HttpError(401, "auth request: 401", { fields });
    }
    if (status === 403) return new HttpError(403, "auth request: 403");
    scope.logger.error("auth request answered an unexpected status", {
      url: config.url,
      status,
      path: req.path,
    });
    return new HttpError(500, `auth request: unexpected status ${status}`);
  };
}

function answer(v: HttpError | WebResponse): WebResponse {
  if (v instanceof HttpError) throw v;
  return v;
}

export const accessModule: WebModule<Settings> = {
  name: "access",
  doc: "Allow/deny by client address, basic auth against an htpasswd file, subrequest authorization.",
  fields: accessFields,
  variables: ["remote_user"],
  setup(scope): ModuleHandlers | undefined {
    const s = scope.settings;
    const checks: Check[] = [];
    if (s.access !== undefined && s.access.length > 0) checks.push(addressCheck(s.access, scope));
    if (s.authBasic !== undefined && s.authBasic !== false) {
      if (s.authBasicUserFile === undefined) {
        throw new Error("authBasic needs authBasicUserFile (the htpasswd file)");
      }
      checks.push(basicCheck(s.authBasic.realm, scope.resolvePath(s.authBasicUserFile), scope));
    }
    if (s.authRequest !== undefined && s.authRequest !== false) {
      checks.push(requestCheck(s.authRequest, scope));
    }
    if (checks.length === 0) return undefined;
    const any = s.satisfy === "any";
    return {
      async access(req) {
        const client = clientOf(req);
        let refusal: HttpError | WebResponse | undefined;
        for (const check of checks) {
          const v = await check(req, client);
          if (v === "pass") {
            if (any) return undefined;
            continue;
          }
          if (!any) return answer(v);
          // satisfy any: a 401 (ask for credentials) wins over other refusals.
          if (!(refusal instanceof HttpError && refusal.status === 401)) refusal = v;
        }
        return refusal === undefined ? undefined : answer(refusal);
      },
    };
  },
};
