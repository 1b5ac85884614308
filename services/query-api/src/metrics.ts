import { Counter, Gauge, Histogram } from "prom-client";

/** Route labels: the route's pattern, or "unmatched" (so a scan of random paths adds no series). */
const requestLabels = ["route", "status"] as const;

export const queryApiMetrics = {
  dashboardReads: new Counter({
    name: "keybox_query_dashboard_reads_total",
    help:
      "GET /dashboard answers by where the body came from: the response cache, the store (read and rendered), " +
      "or none (revalidated: 304 from the version alone)",
    labelNames: ["source"] as const,
  }),
  httpRequests: new Counter({
    name: "keybox_query_http_requests_total",
    help: "HTTP requests answered, by route and status",
    labelNames: requestLabels,
  }),
  httpSeconds: new Histogram({
    name: "keybox_query_http_request_duration_seconds",
    help:
      "From a request's arrival to its answer started (a streamed body may still be on its way), " +
      "by route and status",
    labelNames: requestLabels,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  }),
  tokenVerifications: new Counter({
    name: "keybox_query_token_verifications_total",
    help:
      "Bearer tokens whose signature was checked (those not remembered from an earlier request), by result: " +
      "accepted, or refused (a bad signature, expired, malformed, or no owner claim)",
    labelNames: ["result"] as const,
  }),
  dashboardCompressions: new Counter({
    name: "keybox_query_dashboard_compressions_total",
    help:
      "GET /dashboard bodies compressed, by coding and how: whole (a body up to 1 MiB, kept beside it in the " +
      "response cache when the cache keeps the body) or streamed (a larger one, compressed for each request)",
    labelNames: ["coding", "body"] as const,
  }),
  streamedBodies: new Gauge({
    name: "keybox_query_dashboard_streamed_bodies",
    help: "Large GET /dashboard bodies being filled from a snapshot of the store they hold now",
  }),
  layoutCacheBytes: new Gauge({
    name: "keybox_query_layout_cache_bytes",
    help: "About how much memory the client layouts kept between reads hold (LAYOUT_CACHE_MB caps it)",
  }),
  assembledBodyBytes: new Gauge({
    name: "keybox_query_dashboard_assembled_body_bytes",
    help: "Bytes of large GET /dashboard bodies assembled whole and not yet sent (ASSEMBLED_BODIES_MAX_MB caps it)",
  }),
  largeBodiesRefused: new Counter({
    name: "keybox_query_dashboard_large_bodies_refused_total",
    help: "GET /dashboard answered 503 because assembling its large body would pass ASSEMBLED_BODIES_MAX_MB",
  }),
  compressedStreams: new Gauge({
    name: "keybox_query_dashboard_compressed_streams",
    help: "Large GET /dashboard bodies being streamed through a compressor now",
  }),
  minSeqRequests: new Counter({
    name: "keybox_query_min_seq_requests_total",
    help:
      "GET /dashboard requests with minSeq, by outcome: fresh, not_fresh (the wait ran out), " +
      "rejected (too many waiting)",
    labelNames: ["result"] as const,
  }),
  liveStreams: new Gauge({
    name: "keybox_query_live_streams",
    help: "Open live streams (GET /dashboard/events) in this process",
  }),
  liveOwners: new Gauge({
    name: "keybox_query_live_owners",
    help: "Owners whose change notices this process is subscribed to (those with an open live stream)",
  }),
  liveRefused: new Counter({
    name: "keybox_query_live_refused_total",
    help: "Live streams refused by a limit: owner (LIVE_STREAMS_PER_OWNER, 429) or process (LIVE_STREAMS_MAX, 503)",
    labelNames: ["limit"] as const,
  }),
  liveInvalidNotices: new Counter({
    name: "keybox_query_live_invalid_notices_total",
    help: "Change notices ignored because they did not match the contract (or named another owner than their subject)",
  }),
  liveRechecks: new Counter({
    name: "keybox_query_live_rechecks_total",
    help:
      "Owners whose live streams were re-checked after a NATS reconnect or a switch to a rebuilt read model, " +
      "by whether a version one of them follows had moved",
    labelNames: ["moved"] as const,
  }),
};
