// Entry point: the projector as its own process (`npm run start:projector`).
import { runService } from "@keybox/shared";
import { startHealthServer } from "./adapters/healthServer.ts";
import { Projector } from "./projector.ts";

await runService("projector", async ({ config, log, nc, store }) => {
  const projector = new Projector(nc, store, config, log);
  await projector.start();
  // Ready while connected to NATS and the read model answers.
  const health = await startHealthServer(config.METRICS_PORT, async () => !nc.isClosed() && (await store.appliedSeq()) >= 0);
  log.info({ port: health.port }, "health and metrics listening");
  return async () => {
    await projector.stop();
    await health.close();
  };
});
