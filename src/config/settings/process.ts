/**
 * The process settings both tiers share (a master and N workers, see src/process/): declared
 * once here and spread into the `app` and `web` sections with each tier's defaults.
 */
import { type Env, setting } from "../setting.ts";
import { duration, list, nodeFlag, oneOf, optional, string, workers } from "../types.ts";

interface TierDefaults {
  /** "app server" or "web server", for the docs. */
  name: string;
  workers: number | "auto" | ((env: Env) => number | "auto");
  workersText?: string;
  workersDoc: string;
  nginxWorkers?: string;
}

export function processSettings(tier: TierDefaults) {
  return {
    workers: setting({
      type: workers(),
      default: tier.workers,
      ...(tier.workersText !== undefined ? { defaultText: tier.workersText } : {}),
      short: "w",
      doc: `The number of ${tier.name} worker processes. ${tier.workersDoc} Change it while running with the TTIN and TTOU signals.`,
      gunicorn: "workers",
      ...(tier.nginxWorkers !== undefined ? { nginx: tier.nginxWorkers } : {}),
    }),
    timeout: setting({
      type: duration(),
      default: 30,
      short: "t",
      doc: `How long ${/^[aeiou]/.test(tier.name) ? "an" : "a"} ${tier.name} worker may go without a heartbeat to its master before it is killed and replaced (its event loop is blocked). 0 disables the check.`,
      gunicorn: "timeout",
    }),
    gracefulTimeout: setting({
      type: duration(),
      default: 30,
      doc: `On a graceful stop or reload, how long ${tier.name} workers may take to finish the requests in flight before they are killed.`,
      gunicorn: "graceful_timeout",
      nginx: "worker_shutdown_timeout",
    }),
    pidfile: setting({
      type: optional(string({ metavar: "FILE" })),
      default: undefined,
      short: "p",
      doc: `A file the ${tier.name} master writes its process id to, for init scripts and for sending it signals. None by default.`,
      gunicorn: "pidfile",
      nginx: "pid",
    }),
    workerMode: setting({
      type: oneOf(["process", "thread"]),
      default: "process",
      doc: `How ${tier.name} workers run: \`process\` forks a child process per worker (isolated: a crash or a blocked event loop takes one worker down); \`thread\` runs each worker in a worker thread of the master's process (cheaper, less isolated).`,
    }),
    nodeArgs: setting({
      type: list(nodeFlag()),
      default: [],
      flag: "node-arg",
      doc: `Node.js flags for the ${tier.name} worker processes (PM2's \`node_args\`), e.g. \`["--max-old-space-size=4096"]\` or \`--node-arg --max-semi-space-size=32\`: V8 flags too, which \`NODE_OPTIONS\` partly refuses. The master runs without them; workers started after a reload get the new list. Only with \`workerMode: process\` (threads share the master's V8). None by default.`,
    }),
  };
}
