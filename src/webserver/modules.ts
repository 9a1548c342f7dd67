/**
 * The web server's modules, in order: the one place the order is written down (nginx's
 * auto/modules). Within each phase, handlers run in this order; `wrapContent` layers wrap
 * outermost first; the first `defaultContent` wins; filters run in this order on the way out.
 *
 * Where modules of the coming issues go:
 * - access phase (issue 9): realip, access (allow/deny), auth basic, auth request, limits,
 *   after `rewrite`;
 * - content: static (defaultContent), proxy (issue 5), cache (wrapContent, issue: cache),
 *   forward proxy;
 * - filters: `headers`, then compression (gzip/brotli) last, so that it compresses the final
 *   body and sees the final headers;
 * - log: `accessLog` (metrics beside it).
 *
 * A module's settings are mounted in src/config/settings/web.ts in the same order.
 */
import { accessLog } from "./accessLog/index.ts";
import { compressModule } from "./compress/index.ts";
import { headers } from "./headers/index.ts";
import type { WebModule } from "./module.ts";
import { proxy } from "./proxy/index.ts";
import { rewrite } from "./rewrite/index.ts";
import { staticModule } from "./static/index.ts";

// biome-ignore lint/suspicious/noExplicitAny: modules of every settings type.
export const modules: readonly WebModule<any>[] = [
  rewrite,
  staticModule,
  proxy,
  headers,
  compressModule,
  accessLog,
];
