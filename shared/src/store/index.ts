import type { Config } from "../config.ts";
import { LmdbDashboardStore } from "./lmdb.ts";
import { MongoDashboardStore } from "./mongo.ts";
import type { DashboardStore } from "./types.ts";

export * from "./types.ts";
export { LmdbDashboardStore } from "./lmdb.ts";
export { MongoDashboardStore, type MongoStoreOptions } from "./mongo.ts";

/** The configured read model: MongoDB when MONGODB_URL is set, else LMDB under DATA_DIR. */
export async function openStore(config: Config): Promise<DashboardStore> {
  if (config.MONGODB_URL) {
    return MongoDashboardStore.open({
      url: config.MONGODB_URL,
      dbName: config.MONGODB_DB,
      readPreference: config.MONGODB_READ_PREFERENCE,
    });
  }
  return LmdbDashboardStore.open(config.DATA_DIR);
}
