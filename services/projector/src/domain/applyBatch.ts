// Applies a batch of events to the read model: load what the rules need, apply them purely,
// commit conditionally. A lost race with another replica reloads and applies again.
import type { KeyboxEvent } from "@keybox/contract";
import { keyId, type DashboardStore, type RecordRead, type RecordWrite } from "@keybox/read-model";
import { DEFAULT_PROJECTION, projectEvent, type ProjectionOptions } from "./applyEvent.ts";
import type { SliceEntry } from "./slice.ts";

export interface BatchOutcome {
  /** The new read-model version of each owner the batch changed. */
  ownerVersions: Map<string, number>;
  /** How many events changed something (the rest were duplicates or stale). */
  applied: number;
  /** Commit attempts lost to another writer before this one won. */
  conflicts: number;
  /** Records and bytes the winning commit wrote. */
  written: { records: number; bytes: number };
}

const MAX_ATTEMPTS = 100;

export async function applyBatch(
  store: DashboardStore,
  events: readonly KeyboxEvent[],
  streamSeq: number,
  options: ProjectionOptions = DEFAULT_PROJECTION,
): Promise<BatchOutcome> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    // `slice` is this attempt's working copy; `loaded` what the store said, with revisions.
    const slice = new Map<string, SliceEntry>();
    const loaded = new Map<string, { entry: SliceEntry; rev: number }>();
    let applied = 0;
    for (const event of events) {
      let projection = projectEvent(slice, event, options);
      while (projection.missing.length) {
        for (const record of await store.load(projection.missing)) {
          const entry = { key: record.key, value: record.value };
          loaded.set(keyId(record.key), { entry, rev: record.rev });
          slice.set(keyId(record.key), entry);
        }
        projection = projectEvent(slice, event, options);
      }
      for (const entry of projection.writes) slice.set(keyId(entry.key), entry);
      if (projection.writes.length) applied++;
    }

    const writes: RecordWrite[] = [];
    const reads: RecordRead[] = [];
    for (const [id, entry] of slice) {
      const base = loaded.get(id);
      if (base?.entry === entry) reads.push({ key: entry.key, rev: base.rev });
      else writes.push({ key: entry.key, value: entry.value, baseRev: base?.rev ?? 0 });
    }
    // Only duplicates or stale versions: nothing to write, so nothing to commit or sync.
    if (writes.length === 0)
      return { ownerVersions: new Map(), applied, conflicts: attempt, written: { records: 0, bytes: 0 } };
    const result = await store.commit({ writes, reads }, streamSeq);
    if (result.ok) return { ownerVersions: result.ownerVersions, applied, conflicts: attempt, written: result.written };
    // Lost to another replica: back off a little, at random, so racing replicas spread out.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(100, 5 * (attempt + 1))));
  }
  throw new Error(`batch lost ${MAX_ATTEMPTS} commit races in a row`);
}
