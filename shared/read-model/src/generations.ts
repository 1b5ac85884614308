// Read-model generations: a rebuild fills a new generation beside the one readers use, and one
// atomic write of the control record switches readers over (README, "Rebuild").
//
// Generation 1 keeps the names the read model always had (LMDB databases `parts`, `registers`,
// `fragments`, `meta`; MongoDB collections `parts`, `registers`, `meta`), so an existing store is
// generation 1; generation N > 1 prefixes them with `g<N>_`. The control record says which
// generation readers use (`current`), which one is being built, if any, and which ones are retired
// and wait to be dropped; a store that has none is generation 1, built by projection version 1.
import type { CommitResult, Committed, DashboardSnapshot, DashboardStore } from "./store.ts";

export interface GenerationInfo {
  generation: number;
  /** The projection version (the projector's PROJECTION_VERSION) whose rules build it. */
  projectionVersion: number;
}

export interface ControlRecord {
  /** What readers use. */
  current: GenerationInfo;
  /** Being built from the whole stream, beside `current`; `since` in epoch milliseconds. */
  building?: GenerationInfo & { since: number };
  /** No longer used, each since when (epoch milliseconds): dropped, with its consumer, after a grace period. */
  retired: { generation: number; since: number }[];
  /** The highest generation ever created: numbers (and so names and consumers) are never reused. */
  lastGeneration: number;
}

export const INITIAL_CONTROL: ControlRecord = {
  current: { generation: 1, projectionVersion: 1 },
  retired: [],
  lastGeneration: 1,
};

/** A change of the control record: the record after it, or undefined to leave it as it is. */
export type ControlTransition = (record: ControlRecord) => ControlRecord | undefined;

/** How a store's control record was updated: the record as it is now, and whether this update wrote it. */
export interface ControlUpdate {
  record: ControlRecord;
  changed: boolean;
}

/**
 * Asks for a new generation built by `projectionVersion`. A rebuild already under way by that
 * version or a newer one is joined (left as it is); one by an older version is replaced, and its
 * generation retired: its rules are not the ones wanted any more. An older version than the current
 * generation's asks for nothing: it would take readers back to older rules.
 */
export const requestRebuild =
  (projectionVersion: number, now: number): ControlTransition =>
  (record) => {
    const { building } = record;
    if (record.current.projectionVersion > projectionVersion) return undefined;
    if (building && building.projectionVersion >= projectionVersion) return undefined;
    const generation = record.lastGeneration + 1;
    return {
      ...record,
      building: { generation, projectionVersion, since: now },
      retired: building ? [...record.retired, { generation: building.generation, since: now }] : record.retired,
      lastGeneration: generation,
    };
  };

/**
 * The start-up path of a release: a rebuild when its projection version is newer than the one that
 * built the current generation (an older release, still running during a rolling upgrade, never
 * asks for one).
 */
export const upgradeTo =
  (projectionVersion: number, now: number): ControlTransition =>
  (record) =>
    record.current.projectionVersion < projectionVersion ? requestRebuild(projectionVersion, now)(record) : undefined;

/** Readers move to `generation`, which was being built; the generation they used is retired. */
export const switchTo =
  (generation: number, now: number): ControlTransition =>
  ({ building, ...record }) => {
    if (building?.generation !== generation) return undefined;
    return {
      ...record,
      current: { generation, projectionVersion: building.projectionVersion },
      retired: [...record.retired, { generation: record.current.generation, since: now }],
    };
  };

/** Once a retired generation's data and consumer are gone, it is forgotten. */
export const forgetRetired =
  (generation: number): ControlTransition =>
  (record) =>
    record.retired.some((r) => r.generation === generation)
      ? { ...record, retired: record.retired.filter((r) => r.generation !== generation) }
      : undefined;

/** A table's or collection's name in a generation: generation 1 has the original names. */
export const generationName = (name: string, generation: number): string =>
  generation === 1 ? name : `g${generation}_${name}`;

/** The projector's durable consumer for a generation: `PROJECTOR_DURABLE` for 1, `<durable>-g<N>` after. */
export const generationDurable = (durable: string, generation: number): string =>
  generation === 1 ? durable : `${durable}-g${generation}`;

/**
 * Versions of generation N are reported from (N - 1) * 2^32 up, so they keep growing across a switch:
 * an ETag, a cached body or a live stream's event id of one generation never names a version of
 * another, as long as a generation counts fewer than 2^32 commits of one owner. 0 (never written)
 * stays 0: an empty dashboard is the same in every generation.
 */
const GENERATION_VERSIONS = 2 ** 32;

/**
 * Generation `n`'s store, reporting versions in that generation's range (see GENERATION_VERSIONS):
 * generation 1's are the stored ones, so its store is the adapter's own.
 */
export const generationStore = (inner: DashboardStore, n: number): DashboardStore =>
  n === 1 ? inner : new GenerationStore(inner, n);

class GenerationStore implements DashboardStore {
  readonly commitsInFlight?: number;
  readonly commitInWriteTransaction?: DashboardStore["commitInWriteTransaction"];
  readonly versionNow?: DashboardStore["versionNow"];
  private readonly offset: number;

  constructor(
    private readonly inner: DashboardStore,
    private readonly number: number,
  ) {
    this.offset = (number - 1) * GENERATION_VERSIONS;
    if (inner.commitsInFlight !== undefined) this.commitsInFlight = inner.commitsInFlight;
    const { commitInWriteTransaction, versionNow } = inner;
    if (commitInWriteTransaction) {
      this.commitInWriteTransaction = async (prepare, streamSeq) =>
        this.shifted(await commitInWriteTransaction.call(inner, prepare, streamSeq));
    }
    if (versionNow) this.versionNow = (ownerId, clientId) => this.shift(versionNow.call(inner, ownerId, clientId));
  }

  private shift(version: number): number {
    return version === 0 ? 0 : version + this.offset;
  }

  private shifted<T extends Committed | CommitResult>(result: T): T {
    if (!result.ok || this.offset === 0) return result;
    for (const change of result.changes.values()) change.version = this.shift(change.version);
    return result;
  }

  generation(): number {
    return this.number;
  }

  load: DashboardStore["load"] = (keys) => this.inner.load(keys);

  async commit(...args: Parameters<DashboardStore["commit"]>): Promise<CommitResult> {
    return this.shifted(await this.inner.commit(...args));
  }

  async version(ownerId: string, clientId?: string): Promise<number> {
    return this.shift(await this.inner.version(ownerId, clientId));
  }

  identity(): string {
    return this.inner.identity();
  }

  async openDashboard(ownerId: string, clientId?: string): Promise<DashboardSnapshot> {
    const snapshot = await this.inner.openDashboard(ownerId, clientId);
    return { ...snapshot, version: this.shift(snapshot.version) };
  }

  partStats: DashboardStore["partStats"] = (ownerId) => this.inner.partStats(ownerId);
  checkWritable: DashboardStore["checkWritable"] = () => this.inner.checkWritable();
  appliedSeq: DashboardStore["appliedSeq"] = () => this.inner.appliedSeq();
  close: DashboardStore["close"] = () => this.inner.close();
}

/**
 * The store readers use: every call goes to the generation that is current at that moment
 * (`current`), so a switch takes effect between two calls. On LMDB `current` reads the control
 * record in the read snapshot the call then reads from; on MongoDB it is the generation last polled.
 */
export class CurrentGenerationStore implements DashboardStore {
  readonly versionNow?: DashboardStore["versionNow"];

  constructor(
    private readonly current: () => DashboardStore,
    private readonly closeAll: () => Promise<void>,
    /** Whether every generation's store reads at once (versionNow). */
    readsAtOnce: boolean,
  ) {
    if (readsAtOnce) this.versionNow = (ownerId, clientId) => this.current().versionNow!(ownerId, clientId);
  }

  generation(): number {
    return this.current().generation?.() ?? 1;
  }

  load: DashboardStore["load"] = (keys) => this.current().load(keys);
  commit: DashboardStore["commit"] = (commit, streamSeq) => this.current().commit(commit, streamSeq);
  version: DashboardStore["version"] = (ownerId, clientId) => this.current().version(ownerId, clientId);
  identity: DashboardStore["identity"] = () => this.current().identity();
  openDashboard: DashboardStore["openDashboard"] = (ownerId, clientId) =>
    this.current().openDashboard(ownerId, clientId);
  partStats: DashboardStore["partStats"] = (ownerId) => this.current().partStats(ownerId);
  checkWritable: DashboardStore["checkWritable"] = () => this.current().checkWritable();
  appliedSeq: DashboardStore["appliedSeq"] = () => this.current().appliedSeq();
  close: DashboardStore["close"] = () => this.closeAll();
}

/**
 * The read model as a whole: its generations and the control record. One per process and store
 * (LMDB folder or MongoDB database); the stores it gives share its environment or connection.
 */
export interface ReadModel {
  /** The control record as stored now. */
  control(): Promise<ControlRecord>;
  /** Applies `transition` to the control record atomically (one writer wins a race; the others see its record). */
  updateControl(transition: ControlTransition): Promise<ControlUpdate>;
  /** Generation `n`'s store, opened on first use (for a writer: created, with its format and identity). */
  generation(n: number): Promise<DashboardStore>;
  /** The store readers use: the current generation's, whichever that is at each call. */
  current(): Promise<DashboardStore>;
  /** Deletes generation `n`'s data; never the current one's or the one being built. */
  drop(n: number): Promise<void>;
  close(): Promise<void>;
}

/** Refuses to drop a generation that is in use. */
export function checkDroppable(record: ControlRecord, n: number): void {
  if (n === record.current.generation || n === record.building?.generation)
    throw new Error(`generation ${n} is in use and cannot be dropped`);
}
