// Entry point: the projector as its own process (`npm run start:projector`).
import { runService } from "@keybox/shared";
import { startHealthServer } from "./adapters/healthServer.ts";
import { Projector } from "./projector.ts";

await runService("projector", async ({ config, log, nc, store }) => {
  const projector = new Projector(nc, store, config, log);
  await projector.start();
  const health = await startHealthServer(config.METRICS_PORT, () => !nc.isClosed());
  log.info({ port: health.port }, "health and metrics listening");
  return async () => {
    await projector.stop();
    await health.close();
  };
});
