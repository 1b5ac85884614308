// The query API's settings: exactly what it reads, validated at start.
import { z } from "zod";
import { DEFAULT_EVENTS_STREAM, DEFAULT_PROJECTOR_DURABLE } from "@keybox/contract";
import { storeSettings } from "@keybox/read-model";
import { intSetting, natsNameSetting, runtimeSettings } from "@keybox/runtime";

/** The default of PAGE_MAX_LIMIT. */
export const DEFAULT_PAGE_MAX_LIMIT = 1000;

export const queryApiSettings = z.object({
  ...runtimeSettings.shape,
  ...storeSettings.shape,
  PORT: intSetting(0, 65_535).default(3000),
  HOST: z.string().min(1).default("0.0.0.0"),
  // Memory for recently served dashboards (0 turns the cache off).
  RESPONSE_CACHE_MB: intSetting(0, 4096).default(64),
  // Memory for the layouts of recently read clients (0 lays out every client on every read).
  LAYOUT_CACHE_MB: intSetting(0, 4096).default(32),
  // Smaller dashboard bodies are sent uncompressed: compressing them saves less than it costs.
  COMPRESSION_MIN_BYTES: intSetting(0, 2 ** 31 - 1).default(1024),
  // Large bodies streamed through a compressor at once (each holds one and keeps the threadpool busy).
  COMPRESSION_MAX_STREAMS: intSetting(0, 10_000).default(16),
  // Large bodies sent at once while being filled from a snapshot of the store, each holding an
  // LMDB read transaction until sent; past it a large body is assembled whole first (0: always).
  STREAMED_BODIES_MAX: intSetting(0, 10_000).default(32),
  // Memory for large bodies assembled whole (past STREAMED_BODIES_MAX, or on MongoDB) at once; past
  // it such a request is answered 503 (one body is always admitted when none is held).
  ASSEMBLED_BODIES_MAX_MB: intSetting(1, 65_536).default(256),
  // A large body whose client reads nothing of it for this long is abandoned: the connection is
  // closed, freeing the body (and its compressor) that a stalled client would otherwise hold.
  STALLED_BODY_TIMEOUT_MS: intSetting(1000, 3_600_000).default(60_000),
  // The most clients one page of GET /dashboard?limit=… may ask for.
  PAGE_MAX_LIMIT: intSetting(1, 100_000).default(DEFAULT_PAGE_MAX_LIMIT),
  // Read your own writes (minSeq): the projector's consumer whose acknowledgement floor says what
  // is committed, how long a request may wait for it, how often it is polled while anyone waits,
  // and how many requests may wait at once.
  EVENTS_STREAM: natsNameSetting.default(DEFAULT_EVENTS_STREAM),
  PROJECTOR_DURABLE: natsNameSetting.default(DEFAULT_PROJECTOR_DURABLE),
  MIN_SEQ_WAIT_MS: intSetting(0, 60_000).default(2000),
  MIN_SEQ_POLL_MS: intSetting(5, 1000).default(25),
  MIN_SEQ_MAX_WAITERS: intSetting(1, 1_000_000).default(10_000),
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
