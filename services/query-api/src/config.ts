// The query API's settings: exactly what it reads, validated at start.
import { z } from "zod";
import { storeSettings } from "@keybox/read-model";
import { intSetting, runtimeSettings } from "@keybox/runtime";

export const queryApiSettings = z.object({
  ...runtimeSettings.shape,
  ...storeSettings.shape,
  PORT: intSetting(0, 65_535).default(3000),
  HOST: z.string().min(1).default("0.0.0.0"),
  // Memory for recently served dashboards (0 turns the cache off).
  RESPONSE_CACHE_MB: intSetting(0, 4096).default(64),
  // Smaller dashboard bodies are sent uncompressed: compressing them saves less than it costs.
  COMPRESSION_MIN_BYTES: intSetting(0, 2 ** 31 - 1).default(1024),
  // Large bodies streamed through a compressor at once (each holds one and keeps the threadpool busy).
  COMPRESSION_MAX_STREAMS: intSetting(0, 10_000).default(16),
  JWT_SECRET: z.string().min(32, "must be at least 32 characters (256 bits) for HS256").optional(),
  JWT_OWNER_CLAIM: z.string().min(1).default("userId"),
  JWT_ALGORITHMS: z
    .string()
    .default("HS256")
    .transform((s) => s.split(",").map((a) => a.trim()))
    .pipe(z.array(z.enum(["HS256", "HS384", "HS512"])).min(1)),
});

export type QueryApiSettings = z.infer<typeof queryApiSettings>;
