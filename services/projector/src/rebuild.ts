// Entry point: `npm run rebuild`. Rebuilds the read model from the whole event stream beside the
// one readers use, with projectors that run meanwhile sharing the work, and switches readers over
// once it has caught up (README, "Rebuild"). Logs its progress; exits 0 once readers use the new
// generation and the old one is dropped, 1 when it cannot go on.
import { openReadModel } from "@keybox/read-model";
import { runService } from "@keybox/runtime";
import { projectorSettings } from "./config.ts";
import { PROJECTION_VERSION } from "./domain/applyEvent.ts";
import { ProjectorGenerations } from "./generations.ts";

await runService("rebuild", projectorSettings, async ({ config, log, nc, fail, done }) => {
  const readModel = await openReadModel(config, { appName: "keybox-rebuild" });
  const projectionVersion = config.KEYBOX_TEST_PROJECTION_VERSION ?? PROJECTION_VERSION;
  const rebuild = new ProjectorGenerations(nc, readModel, config, log, { mode: "rebuild", projectionVersion });
  await rebuild.start();
  void rebuild.failed.then(fail);
  void rebuild.finished.then(done);
  return async () => {
    await rebuild.stop();
    await readModel.close();
  };
});
