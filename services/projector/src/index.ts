export { Projector, type ProjectorConfig } from "./projector.ts";
export {
  applyEvent,
  DEFAULT_PROJECTION,
  missingRecords,
  MissingRecordsError,
  projectEvent,
  type Projection,
  type ProjectionOptions,
} from "./domain/applyEvent.ts";
export { applyBatch, type BatchOutcome } from "./domain/applyBatch.ts";
export { withRecords, type Slice, type SliceEntry } from "./domain/slice.ts";
