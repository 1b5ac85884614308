import type { Logger } from "pino";

/** Ctrl-C reaches a process both from the terminal and through its parent: one press, two signals. */
const DUPLICATE_SIGNAL_MS = 1000;

/**
 * Runs `shutdown` once, on SIGINT or SIGTERM or when the returned function reports a failure or
 * (called without one) that the work is done, then exits: 0 after a signal or done and a clean
 * shutdown, 1 after a failure. Another signal more than a second later exits at once.
 */
export function onShutdownSignal(log: Logger, shutdown: () => Promise<void>): (failure?: Error) => void {
  let stoppingSince: number | undefined;
  const stop = (exitCode: number) => {
    stoppingSince = Date.now();
    shutdown().then(
      () => process.exit(exitCode),
      (error: unknown) => {
        log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  const handler = (signal: NodeJS.Signals) => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince > DUPLICATE_SIGNAL_MS) process.exit(1);
      return;
    }
    log.info({ signal }, "shutting down");
    stop(0);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return (failure) => {
    if (stoppingSince !== undefined) return;
    if (failure) log.fatal({ err: failure }, "shutting down after a failure");
    else log.info("done; shutting down");
    stop(failure ? 1 : 0);
  };
}

/** For entry points: a failure to start (bad configuration included) is one clear line and exit 1. */
export function exitOnStartFailure(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`Failed to start: ${message}\n`);
  process.exit(1);
}
