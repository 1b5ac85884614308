// Configuration from the environment, validated once at start. A bad value stops the process
// with a message that names the variable.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/** The repository root, for the default data folder. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const streamName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of [A-Za-z0-9_-]");

const configSchema = z.object({
  NATS_URL: z.string().min(1).optional(),
  EVENTS_STREAM: streamName.default("KEYBOX_EVENTS"),
  DLQ_STREAM: streamName.default("KEYBOX_DLQ"),
  PROJECTOR_DURABLE: streamName.default("dashboard-projector"),
  PROJECTOR_BATCH_SIZE: int(1, 10_000).default(256),
  PROJECTOR_ACK_WAIT_MS: int(1000, 3_600_000).default(10_000),
  // JetStream needs max_deliver greater than the number of backoff steps, so at least 2.
  PROJECTOR_MAX_DELIVER: int(2, 100).default(8),
  // At most 512 KiB: a license is stored whole in one chunk, and no part may pass PART_MAX_BYTES.
  MAX_EVENT_BYTES: int(1024, 512 * 1024).default(256 * 1024),
  MONGODB_URL: z.string().regex(/^mongodb(\+srv)?:\/\//, "must start with mongodb:// or mongodb+srv://").optional(),
  MONGODB_DB: z.string().regex(/^[^/\\. "$*<>:|?]{1,63}$/, "must be a valid MongoDB database name").optional(),
  MONGODB_READ_PREFERENCE: z
    .enum(["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"])
    .default("primary"),
  DATA_DIR: z.string().min(1).default(path.join(REPO_ROOT, ".data")),
  PORT: int(0, 65_535).default(3000),
  HOST: z.string().min(1).default("0.0.0.0"),
  METRICS_PORT: int(0, 65_535).default(9464),
  JWT_SECRET: z.string().min(32, "must be at least 32 characters (256 bits) for HS256").optional(),
  JWT_OWNER_CLAIM: z.string().min(1).default("userId"),
  JWT_ALGORITHMS: z
    .string()
    .default("HS256")
    .transform((s) => s.split(",").map((a) => a.trim()))
    .pipe(z.array(z.enum(["HS256", "HS384", "HS512"])).min(1)),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Reads the configuration; empty strings count as unset so `FOO= cmd` means the default. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`Invalid configuration: ${problems.join("; ")}`);
  }
  return parsed.data;
}

/** For the settings a particular service cannot run without. */
export function requireSetting<K extends keyof Config>(config: Config, name: K, why: string): NonNullable<Config[K]> {
  const value = config[name];
  if (value === undefined) throw new ConfigError(`Invalid configuration: ${name} is required ${why}`);
  return value as NonNullable<Config[K]>;
}
