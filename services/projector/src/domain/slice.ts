// A slice is the part of the read model that a batch of events reads and writes: records by key,
// with null for a record known to be absent. The projection rules are pure functions of it.
import { keyId, type RecordKey, type StoredRecord } from "@keybox/read-model";

export interface SliceEntry {
  key: RecordKey;
  value: StoredRecord | null;
}

export type Slice = ReadonlyMap<string, SliceEntry>;

/** The slice with `records` added (as loaded from the store; null = absent). */
export function withRecords(slice: Slice, records: Iterable<SliceEntry>): Slice {
  const next = new Map(slice);
  for (const entry of records) next.set(keyId(entry.key), entry);
  return next;
}
