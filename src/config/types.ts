/**
 * The value vocabulary of the settings schema: each `ValueType` knows how to validate and
 * normalise one value, how to read it from a flag or an environment variable (always a string),
 * and how to describe itself in `--help`, in `docs/settings.md` and in error messages.
 *
 * A type has an input shape (`In`, what a user may write: `"30s"`) and an output shape (`Out`,
 * what the code reads: `30`). `object` and `list` compose, so nested structures (server blocks
 * with locations) get the same validation, with errors pointing to `web.servers[1].root`.
 */
import { isIP } from "node:net";
import { availableParallelism } from "node:os";

/** A key path inside the config: `["web", "servers", 1, "root"]`. */
export type Path = readonly (string | number)[];

/** One validation problem, relative to the value being checked. */
export interface Issue {
  path: Path;
  message: string;
}

/** Returned by `check` when the value is invalid (the issues were pushed). */
export const invalid: unique symbol = Symbol("invalid");
export type Invalid = typeof invalid;

export interface ValueType<In, Out> {
  /** Short name for docs and help: "integer ≥ 1", "duration". */
  readonly name: string;
  /** What a good value looks like, for errors: `a duration (seconds, or "500ms", ...)`. */
  readonly expected: string;
  /** Placeholder in `--help`: `N`, `DURATION`, `ADDRESS`. */
  readonly metavar: string;
  /** `boolean` flags take no value; `list` flags repeat; `object` values have no flag. */
  readonly kind: "scalar" | "boolean" | "list" | "object";
  /**
   * Validate `value` (found at `path`) and return its normalised form, or push one or more
   * issues and return `invalid`.
   */
  check(value: unknown, path: Path, issues: Issue[]): Out | Invalid;
  /**
   * Turn one string from a flag or an environment variable into the input shape, without
   * validating (`check` does that, so a bad env var gets the same message as a bad file value).
   */
  fromString(text: string): unknown;
  /** For `list` types: the item type, which a repeated flag's occurrences are parsed with. */
  readonly item?: ValueType<unknown, unknown>;
  /** For `object` types (and lists of them): the fields, for docs and did-you-mean. */
  readonly fields?: Record<string, Field<unknown, unknown>>;
  /**
   * For `record` types: how a key is shown in docs (`<name>`); `fields` are then those of each
   * entry, documented as `section.key.<name>.field`.
   */
  readonly recordKey?: string;
  /** True when nothing (`undefined` / `null`) is an accepted value. */
  readonly optional?: boolean;
  /** Phantom: carries the input type for `UserConfig`. Never set at runtime. */
  readonly __in?: In;
}

/** A field of an object type: like a setting, without flag or env var. */
export interface Field<In, Out> {
  readonly type: ValueType<In, Out>;
  /** Without a default (and without `optional`), the field is required. */
  readonly default?: In;
  readonly doc: string;
  /** The nginx directive or parameter this field stands for, if any (shown in the docs). */
  readonly nginx?: string;
}

export type InOf<T> = T extends ValueType<infer I, unknown> ? I : never;
export type OutOf<T> = T extends ValueType<unknown, infer O> ? O : never;

/** `"soon"`, `12`, `a list`: how a found value is shown in an error. */
export function describeFound(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "function") return "a function";
  if (typeof value === "string") return JSON.stringify(value);
  return String(value);
}

const plainKey = /^[\w$-]+$/;

/** `web.servers[1].locations[0].root`; a key with other than letters, digits, "_", "$", "-" is quoted: `fields["a b"]`. */
export function formatPath(path: Path): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (!plainKey.test(part)) out += `[${JSON.stringify(part)}]`;
    else out += out === "" ? part : `.${part}`;
  }
  return out;
}

function mismatch(expected: string, value: unknown, path: Path, issues: Issue[]): Invalid {
  issues.push({ path, message: `expected ${expected}, found ${describeFound(value)}` });
  return invalid;
}

const numberish = /^-?\d+(\.\d+)?$/;

function scalar<In, Out>(
  spec: Omit<ValueType<In, Out>, "kind" | "fromString" | "check"> & {
    fromString?: (text: string) => unknown;
    parse: (value: unknown) => Out | undefined;
  },
): ValueType<In, Out> {
  return {
    name: spec.name,
    expected: spec.expected,
    metavar: spec.metavar,
    kind: "scalar",
    fromString: spec.fromString ?? ((text) => text),
    check(value, path, issues) {
      const out = spec.parse(value);
      return out === undefined ? mismatch(spec.expected, value, path, issues) : out;
    },
  };
}

/** A Node.js command-line flag such as `--max-old-space-size=4096`: a dash, no whitespace. */
export function nodeFlag(): ValueType<string, string> {
  return scalar({
    name: "node flag",
    expected: 'a Node.js flag such as "--max-old-space-size=4096" (starting with "-", no spaces)',
    metavar: "FLAG",
    parse: (v) => (typeof v === "string" && /^--?[A-Za-z0-9][^\s]*$/.test(v) ? v : undefined),
  });
}

/** A string; non-empty unless `allowEmpty`. */
export function string(
  options: { allowEmpty?: boolean; metavar?: string } = {},
): ValueType<string, string> {
  return scalar({
    name: "string",
    expected: options.allowEmpty ? "a string" : "a non-empty string",
    metavar: options.metavar ?? "TEXT",
    parse: (v) => (typeof v === "string" && (options.allowEmpty || v !== "") ? v : undefined),
  });
}

const truthy = new Set(["true", "1", "yes", "on"]);
const falsy = new Set(["false", "0", "no", "off"]);

/** `true`/`false`; from env, also `1`/`0`, `yes`/`no`, `on`/`off`. A flag is `--x` / `--no-x`. */
export function boolean(): ValueType<boolean, boolean> {
  return {
    name: "boolean",
    expected: "true or false",
    metavar: "",
    kind: "boolean",
    fromString(text) {
      const t = text.toLowerCase();
      return truthy.has(t) ? true : falsy.has(t) ? false : text;
    },
    check: (v, path, issues) =>
      typeof v === "boolean" ? v : mismatch("true or false", v, path, issues),
  };
}

/** An integer within optional bounds (inclusive). */
export function integer(options: { min?: number; max?: number } = {}): ValueType<number, number> {
  const { min, max } = options;
  const bounds =
    min !== undefined && max !== undefined
      ? ` from ${min} to ${max}`
      : min !== undefined
        ? ` ≥ ${min}`
        : max !== undefined
          ? ` ≤ ${max}`
          : "";
  return scalar({
    name: `integer${bounds}`,
    expected: `an integer${bounds}`,
    metavar: "N",
    fromString: (t) => (numberish.test(t) ? Number(t) : t),
    parse: (v) =>
      typeof v === "number" &&
      Number.isInteger(v) &&
      (min === undefined || v >= min) &&
      (max === undefined || v <= max)
        ? v
        : undefined,
  });
}

/** One of a fixed set of strings. */
export function oneOf<const V extends readonly string[]>(
  values: V,
): ValueType<V[number], V[number]> {
  const list = values.map((v) => JSON.stringify(v)).join(", ");
  return scalar({
    name: values.join(" | "),
    expected: `one of ${list}`,
    metavar: values.join("|"),
    parse: (v) => (typeof v === "string" && values.includes(v) ? (v as V[number]) : undefined),
  });
}

/** The value, or nothing (`undefined`; `null` in JSON/YAML means the same). */
export function optional<In, Out>(
  type: ValueType<In, Out>,
): ValueType<In | undefined, Out | undefined> {
  return {
    ...type,
    name: `${type.name} (optional)`,
    optional: true,
    check: (v, path, issues) =>
      v === undefined || v === null ? undefined : type.check(v, path, issues),
  };
}

/**
 * A list. A single item is accepted as a one-item list (`bind: ":8000"`). From an env var the
 * items are comma-separated; a flag is repeated, one item per occurrence.
 */
export function list<In, Out>(item: ValueType<In, Out>): ValueType<In[] | In, Out[]> {
  const plural = /^[a-z ]+$/.test(item.name)
    ? item.name
        .replace(/(s|ss)$/, "$1e")
        .replace(/([^aeiou])y$/, "$1ie")
        .concat("s")
    : `(${item.name})`;
  return {
    name: `list of ${plural}`,
    expected: `a list of ${plural}`,
    metavar: item.metavar,
    kind: "list",
    item: item as ValueType<unknown, unknown>,
    ...(item.fields ? { fields: item.fields } : {}),
    // Lists of objects come from an env var as JSON; other lists as comma-separated items.
    fromString: (text) =>
      item.kind === "object"
        ? item.fromString(text)
        : text
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s !== "")
            .map((s) => item.fromString(s)),
    check(value, path, issues) {
      const items = Array.isArray(value) ? value : [value];
      const out: Out[] = [];
      let ok = true;
      items.forEach((v, i) => {
        const r = item.check(v, Array.isArray(value) ? [...path, i] : path, issues);
        if (r === invalid) ok = false;
        else out.push(r);
      });
      return ok ? out : invalid;
    },
  };
}

type FieldRecord = Record<string, Field<unknown, unknown>>;
type FieldInput<X> = X extends Field<infer I, unknown> ? I : never;
/** Keys a user may leave out: those with a default, or whose type accepts nothing. */
type OmittableKeys<F> = {
  [K in keyof F]: F[K] extends { default: unknown }
    ? K
    : undefined extends FieldInput<F[K]>
      ? K
      : never;
}[keyof F];
/** Input of an object type: fields with a default (or optional) may be left out. */
export type ObjectIn<F> = {
  [K in keyof F as K extends OmittableKeys<F> ? K : never]?: FieldInput<F[K]>;
} & {
  [K in keyof F as K extends OmittableKeys<F> ? never : K]: FieldInput<F[K]>;
};
export type ObjectOut<F> = {
  [K in keyof F]: F[K] extends Field<unknown, infer O> ? O : never;
};

/** Declare one field of an object type (keeps its literal type, for `ObjectIn`). */
export function field<const F extends Field<unknown, unknown>>(f: F): F {
  return f;
}

/**
 * An object with declared fields, each validated; unknown keys are refused with a did-you-mean.
 * Fields without a default are required unless their type is `optional(...)`.
 */
export function object<const F extends FieldRecord>(
  fields: F,
  options: { name?: string } = {},
): ValueType<ObjectIn<F>, ObjectOut<F>> {
  const name = options.name ?? "object";
  return {
    name,
    expected: `an object (${name})`,
    metavar: "",
    kind: "object",
    fields,
    // From an env var, an object is JSON; a string that is not stays a string, for the error.
    fromString: (text) => {
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    },
    check(value, path, issues) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return mismatch(`an object (${name})`, value, path, issues);
      }
      const input = value as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const key of Object.keys(input)) {
        if (!Object.hasOwn(fields, key)) {
          issues.push({ path: [...path, key], message: unknownKey(Object.keys(fields))(key) });
          ok = false;
        }
      }
      for (const [key, f] of Object.entries(fields)) {
        let v = input[key];
        if (v === undefined) v = f.default;
        if (v === undefined && !f.type.optional) {
          issues.push({ path: [...path, key], message: `required; expected ${f.type.expected}` });
          ok = false;
          continue;
        }
        const r = f.type.check(v, [...path, key], issues);
        if (r === invalid) ok = false;
        else out[key] = r;
      }
      return ok ? (out as ObjectOut<F>) : invalid;
    },
  };
}

/**
 * A type defined in terms of itself (a location holds locations): `get` is called at check time.
 * It has no `fields` of its own, so docs describe the structure once, where it first appears.
 */
export function lazy<In, Out>(
  spec: { name: string; expected: string; kind: "list" | "object" },
  get: () => ValueType<In, Out>,
): ValueType<In, Out> {
  return {
    name: spec.name,
    expected: spec.expected,
    metavar: "",
    kind: spec.kind,
    fromString: (text) => get().fromString(text),
    check: (value, path, issues) => get().check(value, path, issues),
  };
}

type Shape = "string" | "number" | "boolean" | "list" | "object";
type AnyType = ValueType<unknown, unknown>;
type ShapeIn<A> = { [K in keyof A]: A[K] extends ValueType<infer I, unknown> ? I : never }[keyof A];
type ShapeOut<A> = {
  [K in keyof A]: A[K] extends ValueType<unknown, infer O> ? O : never;
}[keyof A];

function shapeOf(value: unknown): Shape | undefined {
  if (Array.isArray(value)) return "list";
  if (value === null) return undefined;
  const t = typeof value;
  if (t === "string" || t === "number" || t === "boolean") return t;
  return t === "object" ? "object" : undefined;
}

/**
 * A value that may take several shapes, each checked by its own type: `{ string: shorthand,
 * object: full }`. A value of no listed shape is refused with `expected`. From a flag or an env
 * var the text goes to the `string` alternative (or `number` / `boolean`, when the text is one).
 */
export function byShape<const A extends Partial<Record<Shape, AnyType>>>(
  alternatives: A,
  spec: { name: string; expected: string; metavar?: string },
): ValueType<ShapeIn<A>, ShapeOut<A>> {
  const alts = alternatives as Partial<Record<Shape, AnyType>>;
  const onlyStructured = Object.keys(alts).every((k) => k === "list" || k === "object");
  return {
    name: spec.name,
    expected: spec.expected,
    metavar: spec.metavar ?? "VALUE",
    kind: onlyStructured ? "object" : "scalar",
    // The object form's fields, for docs (`listen[].address`).
    ...(alts.object?.fields ? { fields: alts.object.fields } : {}),
    fromString(text) {
      for (const k of ["number", "boolean"] as const) {
        const alt = alts[k];
        if (!alt) continue;
        const v = alt.fromString(text);
        if (typeof v === k) return v;
      }
      return alts.string ? alts.string.fromString(text) : text;
    },
    check(value, path, issues) {
      const shape = shapeOf(value);
      const alt = shape === undefined ? undefined : alts[shape];
      if (!alt) return mismatch(spec.expected, value, path, issues);
      return alt.check(value, path, issues) as ShapeOut<A> | Invalid;
    },
  };
}

/**
 * A record of named entries, every value of the same type (`web.upstreams: { app: {...} }`).
 * Keys must match `keyPattern` (default: a letter, then letters, digits, `_`, `-` or `.`), so
 * that a name can be used in logs, metrics and references (`proxy: "app"`), or pass `key` (free
 * keys such as header names). Errors point into the entry: `web.upstreams.app.peers[0].weight`.
 */
export function record<In, Out>(
  item: ValueType<In, Out>,
  options: {
    name?: string;
    keyName?: string;
    keyPattern?: RegExp;
    /** Checks a key instead of `keyPattern`: the problem, or undefined when the key is fine. */
    key?: (key: string) => string | undefined;
  } = {},
): ValueType<Record<string, In>, Record<string, Out>> {
  const keyPattern = options.keyPattern ?? /^[A-Za-z][\w.-]*$/;
  const name = options.name ?? `record of ${item.name}`;
  return {
    name,
    expected: `an object of named entries (${name})`,
    metavar: "",
    kind: "object",
    recordKey: options.keyName ?? "<name>",
    ...(item.fields ? { fields: item.fields } : {}),
    fromString: (text) => {
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    },
    check(value, path, issues) {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return mismatch(`an object of named entries (${name})`, value, path, issues);
      }
      const out: Record<string, Out> = {};
      let ok = true;
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        const bad = options.key
          ? options.key(key)
          : keyPattern.test(key)
            ? undefined
            : `invalid name; expected a letter followed by letters, digits, "_", "-" or "."`;
        if (bad !== undefined) {
          issues.push({ path: [...path, key], message: bad });
          ok = false;
          continue;
        }
        const r = item.check(v, [...path, key], issues);
        if (r === invalid) ok = false;
        else out[key] = r;
      }
      return ok ? out : invalid;
    },
  };
}

/**
 * `type`, then `then` on its output: return the (possibly transformed) value, or
 * `problem(message)` to refuse it at the value's path. For rules a type alone cannot say (a regex
 * that must compile, a shorthand string parsed into its object form).
 */
export function refine<In, Out, Out2 = Out>(
  type: ValueType<In, Out>,
  then: (value: Out, problem: (message: string) => Invalid) => Out2 | Invalid,
  spec: { name?: string; expected?: string } = {},
): ValueType<In, Out2> {
  return {
    ...(type as unknown as ValueType<In, Out2>),
    name: spec.name ?? type.name,
    expected: spec.expected ?? type.expected,
    check(value, path, issues) {
      const v = type.check(value, path, issues);
      if (v === invalid) return invalid;
      return then(v, (message) => {
        issues.push({ path, message });
        return invalid;
      });
    },
  };
}

/**
 * Edit distance for did-you-mean: Levenshtein plus the transposition of two adjacent letters as
 * one edit (optimal string alignment), the commonest typo ("hots" is one edit from "host").
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest candidate to `word`, if close enough to be a likely typo. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  const lower = word.toLowerCase();
  for (const c of candidates) {
    const d = c.toLowerCase() === lower ? 0 : editDistance(lower, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return bestDistance <= limit ? best : undefined;
}

/** The message for an unknown key at a level whose valid keys are `known`. */
export function unknownKey(known: readonly string[], what = "setting"): (key: string) => string {
  return (key) => {
    const guess = didYouMean(key, known);
    return guess
      ? `unknown ${what}; did you mean "${guess}"?`
      : `unknown ${what}; expected one of ${known.map((k) => `"${k}"`).join(", ")}`;
  };
}

// ---- durations, sizes, addresses --------------------------------------------------------------

const durationUnits: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
const durationPart = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/**
 * A duration in seconds: a number of seconds, or a string of one or more `<number><unit>` parts
 * with units ms, s, m, h, d (`"500ms"`, `"30s"`, `"5m"`, `"1h30m"`); a bare numeric string is
 * seconds. Returns undefined when the text is not a duration.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (numberish.test(text)) return parseDuration(Number(text));
  if (text === "") return undefined;
  let total = 0;
  durationPart.lastIndex = 0;
  while (durationPart.lastIndex < text.length) {
    const m = durationPart.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * durationUnits[m[2]!]!;
  }
  // Round away float noise from ms parts ("100ms" is 0.1, not 0.1000000000000000055).
  return Math.round(total * 1e6) / 1e6;
}

const sizeUnits: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * A size in bytes, nginx style: a number of bytes, or `"64k"`, `"1m"`, `"1g"` (binary units,
 * case-insensitive; a trailing `b` is allowed: `"64kb"`). Returns undefined when invalid.
 */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === "number")
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(value.trim());
  if (!m) return undefined;
  const bytes = Number(m[1]) * sizeUnits[m[2]!.toLowerCase()]!;
  return Number.isSafeInteger(Math.floor(bytes)) ? Math.floor(bytes) : undefined;
}

/** A parsed listen address. `host` undefined means every interface. */
export type ListenAddress =
  | { kind: "tcp"; host: string | undefined; port: number }
  | { kind: "unix"; path: string };

const hostname =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/;
const ipv6 = /^[0-9A-Fa-f:.]+(%[\w.-]+)?$/;

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/**
 * Parse a listen address: `"host:port"`, `":port"` or `"port"` (every interface),
 * `"[::1]:port"` (IPv6), or `"unix:/path/to.sock"`. Port 0 asks the OS for a free port.
 * Returns undefined when the text is not one of these.
 */
export function parseListen(text: string): ListenAddress | undefined {
  if (text.startsWith("unix:")) {
    const path = text.slice(5);
    return path === "" || path.includes("\0") ? undefined : { kind: "unix", path };
  }
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0 || text[end + 1] !== ":") return undefined;
    const host = text.slice(1, end);
    const port = parsePort(text.slice(end + 2));
    return host.includes(":") && ipv6.test(host) && port !== undefined
      ? { kind: "tcp", host, port }
      : undefined;
  }
  const colon = text.lastIndexOf(":");
  if (colon < 0) {
    const port = parsePort(text);
    return port === undefined ? undefined : { kind: "tcp", host: undefined, port };
  }
  const host = text.slice(0, colon);
  const port = parsePort(text.slice(colon + 1));
  if (port === undefined) return undefined;
  if (host === "" || host === "*") return { kind: "tcp", host: undefined, port };
  return hostname.test(host) ? { kind: "tcp", host, port } : undefined;
}

/** A parsed upstream peer address: TCP (host or IP, port) or a unix socket. */
export type PeerAddress =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "unix"; path: string };

/**
 * Parse an upstream peer address, nginx's `server` syntax: `"host:port"`, `"host"` (port 80),
 * `"[::1]:port"` or `"[::1]"` (IPv6), or `"unix:/path/to.sock"`. Unlike a listen address the
 * host is required. Returns undefined when the text is none of these.
 */
export function parsePeerAddress(text: string): PeerAddress | undefined {
  if (text.startsWith("unix:")) {
    const l = parseListen(text);
    return l?.kind === "unix" ? l : undefined;
  }
  let host: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    if (end < 0) return undefined;
    host = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest !== "" && !rest.startsWith(":")) return undefined;
    portText = rest === "" ? undefined : rest.slice(1);
    if (!host.includes(":") || !ipv6.test(host)) return undefined;
  } else {
    const colon = text.indexOf(":");
    // A bare IPv6 address is ambiguous with a port: it must be bracketed.
    if (colon !== text.lastIndexOf(":")) return undefined;
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
    if (!hostname.test(host) || /^\d+$/.test(host)) return undefined;
  }
  const port = portText === undefined ? 80 : parsePort(portText);
  return port === undefined || port === 0 ? undefined : { kind: "tcp", host, port };
}

export const peerAddressExpected =
  'an upstream address ("host:port", "host", "[::1]:port" or "unix:/path")';

/** An upstream peer address string, checked with `parsePeerAddress` and kept as written. */
export function peerAddress(): ValueType<string, string> {
  return scalar({
    name: "upstream address",
    expected: peerAddressExpected,
    metavar: "ADDRESS",
    parse: (v) => (typeof v === "string" && parsePeerAddress(v) ? v : undefined),
  });
}

export const listenExpected =
  'a listen address ("host:port", ":port", "[::1]:port", "port" or "unix:/path")';

/** A listen address string, checked with `parseListen` and kept as written. */
export function listen(): ValueType<string, string> {
  return scalar({
    name: "listen address",
    expected: listenExpected,
    metavar: "ADDRESS",
    parse: (v) => (typeof v === "string" && parseListen(v) ? v : undefined),
  });
}

/** Seconds (possibly fractional), from a number or a string such as `"30s"`. */
export function duration(): ValueType<number | string, number> {
  return scalar({
    name: "duration",
    expected: 'a duration (seconds, or "500ms", "30s", "5m", "1h")',
    metavar: "DURATION",
    parse: parseDuration,
  });
}

/** Bytes, from a number or a string such as `"64k"`. */
export function size(): ValueType<number | string, number> {
  return scalar({
    name: "size",
    expected: 'a size (bytes, or "64k", "1m", "1g")',
    metavar: "SIZE",
    parse: parseSize,
  });
}

/**
 * A number of worker processes: an integer ≥ 1, or `"auto"` for one per core
 * (`os.availableParallelism()`), resolved when the config is loaded.
 */
export function workers(): ValueType<number | "auto", number> {
  return scalar({
    name: 'integer ≥ 1 or "auto"',
    expected: 'an integer ≥ 1 or "auto"',
    metavar: "N|auto",
    fromString: (t) => (numberish.test(t) ? Number(t) : t),
    parse: (v) =>
      v === "auto"
        ? availableParallelism()
        : typeof v === "number" && Number.isInteger(v) && v >= 1
          ? v
          : undefined,
  });
}

/**
 * An app module spec: `path`, `path:name` (a named export) or `path:factory()` (a named export
 * called once per worker to make the app). Checked for shape only; loading is the gateway's job.
 */
export function appSpec(): ValueType<string, string> {
  return scalar({
    name: "app spec",
    expected: 'an app module ("path", "path:name" or "path:factory()")',
    metavar: "APP",
    parse: (v) =>
      typeof v === "string" && /^[^:\s][^:]*(:[A-Za-z_$][\w$]*(\(\))?)?$/.test(v) ? v : undefined,
  });
}

/**
 * A function, for server hooks: only a `.ts`/`.js` config file can hold one (JSON, YAML, env vars
 * and flags cannot). `F` types the hook for `defineConfig`; the check is `typeof` only.
 */
export function hook<F extends (...args: never[]) => unknown>(): ValueType<F, F> {
  return scalar({
    name: "function",
    expected: "a function (set in a .ts or .js config file)",
    metavar: "",
    parse: (v) => (typeof v === "function" ? (v as F) : undefined),
  });
}

/**
 * File mode bits (a umask): an integer 0-511, or a string in octal, `"022"`, `"0o022"`.
 * Returns undefined when invalid.
 */
export function parseMode(value: unknown): number | undefined {
  if (typeof value === "number") {
    return Number.isInteger(value) && value >= 0 && value <= 0o777 ? value : undefined;
  }
  if (typeof value !== "string") return undefined;
  const m = /^(?:0o)?([0-7]{1,4})$/i.exec(value.trim());
  if (!m) return undefined;
  const mode = Number.parseInt(m[1]!, 8);
  return mode <= 0o777 ? mode : undefined;
}

/** File mode bits: `"022"`, `"0o027"` (octal) or an integer. */
export function mode(): ValueType<number | string, number> {
  return scalar({
    name: "octal mode",
    expected: 'file mode bits in octal ("022", "0o027") or an integer from 0 to 511',
    metavar: "MODE",
    fromString: (t) => t,
    parse: parseMode,
  });
}

/** A user or group: a name, or a numeric id. */
export function account(): ValueType<string | number, string | number> {
  return scalar({
    name: "name or id",
    expected: "a user/group name or a numeric id",
    metavar: "NAME|ID",
    fromString: (t) => (/^\d+$/.test(t) ? Number(t) : t),
    parse: (v) =>
      (typeof v === "number" && Number.isInteger(v) && v >= 0) ||
      (typeof v === "string" && /^[A-Za-z_][\w.-]*\$?$/.test(v))
        ? v
        : undefined,
  });
}

/** `NAME=value`: one environment variable to set. */
export function envAssignment(): ValueType<string, string> {
  return scalar({
    name: "NAME=value",
    expected: 'an environment assignment "NAME=value"',
    metavar: "NAME=VALUE",
    parse: (v) => (typeof v === "string" && /^[A-Za-z_][A-Za-z0-9_]*=/.test(v) ? v : undefined),
  });
}

/**
 * A peer allowed to set forwarding headers: an IP (`10.0.0.1`, `::1`), a CIDR (`10.0.0.0/8`),
 * `unix` (unix socket peers) or `*` (everyone).
 */
export function trustedPeer(): ValueType<string, string> {
  return scalar({
    name: "IP, CIDR, unix or *",
    expected: 'an IP address, a CIDR ("10.0.0.0/8"), "unix" or "*"',
    metavar: "ADDRESS",
    parse: (v) => {
      if (typeof v !== "string") return undefined;
      const text = v.trim();
      if (text === "unix" || text === "*") return text;
      const slash = text.indexOf("/");
      const addr = slash < 0 ? text : text.slice(0, slash);
      const family = isIP(addr);
      if (family === 0) return undefined;
      if (slash < 0) return text;
      const prefix = text.slice(slash + 1);
      const bits = Number(prefix);
      return /^\d{1,3}$/.test(prefix) && bits <= (family === 4 ? 32 : 128) ? text : undefined;
    },
  });
}
