export { Projector, type ProjectorConfig } from "./projector.ts";
export { applyEvent, missingRecords, MissingRecordsError } from "./domain/applyEvent.ts";
export { applyBatch, type BatchOutcome } from "./domain/applyBatch.ts";
export { emptySlice, withRecords, changedEntries, type Slice, type SliceEntry } from "./domain/slice.ts";
