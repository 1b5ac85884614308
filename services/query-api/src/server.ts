// Composes the query API: auth, store, readiness, and the Node HTTP server.
import { createServer, type RequestListener, type Server, type ServerOptions } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { NatsConnection } from "nats";
import { generationDurable, type DashboardStore } from "@keybox/read-model";
import { answerClientErrorsWithJson, requireSetting, type Logger } from "@keybox/runtime";
import { AckFloorWatch } from "./adapters/ackFloor.ts";
import { LiveUpdates } from "./adapters/liveUpdates.ts";
import { readinessCheck } from "./adapters/readiness.ts";
import { createApp } from "./app.ts";
import { createOwnerVerifier } from "./auth.ts";
import { DashboardCache } from "./domain/dashboardCache.ts";
import { LayoutCache } from "./domain/renderDashboard.ts";
import { createDashboardFastPath, withDashboardFastPath, type FastPathFindingsByRequest } from "./dashboardFastPath.ts";
import type { QueryApiSettings } from "./config.ts";

export interface QueryApi {
  url: string;
  close(): Promise<void>;
}

export async function startQueryApi(
  config: QueryApiSettings,
  nc: NatsConnection,
  store: DashboardStore,
  log: Logger,
): Promise<QueryApi> {
  // One token cache for the app and the dashboard fast path.
  const verifyOwner = createOwnerVerifier({
    secret: requireSetting(config, "JWT_SECRET", "to verify bearer tokens"),
    algorithms: config.JWT_ALGORITHMS,
    ownerClaim: config.JWT_OWNER_CLAIM,
  });
  const live = new LiveUpdates({
    nc,
    store,
    log,
    limits: {
      heartbeatMs: config.LIVE_HEARTBEAT_SECONDS * 1000,
      perOwner: config.LIVE_STREAMS_PER_OWNER,
      perProcess: config.LIVE_STREAMS_MAX,
    },
  });
  const cache =
    config.RESPONSE_CACHE_MB > 0
      ? new DashboardCache({ maxEntries: 10_000, maxBytes: config.RESPONSE_CACHE_MB * 1024 * 1024 })
      : undefined;
  const layoutCache =
    config.LAYOUT_CACHE_MB > 0 ? new LayoutCache({ maxBytes: config.LAYOUT_CACHE_MB * 1024 * 1024 }) : undefined;
  // What the fast path found out about a request it leaves to the app, so the app does not do it again.
  const fastPathFindings: FastPathFindingsByRequest = new WeakMap();
  const app = createApp({
    store,
    log,
    live,
    verifyOwner,
    readiness: readinessCheck({ nc, store, log }),
    compression: { minBytes: config.COMPRESSION_MIN_BYTES, maxStreams: config.COMPRESSION_MAX_STREAMS },
    stalledBodyTimeoutMs: config.STALLED_BODY_TIMEOUT_MS,
    streamedBodiesMax: config.STREAMED_BODIES_MAX,
    assembledBodiesMaxBytes: config.ASSEMBLED_BODIES_MAX_MB * 1024 * 1024,
    maxPageLimit: config.PAGE_MAX_LIMIT,
    freshness: new AckFloorWatch({
      nc,
      stream: config.EVENTS_STREAM,
      // The consumer of the generation readers use (README, "Rebuild").
      durable: () => generationDurable(config.PROJECTOR_DURABLE, store.generation?.() ?? 1),
      waitMs: config.MIN_SEQ_WAIT_MS,
      pollMs: config.MIN_SEQ_POLL_MS,
      maxWaiters: config.MIN_SEQ_MAX_WAITERS,
      log,
    }),
    ...(cache && { cache }),
    ...(layoutCache && { layoutCache }),
    fastPathFindings,
  });
  // The app's cache and compression threshold, so both paths answer a request alike.
  const fastPath = createDashboardFastPath({
    store,
    verifyOwner,
    ...(cache && { cache }),
    compressionMinBytes: config.COMPRESSION_MIN_BYTES,
    findings: fastPathFindings,
  });
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve(
      {
        fetch: app.fetch,
        port: config.PORT,
        hostname: config.HOST,
        // A GET /dashboard answered from memory (a current tag, a cached body) never reaches Hono.
        createServer: ((options: ServerOptions, listener: RequestListener) =>
          createServer(options, withDashboardFastPath(fastPath, listener))) as unknown as typeof createServer,
      },
      () => resolve(s),
    );
    s.once("error", reject);
    answerClientErrorsWithJson(s as Server); // serve() makes a node:http server unless told otherwise
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.HOST === "0.0.0.0" ? "localhost" : config.HOST}:${port}`;
  log.info({ url }, "query API listening");
  return {
    url,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Live streams never end on their own: end them, so that their connections close too.
        live.close();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
