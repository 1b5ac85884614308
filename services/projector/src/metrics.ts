import { Counter, Gauge } from "prom-client";

export const projectorMetrics = {
  eventsReceived: new Counter({ name: "keybox_projector_events_received_total", help: "Events taken from the stream" }),
  eventsApplied: new Counter({
    name: "keybox_projector_events_applied_total",
    help: "Events that changed the read model (the rest were duplicates or stale versions)",
  }),
  deadLettered: new Counter({
    name: "keybox_projector_events_dead_lettered_total",
    help: "Events copied to the dead-letter stream, by reason (invalid, store_refused, max_deliveries)",
    labelNames: ["reason"] as const,
  }),
  commitConflicts: new Counter({
    name: "keybox_projector_commit_conflicts_total",
    help: "Batch commits lost to another projector replica and retried",
  }),
  bytesWritten: new Counter({
    name: "keybox_projector_bytes_written_total",
    help: "Bytes of read-model records written",
  }),
  batchFailures: new Counter({
    name: "keybox_projector_batch_failures_total",
    help: "Commits that failed (their events are retried)",
  }),
  storeOutages: new Counter({
    name: "keybox_projector_store_outages_total",
    help: "Times the read model became unavailable (events are held, not dead-lettered, until it is back)",
  }),
  consumerPending: new Gauge({
    name: "keybox_projector_consumer_pending",
    help: "Events in the stream not yet delivered to the projectors (sampled every 5 s)",
  }),
  consumerAckPending: new Gauge({
    name: "keybox_projector_consumer_ack_pending",
    help: "Events delivered to the projectors and not yet acknowledged (sampled every 5 s)",
  }),
};
