import { Counter, Gauge } from "prom-client";

export const queryApiMetrics = {
  dashboardReads: new Counter({
    name: "keybox_query_dashboard_reads_total",
    help: "GET /dashboard answers by where the body came from: the response cache, or the store (read and rendered)",
    labelNames: ["source"] as const,
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
    help: "Owners whose stored version was re-checked after a NATS reconnect, by whether it had moved (a notice was lost)",
    labelNames: ["moved"] as const,
  }),
};
