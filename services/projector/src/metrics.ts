import { Counter, Gauge, Histogram } from "prom-client";

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
  redeliveries: new Counter({
    name: "keybox_projector_redeliveries_total",
    help: "Events delivered again (not acknowledged in time, retried after a refusal, or left by a stopped replica)",
  }),
  storeRetries: new Counter({
    name: "keybox_projector_store_retries_total",
    help: "Attempts to apply held events that found the read model still unavailable (during outages)",
  }),
  batchEvents: new Histogram({
    name: "keybox_projector_batch_events",
    help: "Valid events per applied batch",
    buckets: [1, 4, 16, 64, 256, 1024, 4096],
  }),
  applySeconds: new Histogram({
    name: "keybox_projector_apply_seconds",
    help: "Time to apply a batch: load, project, commit durably, acknowledge",
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
  }),
  eventAgeSeconds: new Histogram({
    name: "keybox_projector_event_age_seconds",
    help: "From an event's arrival in the stream to its acknowledgement (committed and durable)",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
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
  readModelGeneration: new Gauge({
    name: "keybox_projector_read_model_generation",
    help: "The read-model generation readers use, as this projector last read the control record",
  }),
  rebuildGeneration: new Gauge({
    name: "keybox_projector_rebuild_generation",
    help: "The read-model generation being rebuilt beside the current one (0: no rebuild)",
  }),
  rebuildEventsReplayed: new Gauge({
    name: "keybox_projector_rebuild_events_replayed",
    help: "Events of the stream the rebuild has applied (sampled every second while this projector rebuilds)",
  }),
  rebuildEventsLeft: new Gauge({
    name: "keybox_projector_rebuild_events_left",
    help: "Events the rebuild has still to apply: not yet delivered, or not yet acknowledged",
  }),
  rebuildEventsPerSecond: new Gauge({
    name: "keybox_projector_rebuild_events_per_second",
    help: "Events the rebuild applied per second, over the last 5 s",
  }),
};
