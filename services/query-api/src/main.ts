// Entry point: the query API as its own process (`npm run start:query-api`).
import { openReadModel } from "@keybox/read-model";
import { requireSetting, runService } from "@keybox/runtime";
import { queryApiSettings } from "./config.ts";
import { startQueryApi } from "./server.ts";

await runService("query-api", queryApiSettings, async ({ config, log, nc }) => {
  requireSetting(config, "JWT_SECRET", "to verify bearer tokens");
  // A reader: it never creates collections or records the format, so a read-only role will do.
  const readModel = await openReadModel(config, { readOnly: true, appName: "keybox-query-api" });
  const api = await startQueryApi(config, nc, await readModel.current(), log);
  return async () => {
    await api.close();
    await readModel.close();
  };
});
