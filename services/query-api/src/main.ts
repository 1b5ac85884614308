// Entry point: the query API as its own process (`npm run start:query-api`).
import { requireSetting, runService } from "@keybox/shared";
import { startQueryApi } from "./server.ts";

await runService("query-api", async ({ config, log, nc, store }) => {
  requireSetting(config, "JWT_SECRET", "to verify bearer tokens");
  const api = await startQueryApi(config, nc, store, log);
  return () => api.close();
});
