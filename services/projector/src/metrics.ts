import { Counter } from "prom-client";

export const projectorMetrics = {
  eventsReceived: new Counter({ name: "keybox_projector_events_received_total", help: "Events taken from the stream" }),
  eventsApplied: new Counter({
    name: "keybox_projector_events_applied_total",
    help: "Events that changed the read model (the rest were duplicates or stale versions)",
  }),
  deadLettered: new Counter({
    name: "keybox_projector_events_dead_lettered_total",
    help: "Invalid events copied to the dead-letter stream",
  }),
  commitConflicts: new Counter({
    name: "keybox_projector_commit_conflicts_total",
    help: "Batch commits lost to another projector replica and retried",
  }),
  bytesWritten: new Counter({ name: "keybox_projector_bytes_written_total", help: "Bytes of read-model records written" }),
  batchFailures: new Counter({ name: "keybox_projector_batch_failures_total", help: "Batches that failed and will be redelivered" }),
};
