/**
 * Process exit codes, shared by every command and both tiers. They follow gunicorn's where the
 * meaning is the same, so supervisors written for gunicorn (systemd units, runit scripts) read
 * them the same way.
 */
export const ExitCode = {
  /** Clean stop. */
  ok: 0,
  /** Unexpected failure. */
  failure: 1,
  /** Bad configuration or command line: nothing was started. */
  config: 2,
  /** Workers failed to boot again and again; the master gave up instead of respawning forever. */
  workerBoot: 3,
  /** The user's app could not be loaded (syntax error, throw at import, missing export). */
  appLoad: 4,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
