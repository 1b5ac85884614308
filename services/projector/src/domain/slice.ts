// A slice is the part of the read model that a batch of events reads and writes: records by key,
// with null for a record known to be absent. The projection rules are pure functions of it.
import { keyId, type RecordKey, type StoredRecord } from "@keybox/shared";

export interface SliceEntry {
  key: RecordKey;
  value: StoredRecord | null;
}

export type Slice = ReadonlyMap<string, SliceEntry>;

export const emptySlice = (): Slice => new Map();

/** The slice with `records` added (as loaded from the store; null = absent). */
export function withRecords(slice: Slice, records: Iterable<SliceEntry>): Slice {
  const next = new Map(slice);
  for (const entry of records) next.set(keyId(entry.key), entry);
  return next;
}

/** The entries of `after` that differ from `before`: what a batch has to write. */
export function changedEntries(before: Slice, after: Slice): SliceEntry[] {
  const changed: SliceEntry[] = [];
  for (const [id, entry] of after) {
    if (before.get(id)?.value !== entry.value) changed.push(entry);
  }
  return changed;
}
