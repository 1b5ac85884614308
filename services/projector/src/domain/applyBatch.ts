// Applies a batch of events to the read model: load what the rules need, apply them purely,
// commit conditionally. A lost race with another replica reloads and applies again.
import type { DashboardStore, KeyboxEvent, RecordWrite } from "@keybox/shared";
import { keyId } from "@keybox/shared";
import { applyEvent, missingRecords } from "./applyEvent.ts";
import { changedEntries, emptySlice, withRecords, type Slice } from "./slice.ts";

export interface BatchOutcome {
  /** The new read-model version of each owner the batch changed. */
  ownerVersions: Map<string, number>;
  /** How many events changed something (the rest were duplicates or stale). */
  applied: number;
  /** Commit attempts lost to another writer before this one won. */
  conflicts: number;
}

const MAX_ATTEMPTS = 100;

export async function applyBatch(
  store: DashboardStore,
  events: readonly KeyboxEvent[],
  streamSeq: number,
): Promise<BatchOutcome> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    let loaded = emptySlice();
    const revisions = new Map<string, number>();
    let slice: Slice = loaded;
    let applied = 0;
    for (const event of events) {
      for (let missing = missingRecords(slice, event); missing.length; missing = missingRecords(slice, event)) {
        const records = await store.load(missing);
        for (const r of records) revisions.set(keyId(r.key), r.rev);
        loaded = withRecords(loaded, records);
        slice = withRecords(slice, records);
      }
      const next = applyEvent(slice, event);
      if (next !== slice) applied++;
      slice = next;
    }
    const writes: RecordWrite[] = changedEntries(loaded, slice).map((e) => ({
      key: e.key,
      value: e.value,
      baseRev: revisions.get(keyId(e.key)) ?? 0,
    }));
    const result = await store.commit(writes, streamSeq);
    if (result.ok) return { ownerVersions: result.ownerVersions, applied, conflicts: attempt };
  }
  throw new Error(`batch lost ${MAX_ATTEMPTS} commit races in a row`);
}
