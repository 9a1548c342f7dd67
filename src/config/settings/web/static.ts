/**
 * Fields of the static-file module (src/webserver/static/), valid in server and location blocks.
 * Owned by that module: extend this table there. The core only relies on `root` existing, for
 * the quick-start `brigade web --root DIR` (src/config/settings/web.ts).
 *
 * Module fields give no `default`: inheritance (location < enclosing location < server < the
 * web section) needs to see "unset". The default is stated in the doc and applied by the module.
 */
import { field, list, optional, string } from "../../types.ts";

export const staticFields = {
  root: field({
    type: optional(string({ metavar: "DIR" })),
    doc: "The directory files are served from: a request for `/a/b.txt` is `<root>/a/b.txt`. Relative to the config file's directory (or the working directory without one). Unset: no files are served.",
    nginx: "root",
  }),
  index: field({
    type: optional(list(string())),
    doc: 'The files tried, in order, for a request ending in "/". Default `["index.html"]`.',
    nginx: "index",
  }),
};
