/**
 * The web server's modules, in order: the one place the order is written down (nginx's
 * auto/modules). Within each phase, handlers run in this order; `wrapContent` layers wrap
 * outermost first; the first `defaultContent` wins; filters run in this order on the way out.
 *
 * Where modules of the coming issues go (realip, block, limits, access and static are in):
 * - access phase (issue 9): realip, access (allow/deny), auth basic, auth request, limits,
 *   after `rewrite`;
 * - content: static (defaultContent), proxy (issue 5), cache (wrapContent, issue: cache),
 *   forward (the forward proxy: its checks in the access phase, then its content handler);
 * - filters: `headers`, then compression (gzip/brotli) last, so that it compresses the final
 *   body and sees the final headers;
 * - log: `accessLog` (metrics beside it).
 *
 * A module's settings are mounted in src/config/settings/web.ts in the same order.
 */
import { accessModule } from "./access/index.ts";
import { accessLog } from "./accessLog/index.ts";
import { blockModule } from "./block/index.ts";
import { cacheModule } from "./cache/index.ts";
import { compressModule } from "./compress/index.ts";
import { forwardModule } from "./forward/index.ts";
import { headers } from "./headers/index.ts";
import { limitsModule } from "./limits/index.ts";
import type { WebModule } from "./module.ts";
import { proxy } from "./proxy/index.ts";
import { realipModule } from "./realip/index.ts";
import { rewrite } from "./rewrite/index.ts";
import { staticModule } from "./static/index.ts";

// realip first: its server rewrite and rewrite handlers set the client address every later
// handler (rewrite, access, log) sees. Then, in the access phase: block (free refusals), limits
// (counted before any credential is checked), access (allow/deny, basic auth, auth request).
// biome-ignore lint/suspicious/noExplicitAny: modules of every settings type.
export const modules: readonly WebModule<any>[] = [
  realipModule,
  rewrite,
  blockModule,
  limitsModule,
  accessModule,
  staticModule,
  proxy,
  cacheModule,
  forwardModule,
  headers,
  compressModule,
  accessLog,
];
