/**
 * The thread bcrypt.ts starts: checks bcrypt hashes with bcryptjs, one message at a time, off the
 * web worker's event loop.
 */

import { parentPort } from "node:worker_threads";
import bcrypt from "bcryptjs";

parentPort!.on("message", (m: { id: number; hash: string; password: string }) => {
  let ok = false;
  try {
    ok = bcrypt.compareSync(m.password, m.hash);
  } catch {
    // a malformed hash never matches
  }
  parentPort!.postMessage({ id: m.id, ok });
});
