/**
 * Which media types are worth compressing: by default, every `text/*` type and every type the
 * mime-db registry marks compressible, except two that must not be: `application/octet-stream`
 * (the type of unknown, often already compressed, files) and `text/event-stream` (compressing it
 * holds events back in the compressor's buffer).
 */
import mimeDb from "mime-db";

const never = new Set(["application/octet-stream", "text/event-stream"]);

/** The bare, lowercase media type of a Content-Type value. */
export function bareType(contentType: string): string {
  const semi = contentType.indexOf(";");
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

export function compressibleByDefault(type: string): boolean {
  if (never.has(type)) return false;
  if (type.startsWith("text/")) return true;
  return mimeDb[type]?.compressible === true;
}

/** A matcher for `compressTypes` patterns (`text/html`, `text/*`, `*`), or the default. */
export function typeMatcher(patterns: readonly string[] | undefined): (bare: string) => boolean {
  if (patterns === undefined) return compressibleByDefault;
  const exact = new Set<string>();
  const majors: string[] = [];
  let all = false;
  for (const p of patterns.map((x) => x.toLowerCase())) {
    if (p === "*" || p === "*/*") all = true;
    else if (p.endsWith("/*")) majors.push(p.slice(0, -1));
    else exact.add(p);
  }
  return (bare) => all || exact.has(bare) || majors.some((m) => bare.startsWith(m));
}
