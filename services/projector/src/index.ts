export { Projector, type ProjectorConfig } from "./projector.ts";
export { applyEvent, missingRecords, projectEvent, MissingRecordsError, type Projection } from "./domain/applyEvent.ts";
export { applyBatch, type BatchOutcome } from "./domain/applyBatch.ts";
export { withRecords, type Slice, type SliceEntry } from "./domain/slice.ts";
