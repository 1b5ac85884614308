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
  // Live streams (GET /dashboard/events): how often an idle one gets a keep-alive comment, and how
  // many may be open per owner and in this process.
  LIVE_HEARTBEAT_SECONDS: intSetting(1, 3600).default(15),
  LIVE_STREAMS_PER_OWNER: intSetting(1, 100_000).default(100),
  LIVE_STREAMS_MAX: intSetting(1, 1_000_000).default(10_000),
  JWT_SECRET: z.string().min(32, "must be at least 32 characters (256 bits) for HS256").optional(),
  JWT_OWNER_CLAIM: z.string().min(1).default("userId"),
  JWT_ALGORITHMS: z
    .string()
    .default("HS256")
    .transform((s) => s.split(",").map((a) => a.trim()))
    .pipe(z.array(z.enum(["HS256", "HS384", "HS512"])).min(1)),
});

export type QueryApiSettings = z.infer<typeof queryApiSettings>;
