// Entry point: the projector as its own process (`npm run start:projector`).
import { openReadModel } from "@keybox/read-model";
import { runService } from "@keybox/runtime";
import { startHealthServer } from "./adapters/healthServer.ts";
import { projectorSettings } from "./config.ts";
import { PROJECTION_VERSION } from "./domain/applyEvent.ts";
import { ProjectorGenerations } from "./generations.ts";

await runService("projector", projectorSettings, async ({ config, log, nc, fail }) => {
  const readModel = await openReadModel(config, { appName: "keybox-projector" });
  const projectionVersion = config.KEYBOX_TEST_PROJECTION_VERSION ?? PROJECTION_VERSION;
  const projector = new ProjectorGenerations(nc, readModel, config, log, { mode: "serve", projectionVersion });
  await projector.start();
  void projector.failed.then(fail);
  const health = await startHealthServer(config.METRICS_PORT, () => projector.readiness());
  log.info({ port: health.port }, "health and metrics listening");
  return async () => {
    await projector.stop();
    await health.close();
    await readModel.close();
  };
});
