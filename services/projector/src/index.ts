// @keybox/projector: the projection rules and a rebuild's progress (pure), the batch applier, and the
// projector service with its generations.
export { ConsumerLostError, Projector, type ProjectorConfig, type ProjectorReadiness } from "./projector.ts";
export { projectorSettings, type ProjectorSettings } from "./config.ts";
export {
  DROP_GRACE_MS,
  ProjectorGenerations,
  type GenerationsOptions,
  type GenerationsReadiness,
} from "./generations.ts";
export {
  deliveryPolicy,
  ensureConsumer,
  type ConsumerSettings,
  type DeliveryPolicy,
} from "./adapters/consumer.ts";
export {
  applyEvent,
  DEFAULT_PROJECTION,
  PROJECTION_VERSION,
  missingRecords,
  MissingRecordsError,
  projectEvent,
  type Projection,
  type ProjectionOptions,
} from "./domain/applyEvent.ts";
export { applyBatch, type BatchOutcome } from "./domain/applyBatch.ts";
export { withRecords, type Slice, type SliceEntry } from "./domain/slice.ts";
export { PROGRESS_LOG_MS, sampleProgress, type RebuildProgress } from "./domain/rebuildProgress.ts";
