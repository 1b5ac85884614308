// Entry point: the projector as its own process (`npm run start:projector`).
import {
  connectNats,
  createLogger,
  exitOnStartFailure,
  loadConfig,
  onShutdownSignal,
  openStore,
  requireSetting,
} from "@keybox/shared";
import { startHealthServer } from "./adapters/healthServer.ts";
import { Projector } from "./projector.ts";

try {
  const config = loadConfig();
  const log = createLogger("projector", config.LOG_LEVEL);
  const nc = await connectNats(requireSetting(config, "NATS_URL", "to run the projector on its own"), "keybox-projector");
  const store = await openStore(config);
  const projector = new Projector(nc, store, config, log);
  await projector.start();
  const health = await startHealthServer(config.METRICS_PORT, () => !nc.isClosed());
  log.info({ port: health.port }, "health and metrics listening");
  onShutdownSignal(log, async () => {
    await projector.stop();
    await health.close();
    await nc.drain();
    await store.close();
  });
} catch (error) {
  exitOnStartFailure(error);
}
