// Configuration from the environment, validated once at start against the schema of the service
// that runs (so no service refuses to start over another's setting). A bad value stops the process
// with a message that names the variable.
import { z } from "zod";

/** A whole number from the environment, within bounds. */
export const intSetting = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** A JetStream stream or consumer name. */
export const natsNameSetting = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of [A-Za-z0-9_-]");

/** What every service reads: where NATS is, and how much to log. */
export const runtimeSettings = z.object({
  NATS_URL: z.string().min(1).optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type RuntimeSettings = z.infer<typeof runtimeSettings>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Reads the configuration; empty strings count as unset so `FOO= cmd` means the default. */
export function loadConfig<C>(schema: z.ZodType<C>, env: NodeJS.ProcessEnv = process.env): C {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`Invalid configuration: ${problems.join("; ")}`);
  }
  return parsed.data;
}

/** For the settings a particular service cannot run without. */
export function requireSetting<C extends object, K extends keyof C>(
  config: C,
  name: K,
  why: string,
): NonNullable<C[K]> {
  const value = config[name];
  if (value === undefined) throw new ConfigError(`Invalid configuration: ${String(name)} is required ${why}`);
  return value as NonNullable<C[K]>;
}
