// The common life of a service process: configuration, logger, NATS, the read model, clean
// shutdown on SIGINT/SIGTERM, and one clear line and exit 1 when it cannot start.
import { loadConfig, requireSetting, type Config } from "./config.ts";
import { exitOnStartFailure, onShutdownSignal } from "./lifecycle.ts";
import { createLogger, type Logger } from "./logger.ts";
import { connectNats, type NatsConnection } from "./nats.ts";
import { openStore, type DashboardStore } from "./store/index.ts";

export interface ServiceContext {
  config: Config;
  log: Logger;
  nc: NatsConnection;
  store: DashboardStore;
  /** Reports that the service cannot go on: it shuts down and the process exits with 1. */
  fail: (failure: Error) => void;
}

/** Runs a service; `start` returns how to stop what it started (before NATS and the store close). */
export async function runService(name: string, start: (context: ServiceContext) => Promise<() => Promise<void>>): Promise<void> {
  try {
    const config = loadConfig();
    const log = createLogger(name, config.LOG_LEVEL);
    const nc = await connectNats(requireSetting(config, "NATS_URL", `to run the ${name} on its own`), `keybox-${name}`);
    const store = await openStore(config);
    let reportFailure: (failure: Error) => void = () => {};
    const failed = new Promise<Error>((resolve) => (reportFailure = resolve));
    const stop = await start({ config, log, nc, store, fail: reportFailure });
    const shutDownAfter = onShutdownSignal(log, async () => {
      await stop();
      await nc.drain();
      await store.close();
    });
    void failed.then(shutDownAfter);
  } catch (error) {
    exitOnStartFailure(error);
  }
}
