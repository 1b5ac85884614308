import type { Logger } from "pino";

/** Ctrl-C reaches a process both from the terminal and through its parent: one press, two signals. */
const DUPLICATE_SIGNAL_MS = 1000;

/**
 * Runs `shutdown` once on SIGINT or SIGTERM, then exits: 0 when it finished, 1 when it failed.
 * Another signal more than a second later exits at once.
 */
export function onShutdownSignal(log: Logger, shutdown: () => Promise<void>): void {
  let stoppingSince: number | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince > DUPLICATE_SIGNAL_MS) process.exit(1);
      return;
    }
    stoppingSince = Date.now();
    log.info({ signal }, "shutting down");
    shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}

/** For entry points: a failure to start (bad configuration included) is one clear line and exit 1. */
export function exitOnStartFailure(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`Failed to start: ${message}\n`);
  process.exit(1);
}
