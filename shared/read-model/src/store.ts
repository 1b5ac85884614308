import type { RecordKey, StoredRecord } from "./shape.ts";

/** A record as loaded for a conditional write; `rev` 0 means "absent". */
export interface RevisionedRecord {
  key: RecordKey;
  value: StoredRecord | null;
  rev: number;
}

/** A write: the new value (null deletes), conditional on the record still being at `baseRev`. */
export interface RecordWrite {
  key: RecordKey;
  value: StoredRecord | null;
  baseRev: number;
}

/** A record the batch read but does not change: the commit still requires it unchanged. */
export interface RecordRead {
  key: RecordKey;
  rev: number;
}

export interface Commit {
  writes: readonly RecordWrite[];
  reads: readonly RecordRead[];
}

/** What a commit changed of one owner's dashboard: the owner's new version, and the clients written. */
export interface DashboardChange {
  version: number;
  clients: string[];
}

/** A commit that was written: what it changed, per owner, and what it wrote. */
export interface Committed {
  ok: true;
  changes: Map<string, DashboardChange>;
  written: { records: number; bytes: number };
}

export type CommitResult = Committed | { ok: false; conflict: RecordKey };

/** A part's fragment (see fragments.ts), encoded, with where the part is filed under its owner. */
export interface StoredFragment {
  clientId: string;
  projectId: string;
  chunk: number;
  bytes: Uint8Array;
}

/**
 * One owner's dashboard fragments (or one client's), as one snapshot of the store holds them. A
 * reader visits them twice: once for their heads (to put them in response order and size the body)
 * and once to copy their bodies into place, so no fragment is copied out of the store but into the
 * response itself.
 */
export interface DashboardSnapshot {
  /**
   * The version of what the snapshot holds (see DashboardStore.version): the owner's for a whole
   * dashboard, the client's for one client's.
   */
  version: number;
  /**
   * Calls `visit` with each fragment, in the same order on every call (an order callers must not
   * otherwise rely on); a fragment's bytes are only valid until `visit` returns. A large owner's
   * may be visited over several event-loop turns (LMDB's are); resolves once all have been.
   */
  fragments(visit: (fragment: StoredFragment) => void): Promise<void>;
  /**
   * One fragment of the snapshot by the key its visit gave it, or undefined if it has none; its
   * bytes are only valid until the next read of the store. Stores that read one by key at once
   * have it (LMDB): a large body is then filled in response order as it is sent, never whole.
   */
  fragment?(clientId: string, projectId: string, chunk: number): Uint8Array | undefined;
  /**
   * The snapshot's clients, for a reader that keeps what it laid out of each (LMDB has it): a
   * client's fragments are the same in every snapshot of one store where its version is.
   */
  clients?(): SnapshotClients;
  /** Ends the snapshot (LMDB: its read transaction): called once, when done with it. */
  close(): void;
}

/** A snapshot's clients: each one's version, and its fragments alone (see DashboardSnapshot.clients). */
export interface SnapshotClients {
  /** The store's identity (DashboardStore.identity): versions from two identities never compare. */
  identity: string;
  /** The one client a client's snapshot holds; undefined in a whole dashboard's. */
  clientId: string | undefined;
  /**
   * The version of each client that has parts, by client id, as the store it came from counts them
   * (a generation's own, where DashboardSnapshot.version may be shifted: see generations.ts).
   */
  versions: ReadonlyMap<string, number>;
  /** Visits one client's fragments, as DashboardSnapshot.fragments visits all of them. */
  fragments(clientId: string, visit: (fragment: StoredFragment) => void): Promise<void>;
}

/**
 * Every owner `writes` writes to, with the clients whose parts it writes: a commit bumps each
 * owner's version and gives each of those clients the new version as its client version (see
 * DashboardStore.version); change notices name the same clients. A part deleted where there was
 * none (base revision 0) changes nothing the client shows, and does not count.
 */
export function writtenOwners(writes: readonly RecordWrite[]): Map<string, Set<string>> {
  const owners = new Map<string, Set<string>>();
  for (const { key, value, baseRev } of writes) {
    let clients = owners.get(key.ownerId);
    if (!clients) {
      clients = new Set();
      owners.set(key.ownerId, clients);
    }
    if (key.type === "part" && (value !== null || baseRev !== 0)) clients.add(key.clientId);
  }
  return owners;
}

/**
 * The clients (by owner) some of whose stored parts `writes` deletes: only they can be left with no
 * part, so only for them does a commit need to look whether any is left (DashboardStore.version).
 */
export function clientsDeletingParts(writes: readonly RecordWrite[]): Map<string, Set<string>> {
  const owners = new Map<string, Set<string>>();
  for (const { key, value, baseRev } of writes) {
    if (key.type !== "part" || value !== null || baseRev === 0) continue;
    const clients = owners.get(key.ownerId) ?? new Set<string>();
    owners.set(key.ownerId, clients.add(key.clientId));
  }
  return owners;
}

/**
 * The store as a whole cannot take writes or answer (a full disk, an I/O error, no MongoDB
 * primary, a timeout): an outage, which says nothing about the events being applied. Callers wait
 * and retry; they never give up on the events because of it.
 */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
}

/**
 * The store's environment in this process is broken for good: LMDB's MDB_PANIC, after which every
 * call of this process fails until the environment is opened again (a new process does). Retrying
 * cannot help; the process should end so that its supervisor starts it afresh.
 */
export function isBrokenStore(error: unknown): boolean {
  return error instanceof Error && /MDB_PANIC/.test(error.message);
}

export interface PartStats {
  parts: number;
  /** Stored bytes, as the adapter encodes them. */
  bytes: number;
  largestPartBytes: number;
}

/**
 * The read model's storage. Both adapters (LMDB, MongoDB) behave the same; the conformance suite
 * in test/ holds them to it.
 */
export interface DashboardStore {
  /**
   * How many commits of one process may be in flight at once (1 when absent): above 1, the next
   * batch is handed over while the previous one is being made durable. Only for a store whose
   * commits are prepared in its write transaction (commitInWriteTransaction), which then sees the
   * writes of the commits before it.
   */
  readonly commitsInFlight?: number;
  /** Point reads, with the revisions a later commit is conditional on. */
  load(keys: readonly RecordKey[]): Promise<RevisionedRecord[]>;
  /**
   * Writes everything or nothing: nothing when any record written or read has moved past the
   * revision it was loaded at (another replica won the race; reload and apply again). Bumps the
   * version of every owner written to, sets the version of every client whose parts it writes
   * (writtenOwners) to its owner's new version, or removes it for a client it leaves with no part,
   * and records `streamSeq` as applied, in the same transaction; resolves with those changes per
   * owner (what the change notices say). With no writes its reads are still checked: MongoDB then
   * still commits them and `streamSeq` with majority write concern, so what was read is known to
   * be majority-committed; LMDB writes nothing (not `streamSeq` either) and resolves once
   * everything committed before is durable.
   * Rejects with StoreUnavailableError when the store itself failed (not this commit's content).
   */
  commit(commit: Commit, streamSeq: number): Promise<CommitResult>;
  /**
   * Optional, for a store with one writer at a time (LMDB): runs `prepare` inside the store's write
   * transaction, its `load` reading the latest state there, and commits what it returns, which
   * cannot conflict (other writers wait meanwhile). The projector then prepares every batch this
   * way. Resolves like `commit`, once durable; also with no writes (the batch's events were
   * applied before), when it writes nothing (not `streamSeq` either), it resolves only once
   * everything committed so far is durable: the commit that applied them may have failed to reach
   * the disk.
   */
  commitInWriteTransaction?(
    prepare: (load: (keys: readonly RecordKey[]) => RevisionedRecord[]) => Commit,
    streamSeq: number,
  ): Promise<Committed>;
  /**
   * One point read. Without `clientId`, the owner's read-model version: it grows with every commit
   * that writes anything of the owner (0 for an owner never written). With it, that client's: the
   * owner's version as of the last commit that wrote one of the client's parts (0 for a client never
   * written), so it moves with every change to what the client's dashboard shows and with no change
   * to another client's. A commit that leaves a client with no part removes its version (0 again):
   * its read shows nothing, as for a client never written, and a version it had before never comes
   * back, since a later write gives it its owner's version then, above any before.
   */
  version(ownerId: string, clientId?: string): Promise<number>;
  /**
   * Optional: `version` at once, for a store that reads from memory it maps (LMDB), so that a
   * caller can answer in the same turn. Throws where `version` would reject.
   */
  versionNow?(ownerId: string, clientId?: string): number;
  /**
   * This store's identity: drawn at random when the store is created, so a store rebuilt from the
   * stream (whose versions start again from 0) has another. Versions are only comparable within
   * one identity: ETags name it. Empty while a reader finds no store created yet.
   */
  identity(): string;
  /**
   * A snapshot of one owner's dashboard fragments, or one client's when `clientId` is given, with
   * the matching version (the owner's, or the client's): one range read, from one snapshot. Every
   * commit keeps each part's fragment in step with the part. The caller closes it.
   */
  openDashboard(ownerId: string, clientId?: string): Promise<DashboardSnapshot>;
  /** How an owner's dashboard is stored: part count and stored sizes (for operators and tests). */
  partStats(ownerId: string): Promise<PartStats>;
  /**
   * Commits one small write of the store's own. Rejects (StoreUnavailableError) when the store
   * cannot take writes, which tells an outage from an event the store refuses.
   */
  checkWritable(): Promise<void>;
  /** The highest stream sequence committed so far (0 for none). */
  appliedSeq(): Promise<number>;
  /**
   * The read-model generation this store reads and writes (README, "Rebuild"); for the store
   * readers use, the current one at the time of the call. Absent: 1.
   */
  generation?(): number;
  close(): Promise<void>;
}
