/**
 * The server's own answers for statuses it produces itself: reason phrases, and the small HTML
 * page nginx sends for errors and redirects (its ngx_http_error_pages, with our name).
 */
import { STATUS_CODES } from "node:http";

/** The reason phrase of `status` ("Not Found"); nginx's for its non-standard ones. */
export function reasonPhrase(status: number): string {
  if (status === 444) return "No Response";
  if (status === 494) return "Request Header Too Large";
  if (status === 499) return "Client Closed Request";
  return STATUS_CODES[status] ?? "Unknown";
}

const cache = new Map<string, string>();

/**
 * The built-in page for `status`, or "" for statuses sent without a body (1xx, 204, 304, and
 * 2xx in general). `signature` is the name at the bottom ("" to leave it out, `serverHeader: off`).
 */
export function defaultPage(status: number, signature: string): string {
  if (status < 300 || status === 304) return "";
  const key = `${status} ${signature}`;
  let page = cache.get(key);
  if (page === undefined) {
    const title = `${status} ${reasonPhrase(status)}`;
    page = `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n${signature === "" ? "" : `<hr><center>${signature}</center>\r\n`}</body>\r\n</html>\r\n`;
    if (cache.size < 200) cache.set(key, page);
  }
  return page;
}

/** Statuses whose responses never carry a body (RFC 9110 §6.4.1). */
export function noBodyStatus(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}
