// Entry point: the projector as its own process (`npm run start:projector`).
import { openStore } from "@keybox/read-model";
import { runService } from "@keybox/runtime";
import { startHealthServer } from "./adapters/healthServer.ts";
import { projectorSettings } from "./config.ts";
import { Projector } from "./projector.ts";

await runService("projector", projectorSettings, async ({ config, log, nc, fail }) => {
  const store = await openStore(config, { appName: "keybox-projector" });
  const projector = new Projector(nc, store, config, log);
  await projector.start();
  void projector.failed.then(fail);
  const health = await startHealthServer(config.METRICS_PORT, () => projector.readiness());
  log.info({ port: health.port }, "health and metrics listening");
  return async () => {
    await projector.stop();
    await health.close();
    await store.close();
  };
});
