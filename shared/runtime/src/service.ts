// The common life of a service process: configuration, logger, NATS, clean shutdown on
// SIGINT/SIGTERM or when the service reports that it cannot go on, and one clear line and exit 1
// when it cannot start.
import type { z } from "zod";
import { loadConfig, requireSetting, type RuntimeSettings } from "./config.ts";
import { exitOnStartFailure, onShutdownSignal } from "./lifecycle.ts";
import { createLogger, type Logger } from "./logger.ts";
import { collectProcessMetrics } from "./metrics.ts";
import { connectNats } from "./nats.ts";
import type { NatsConnection } from "nats";

export interface ServiceContext<C> {
  config: C;
  log: Logger;
  nc: NatsConnection;
  /** Reports that the service cannot go on: it shuts down and the process exits with 1. */
  fail: (failure: Error) => void;
  /** Reports that the service has done its work (a command): it shuts down and the process exits with 0. */
  done: () => void;
}

/**
 * Runs a service: validates its settings, collects the process metrics, connects to NATS
 * (`NATS_URL` is required), and starts it.
 * `start` returns how to stop what it started; NATS is drained after that.
 *
 * @example
 * await runService("projector", projectorSettings, async ({ config, log, nc, fail }) => {
 *   const readModel = await openReadModel(config);
 *   const projector = new Projector(nc, await readModel.generation(1), config, log);
 *   await projector.start();
 *   void projector.failed.then(fail);
 *   return async () => {
 *     await projector.stop();
 *     await readModel.close();
 *   };
 * });
 */
export async function runService<C extends RuntimeSettings>(
  name: string,
  settings: z.ZodType<C>,
  start: (context: ServiceContext<C>) => Promise<() => Promise<void>>,
): Promise<void> {
  try {
    const config = loadConfig(settings);
    const log = createLogger(name, config.LOG_LEVEL);
    collectProcessMetrics();
    const nc = await connectNats(requireSetting(config, "NATS_URL", `to run the ${name} on its own`), `keybox-${name}`);
    let report: (failure?: Error) => void = () => {};
    const ended = new Promise<Error | undefined>((resolve) => (report = resolve));
    const stop = await start({ config, log, nc, fail: report, done: () => report() });
    const shutDownAfter = onShutdownSignal(log, async () => {
      await stop();
      await nc.drain();
    });
    void ended.then(shutDownAfter);
  } catch (error) {
    exitOnStartFailure(error);
  }
}
