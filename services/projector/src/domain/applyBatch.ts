// Applies a batch of events to the read model: load what the rules need, apply them purely, and
// commit, inside the store's write transaction where it has one (LMDB) or conditionally (MongoDB:
// a lost race with another replica reloads and applies again).
import type { KeyboxEvent } from "@keybox/contract";
import {
  keyId,
  recordKeyOf,
  type Commit,
  type DashboardChange,
  type DashboardStore,
  type RecordKey,
  type RecordRead,
  type RecordWrite,
  type RevisionedRecord,
} from "@keybox/read-model";
import { DEFAULT_PROJECTION, projectEvent, type ProjectionOptions } from "./applyEvent.ts";
import type { SliceEntry } from "./slice.ts";

export interface BatchOutcome {
  /** Each owner the batch changed: its new read-model version and the clients whose parts it wrote. */
  changes: Map<string, DashboardChange>;
  /** How many events changed something (the rest were duplicates or stale). */
  applied: number;
  /** Commit attempts lost to another writer before this one won. */
  conflicts: number;
  /** Records and bytes the winning commit wrote. */
  written: { records: number; bytes: number };
}

const MAX_ATTEMPTS = 100;

/** A batch projected against what was loaded: the conditional commit, and how many events changed something. */
interface Prepared {
  commit: Commit;
  applied: number;
  /** Every record the projection loaded. */
  loadedKeys: RecordKey[];
}

/**
 * A slice that reads what it lacks from the store's write transaction as the rules ask for it, so
 * that each event is projected once instead of again after each round of loads. Holds every
 * record, as any can be read.
 */
class ReadThroughSlice extends Map<string, SliceEntry> {
  constructor(private readonly read: (id: string) => SliceEntry) {
    super();
  }

  override get(id: string): SliceEntry {
    let entry = super.get(id);
    if (entry === undefined) {
      entry = this.read(id);
      super.set(id, entry);
    }
    return entry;
  }

  override has(id: string): boolean {
    this.get(id);
    return true;
  }
}

/**
 * Projects a batch, asking for records as it finds it needs them: it yields the keys to load and
 * is resumed with the records, or, given `readNow` (a store's reads inside its write transaction),
 * reads each as the rules ask for it (ReadThroughSlice) and yields nothing.
 */
function* prepare(
  events: readonly KeyboxEvent[],
  options: ProjectionOptions,
  preload: readonly RecordKey[],
  readNow?: (key: RecordKey) => RevisionedRecord,
): Generator<readonly RecordKey[], Prepared, readonly RevisionedRecord[]> {
  // `slice` is this attempt's working copy; `loaded` what the store said, with revisions.
  const loaded = new Map<string, { entry: SliceEntry; rev: number }>();
  const loadedEntry = (record: RevisionedRecord, id: string) => {
    const entry = { key: record.key, value: record.value };
    loaded.set(id, { entry, rev: record.rev });
    return entry;
  };
  const slice = readNow
    ? new ReadThroughSlice((id) => loadedEntry(readNow(recordKeyOf(id)), id))
    : new Map<string, SliceEntry>();
  const take = (records: readonly RevisionedRecord[]) => {
    for (const record of records) {
      const id = keyId(record.key);
      slice.set(id, loadedEntry(record, id));
    }
  };
  if (preload.length) take(yield preload);
  let applied = 0;
  for (const event of events) {
    let projection = projectEvent(slice, event, options);
    while (projection.missing.length) {
      take(yield projection.missing);
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
  return { commit: { writes, reads }, applied, loadedKeys: [...loaded.values()].map(({ entry }) => entry.key) };
}

/** Runs a projection to its end with synchronous loads (reading through, it asks for none). */
function prepareWith(steps: ReturnType<typeof prepare>, load: (keys: readonly RecordKey[]) => RevisionedRecord[]) {
  let step = steps.next();
  while (!step.done) step = steps.next(load(step.value));
  return step.value;
}

/**
 * Applies a batch and commits it. A store that can prepares it inside its write transaction, where
 * it reads the latest state and so cannot lose a race with another writer; otherwise it is loaded,
 * projected and committed conditionally, again after a lost race.
 */
export async function applyBatch(
  store: DashboardStore,
  events: readonly KeyboxEvent[],
  streamSeq: number,
  options: ProjectionOptions = DEFAULT_PROJECTION,
  /** Called once the batch's commit has been handed to the store (it may then take the next one). */
  onCommit: () => void = () => {},
): Promise<BatchOutcome> {
  if (store.commitInWriteTransaction) {
    let prepared: Prepared | undefined;
    // Reads there are local: only what each event certainly needs is read (ProjectionOptions.readAhead).
    const asNeeded = { ...options, readAhead: false };
    const committed = store.commitInWriteTransaction((load) => {
      const readNow = (key: RecordKey) => load([key])[0]!;
      prepared = prepareWith(prepare(events, asNeeded, [], readNow), load);
      return prepared.commit;
    }, streamSeq);
    onCommit();
    const { changes, written } = await committed;
    return { changes, applied: prepared!.applied, conflicts: 0, written }; // prepared: by that transaction
  }

  // What the last attempt loaded: a retry after a lost race loads it all again in one read.
  let preload: readonly RecordKey[] = [];
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const steps = prepare(events, options, preload);
    let step = steps.next();
    while (!step.done) step = steps.next(await store.load(step.value));
    const { commit, applied, loadedKeys } = step.value;
    // Committed even with nothing to write (only duplicates or stale versions): on MongoDB what was
    // loaded may not be majority-committed yet (a failover could still roll it back), and the
    // commit confirms it with majority write concern (DashboardStore.commit) before the events are
    // acknowledged.
    const committed = store.commit(commit, streamSeq);
    onCommit();
    const result = await committed;
    if (result.ok) return { changes: result.changes, applied, conflicts: attempt, written: result.written };
    // Lost to another writer: back off a little, at random, so racing replicas spread out.
    preload = loadedKeys;
    await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(100, 5 * (attempt + 1))));
  }
  throw new Error(`batch lost ${MAX_ATTEMPTS} commit races in a row`);
}
