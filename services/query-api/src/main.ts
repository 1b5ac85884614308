// Entry point: the query API as its own process (`npm run start:query-api`).
import {
  connectNats,
  createLogger,
  exitOnStartFailure,
  loadConfig,
  onShutdownSignal,
  openStore,
  requireSetting,
} from "@keybox/shared";
import { startQueryApi } from "./server.ts";

try {
  const config = loadConfig();
  const log = createLogger("query-api", config.LOG_LEVEL);
  requireSetting(config, "JWT_SECRET", "to verify bearer tokens");
  const nc = await connectNats(requireSetting(config, "NATS_URL", "to run the query API on its own"), "keybox-query-api");
  const store = await openStore(config);
  const api = await startQueryApi(config, nc, store, log);
  onShutdownSignal(log, async () => {
    await api.close();
    await nc.drain();
    await store.close();
  });
} catch (error) {
  exitOnStartFailure(error);
}
