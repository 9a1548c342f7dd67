/**
 * limits: request rate limits (nginx's limit_req) and concurrency limits (limit_conn) per key,
 * counted across every worker of the server through the master's shared state
 * (src/process/sharedState.ts; the measurements behind that choice are in docs/access.md).
 *
 * Access phase, after `block` and before `access`, as nginx runs limit_req and limit_conn in
 * its preaccess phase: a client guessing passwords is slowed down before each guess costs a
 * bcrypt check. Like nginx, the limits of a request apply once: an internal redirect to another
 * location does not count it again.
 *
 * Variables: `$limit_req_status` (PASSED, DELAYED, REJECTED, DELAYED_DRY_RUN, REJECTED_DRY_RUN)
 * and `$limit_conn_status` (PASSED, REJECTED, REJECTED_DRY_RUN), for the access log.
 *
 * Worker service used: `sharedState` (a SharedState; the web worker puts `ctx.shared` there).
 * Without it (tests, `brigade check`) the counts are this process's own.
 */
import { setTimeout as sleep } from "node:timers/promises";
import {
  type LimitConnRule,
  type LimitReqRule,
  limitsFields,
} from "../../config/settings/web/limits.ts";
import type { ObjectOut } from "../../config/types.ts";
import type { Logger } from "../../core/logger.ts";
import {
  type CountItem,
  type CountRule,
  LocalSharedState,
  type RateRule,
  type SharedState,
} from "../../process/sharedState.ts";
import { Fields, HttpError, type WebRequest } from "../exchange.ts";
import type { LocationScope, ModuleHandlers, WebModule } from "../module.ts";
import type { Template } from "../variables.ts";

type Settings = ObjectOut<typeof limitsFields>;

/** The name of the worker service holding the shared state. */
export const SHARED_STATE_SERVICE = "sharedState";

let processLocal: LocalSharedState | undefined;

function sharedStateOf(scope: LocationScope<Settings>): SharedState {
  const s = scope.services.get(SHARED_STATE_SERVICE) as SharedState | undefined;
  if (s) return s;
  processLocal ??= new LocalSharedState();
  return processLocal;
}

/** What a request holds until it completes, and which limits it has been through. */
interface Held {
  items: CountItem[];
  state: SharedState;
}
const holding = new WeakMap<WebRequest, Held>();
const rateDone = new WeakSet<WebRequest>();
const connDone = new WeakSet<WebRequest>();

/** One warning per zone per second at most, with the count of those left out. */
class Throttled {
  private readonly last = new Map<string, { at: number; skipped: number }>();
  private readonly logger: Logger;
  constructor(logger: Logger) {
    this.logger = logger;
  }
  warn(zone: string, msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const l = this.last.get(zone);
    if (l && now - l.at < 1000) {
      l.skipped++;
      return;
    }
    this.last.set(zone, { at: now, skipped: 0 });
    this.logger.warn(msg, { zone, ...fields, ...(l?.skipped ? { suppressed: l.skipped } : {}) });
  }
}

interface ZoneDef {
  key: string;
  rate?: number;
  size: number | undefined;
  where: string;
}

/**
 * The zone of a rule. A named zone must be used with one key (and rate) everywhere; an unnamed
 * rule gets a zone of its own, named after the first location that has it, which the locations
 * inheriting the same rule share.
 */
function zoneFor(
  scope: LocationScope<Settings>,
  kind: "limitReq" | "limitConn",
  rule: LimitReqRule | LimitConnRule,
  index: number,
): string {
  const names = scope.shared;
  if (rule.zone === undefined) {
    const auto = names.get("auto") as WeakMap<object, string> | undefined;
    const map = auto ?? new WeakMap<object, string>();
    if (!auto) names.set("auto", map);
    let name = map.get(rule);
    if (name === undefined) {
      name = `${kind}:${scope.location.path}[${index}]`;
      map.set(rule, name);
    }
    return name;
  }
  const name = `${kind}:${rule.zone}`;
  const def: ZoneDef = {
    key: rule.key,
    ...("rate" in rule ? { rate: rule.rate } : {}),
    size: rule.size,
    where: `${scope.location.path}.${kind}[${index}]`,
  };
  const seen = names.get(name) as ZoneDef | undefined;
  if (seen === undefined) {
    names.set(name, def);
  } else if (seen.key !== def.key || seen.rate !== def.rate) {
    throw new Error(
      `${kind}[${index}]: zone "${rule.zone}" is already used with key "${seen.key}"${seen.rate !== undefined ? ` and rate ${seen.rate} r/s` : ""} at ${seen.where}; a zone has one key and one rate`,
    );
  }
  return name;
}

interface CompiledReq {
  rule: RateRule;
  key: Template;
  source: LimitReqRule;
}

interface CompiledConn {
  rule: CountRule;
  key: Template;
  source: LimitConnRule;
}

export const limitsModule: WebModule<Settings> = {
  name: "limits",
  doc: "Request rate limits (leaky bucket) and concurrency limits per key, across all workers.",
  fields: limitsFields,
  variables: ["limit_req_status", "limit_conn_status"],
  setup(scope): ModuleHandlers {
    const s = scope.settings;
    const release = (req: WebRequest): void => {
      const held = holding.get(req);
      if (held === undefined) return;
      holding.delete(req);
      held.state.release(held.items);
    };
    // Every location releases what a request holds, wherever it was counted: an internal
    // redirect can end a request in a location without limits of its own.
    const handlers: ModuleHandlers = { log: release };
    const reqRules = s.limitReq ?? [];
    const connRules = s.limitConn ?? [];
    if (reqRules.length === 0 && connRules.length === 0) return handlers;

    const seen = new Set<string>();
    const compiled = <R extends LimitReqRule | LimitConnRule>(
      kind: "limitReq" | "limitConn",
      rules: readonly R[],
    ) =>
      rules.map((r, i) => {
        const zone = zoneFor(scope, kind, r, i);
        if (seen.has(zone))
          throw new Error(`${kind}[${i}]: zone "${r.zone}" twice in one location`);
        seen.add(zone);
        let key: Template;
        try {
          key = scope.template(r.key);
        } catch (e) {
          throw new Error(`${kind}[${i}].key: ${(e as Error).message}`);
        }
        return { zone, key, r };
      });
    const req: CompiledReq[] = compiled("limitReq", reqRules).map(({ zone, key, r }) => ({
      rule: {
        zone,
        rate: r.rate,
        burst: r.burst,
        delay: r.delay,
        ...(r.size ? { size: r.size } : {}),
      },
      key,
      source: r,
    }));
    const conn: CompiledConn[] = compiled("limitConn", connRules).map(({ zone, key, r }) => ({
      rule: { zone, max: r.max, ...(r.size ? { size: r.size } : {}) },
      key,
      source: r,
    }));
    const reqStatus = s.limitReqStatus ?? 503;
    const connStatus = s.limitConnStatus ?? 503;
    const dryRun = s.limitReqDryRun ?? false;
    const log = new Throttled(scope.logger);
    const state = sharedStateOf(scope);
    let degradedLogged = false;
    const degraded = (): void => {
      if (degradedLogged) return;
      degradedLogged = true;
      scope.logger.warn("limits: the shared state did not answer; letting requests through");
    };

    handlers.access = async (r) => {
      if (req.length > 0 && !rateDone.has(r)) {
        rateDone.add(r);
        const checks = [];
        const which: CompiledReq[] = [];
        for (const c of req) {
          const key = c.key({ req: r });
          // nginx: a request whose key is empty is not accounted.
          if (key === "") continue;
          checks.push({ rule: c.rule, key });
          which.push(c);
        }
        if (checks.length > 0) {
          const v = await state.rate(checks);
          if (!v.ok) {
            const c = which[v.index]!;
            const retry = Math.max(1, Math.ceil(v.retryAfterMs / 1000));
            r.vars.set("limit_req_status", dryRun ? "REJECTED_DRY_RUN" : "REJECTED");
            log.warn(c.rule.zone, dryRun ? "limiting requests, dry run" : "limiting requests", {
              client: clientOf(r),
              key: checks[v.index]!.key,
              rate: c.source.rateText,
              burst: c.source.burst,
            });
            if (!dryRun) {
              throw new HttpError(reqStatus, "request rate limit", {
                fields: Fields.from({ "retry-after": String(retry) }),
              });
            }
          } else if (v.delayMs > 0) {
            r.vars.set("limit_req_status", dryRun ? "DELAYED_DRY_RUN" : "DELAYED");
            if (!dryRun) {
              // Hold the request until its turn; a client that leaves meanwhile ends it.
              await sleep(v.delayMs, undefined, { signal: r.signal }).catch(() => undefined);
            }
          } else {
            if (v.degraded) degraded();
            r.vars.set("limit_req_status", "PASSED");
          }
        }
      }
      if (conn.length > 0 && !connDone.has(r)) {
        connDone.add(r);
        const items: CountItem[] = [];
        const which: CompiledConn[] = [];
        for (const c of conn) {
          const key = c.key({ req: r });
          if (key === "") continue;
          items.push({ rule: c.rule, key });
          which.push(c);
        }
        if (items.length > 0) {
          const v = await state.acquire(items);
          if (!v.ok) {
            const c = which[v.index]!;
            r.vars.set("limit_conn_status", "REJECTED");
            log.warn(c.rule.zone, "limiting connections", {
              client: clientOf(r),
              key: items[v.index]!.key,
              max: c.source.max,
            });
            throw new HttpError(connStatus, "concurrency limit");
          }
          if (v.degraded) degraded();
          holding.set(r, { items, state });
          r.vars.set("limit_conn_status", "PASSED");
        }
      }
      return undefined;
    };
    return handlers;
  },
};

function clientOf(req: WebRequest): string {
  return req.vars.get("remote_addr") ?? req.connection.remoteAddress;
}
