// Which read model a process uses, from its environment: MongoDB when MONGODB_URL is set, else
// LMDB under DATA_DIR. Each adapter is loaded only when chosen, so an LMDB-only process never
// loads the MongoDB driver.
import path from "node:path";
import { z } from "zod";
import type { ReadModel } from "./generations.ts";

/** The store's settings, for a service's configuration schema. */
export const storeSettings = z.object({
  MONGODB_URL: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, "must start with mongodb:// or mongodb+srv://")
    .optional(),
  MONGODB_DB: z
    .string()
    .regex(/^[^/\\. "$*<>:|?]{1,63}$/, "must be a valid MongoDB database name")
    .optional(),
  MONGODB_READ_PREFERENCE: z
    .enum(["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"])
    .default("primary"),
  // Relative to the working directory: the repository for the npm scripts, /app in the image.
  DATA_DIR: z.string().min(1).default(path.resolve(".data")),
});
export type StoreSettings = z.infer<typeof storeSettings>;

export interface OpenReadModelOptions {
  /** A reader only checks the stored format; creating collections and recording it is a writer's job. */
  readOnly?: boolean;
  /** Names the process to MongoDB. */
  appName?: string;
}

/** The read model and its generations (see generations.ts): readers use `current()`, the projector each generation's store. */
export async function openReadModel(settings: StoreSettings, options: OpenReadModelOptions = {}): Promise<ReadModel> {
  if (settings.MONGODB_URL) {
    const { MongoReadModel } = await import("./mongoReadModel.ts");
    return MongoReadModel.open({
      url: settings.MONGODB_URL,
      dbName: settings.MONGODB_DB,
      readPreference: settings.MONGODB_READ_PREFERENCE,
      ...options,
    });
  }
  const { LmdbReadModel } = await import("./lmdbReadModel.ts");
  return LmdbReadModel.open(settings.DATA_DIR, options);
}
