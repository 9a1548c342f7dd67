/**
 * The entry point the master starts for each worker, as a child process (init arrives as the
 * first IPC message) or as a worker_thread (init is `workerData`). It adapts the transport to a
 * `MasterChannel` and hands over to `runWorker`.
 *
 * In a child process, signals mirror the master's messages so a worker can also be driven by
 * hand or by a terminal's process-group signals: TERM = graceful stop, INT/QUIT = fast stop.
 * Signals meant for the master only (HUP, USR1, USR2, TTIN, TTOU, WINCH) are ignored: a terminal
 * sends them to the whole group, and their defaults would kill or suspend the worker. SIGUSR1 is
 * left to Node (it opens the inspector) when the master may read a blocked worker's stack; the
 * runtime ignores it otherwise (see worker.ts).
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import type { FromWorker, ToWorker, WorkerInit } from "./protocol.ts";
import { type MasterChannel, runWorker } from "./worker.ts";

function processChannel(): MasterChannel {
  const handlers: ((msg: ToWorker, handle?: object) => void)[] = [];
  const dispatch = (msg: ToWorker, handle?: object): void => {
    for (const h of handlers) h(msg, handle);
  };
  process.on("message", (msg: ToWorker, handle?: object) => dispatch(msg, handle));
  process.on("SIGTERM", () => dispatch({ t: "stop", graceful: true }));
  process.on("SIGINT", () => dispatch({ t: "stop", graceful: false }));
  process.on("SIGQUIT", () => dispatch({ t: "stop", graceful: false }));
  for (const sig of ["SIGHUP", "SIGUSR2", "SIGTTIN", "SIGTTOU", "SIGWINCH"] as const) {
    process.on(sig, () => {});
  }
  return {
    mode: "process",
    send(msg: FromWorker) {
      if (process.connected) process.send?.(msg);
    },
    onMessage(fn) {
      handlers.push(fn);
    },
    onLost(fn) {
      process.once("disconnect", fn);
    },
    exit(code) {
      process.exit(code);
    },
  };
}

function threadChannel(): MasterChannel {
  const port = parentPort!;
  return {
    mode: "thread",
    send(msg: FromWorker) {
      port.postMessage(msg);
    },
    onMessage(fn) {
      port.on("message", fn);
    },
    onLost() {
      // A thread cannot outlive its process: nothing to watch.
    },
    exit(code) {
      // In a worker_thread, process.exit ends this thread only.
      process.exit(code);
    },
  };
}

if (isMainThread) {
  if (!process.send) {
    process.stderr.write("workerEntry.ts is started by the brigade master, not by hand\n");
    process.exit(2);
  }
  const channel = processChannel();
  process.once("message", (msg: ToWorker) => {
    if (msg.t !== "init") return;
    process.title = `brigade ${msg.init.name} worker ${msg.init.id}`;
    void runWorker(msg.init, channel);
  });
} else {
  void runWorker(workerData as WorkerInit, threadChannel());
}
