// Entry point: the projector as its own process (`npm run start:projector`).
import { runService } from "@keybox/shared";
import { startHealthServer } from "./adapters/healthServer.ts";
import { Projector } from "./projector.ts";

await runService("projector", async ({ config, log, nc, store, fail }) => {
  const projector = new Projector(nc, store, config, log);
  await projector.start();
  void projector.failed.then(fail);
  const health = await startHealthServer(config.METRICS_PORT, () => projector.readiness());
  log.info({ port: health.port }, "health and metrics listening");
  return async () => {
    await projector.stop();
    await health.close();
  };
});
