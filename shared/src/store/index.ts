import type { Config } from "../config.ts";
import { LmdbDashboardStore } from "./lmdb.ts";
import type { DashboardStore } from "./types.ts";

export * from "./types.ts";
export { LmdbDashboardStore } from "./lmdb.ts";

/** The configured read model: MongoDB when MONGODB_URL is set, else LMDB under DATA_DIR. */
export async function openStore(config: Config): Promise<DashboardStore> {
  if (config.MONGODB_URL) {
    throw new Error("MONGODB_URL is set, but the MongoDB read model is not available in this version");
  }
  return LmdbDashboardStore.open(config.DATA_DIR);
}
