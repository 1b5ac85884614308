// The embedded read model: LMDB in DATA_DIR. Needs no server, survives restarts, and is shared
// safely by several processes on one machine (LMDB serialises writers with a file lock).
import { randomInt } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { setImmediate } from "node:timers/promises";
import { open, type Database, type RootDatabase } from "lmdb";
import { encodeFragment } from "./fragments.ts";
import {
  checkReadModelFormat,
  keyId,
  READ_MODEL_FORMAT,
  type Part,
  type RecordKey,
  type StoredRecord,
} from "./shape.ts";
import {
  StoreUnavailableError,
  type Commit,
  type CommitResult,
  type DashboardRead,
  type DashboardStore,
  type PartStats,
  type RevisionedRecord,
  type StoredFragment,
  writtenClients,
} from "./store.ts";

interface Stored {
  rev: number;
  value: StoredRecord;
}

/** Ids are [A-Za-z0-9_-], all below "~", so [x, "~"] closes the range of keys that start with x. */
const AFTER_ANY_ID = "~";
/** In `meta`: an owner's version at [ownerId, OWNER_VERSION], a client's at [ownerId, CLIENT_VERSION, clientId]. */
const OWNER_VERSION = "";
const CLIENT_VERSION = "c";
const COMMITS = "commits";
const APPLIED_SEQ = "appliedSeq";
const FORMAT = "format";
/** The store's identity (see DashboardStore.identity): a random 48-bit number. */
const IDENTITY = "identity";
const WRITE_CHECK = "writeCheck";
/** A large owner's fragments are read this many at a time (under a MB) per event-loop turn. */
const FRAGMENTS_PER_TURN = 250;
/**
 * Where msgpack keeps the shapes of stored records, once per database: without it every value
 * carries its own record definitions and every read decodes them again (2-3x the decoding cost of
 * a dashboard). Values written either way decode the same.
 */
const SHARED_STRUCTURES = Symbol.for("structures");

type LmdbKey = (string | number)[];

/** lmdb-js's asynchronous env sync, which its type declarations leave out. */
interface EnvSync {
  sync(callback: (error?: Error) => void): void;
}

const NOTHING_THROWN = Symbol("nothing thrown");

/** A commit queued and not yet resolved: what it writes, by keyId. */
interface InFlightCommit {
  serial: number;
  writes: Map<string, StoredRecord | null>;
}

/**
 * How many commits' outcomes are remembered for later commits that expect their writes: a commit
 * prepared further behind than this conflicts, and its batch reloads.
 */
const REMEMBERED_OUTCOMES = 16;

function lmdbKey(key: RecordKey): LmdbKey {
  return key.type === "part"
    ? [key.ownerId, key.clientId, key.projectId, key.chunk]
    : [key.ownerId, key.entity, key.id];
}

/**
 * A revision that stands for "as in-flight commit `serial` leaves this record": negative, so never
 * a stored one; odd when that commit deletes it.
 */
const pendingRev = (serial: number, deleted: boolean): number => -(serial * 2 + (deleted ? 1 : 0));
const fromPendingRev = (rev: number) => ({ serial: Math.floor(-rev / 2), deleted: -rev % 2 === 1 });

/** A record's key in the revisions database: parts and registers apart. */
function revisionKey(key: RecordKey): LmdbKey {
  return key.type === "part"
    ? ["p", key.ownerId, key.clientId, key.projectId, key.chunk]
    : ["r", key.ownerId, key.entity, key.id];
}

export class LmdbDashboardStore implements DashboardStore {
  readonly commitsInFlight = 2;
  /**
   * Commits queued in this process and not yet resolved, oldest first. A batch prepared meanwhile
   * loads what they write, with a placeholder revision (pendingRev) that its own commit, queued
   * after theirs, resolves to the revision they were given, or to a conflict if they failed.
   */
  private readonly inFlight: InFlightCommit[] = [];
  /** Settles when the last commit queued has (see flush). */
  private lastCommit: Promise<void> = Promise.resolve();
  private serial = 0;
  /** The revision each recent commit wrote with, by serial; absent: it failed or has not run. */
  private readonly outcomes = new Map<number, number>();

  private constructor(
    private readonly env: RootDatabase,
    private readonly parts: Database<Stored, LmdbKey>,
    private readonly registers: Database<Stored, LmdbKey>,
    /** Each part's fragment (see fragments.ts), under the part's key: what readDashboard reads. */
    private readonly fragments: Database<Uint8Array, LmdbKey>,
    private readonly meta: Database<number, string | LmdbKey>,
    /** Each stored part's and register's revision, kept beside it by every commit. */
    private readonly revisions: Database<number, LmdbKey>,
  ) {}

  /** `readOnly`: never records the format (a reader only checks it; writing it is a writer's job). */
  static open(dataDir: string, { readOnly = false }: { readOnly?: boolean } = {}): LmdbDashboardStore {
    const dir = path.join(dataDir, "lmdb");
    mkdirSync(dir, { recursive: true });
    // Large map so big tenants never hit MDB_MAP_FULL; LMDB grows the file lazily. Commits are
    // transaction callbacks (lmdb-js may run several queued ones in one transaction, and then they
    // fail together); with event-turn batching a failed commit also left a rejected promise of its
    // own that nobody could handle.
    const env = open({ path: dir, maxDbs: 8, mapSize: 64 * 1024 ** 3, eventTurnBatching: false });
    const parts = env.openDB<Stored, LmdbKey>({ name: "parts", sharedStructuresKey: SHARED_STRUCTURES });
    const meta = env.openDB<number, string | LmdbKey>({ name: "meta" });
    try {
      env.transactionSync(() => {
        const hasData = parts.getKeysCount({ limit: 1 }) > 0;
        const isNew = checkReadModelFormat(meta.get(FORMAT), hasData, dir);
        if (isNew && !readOnly) meta.putSync(FORMAT, READ_MODEL_FORMAT);
        if (!readOnly && meta.get(IDENTITY) === undefined) meta.putSync(IDENTITY, randomInt(2 ** 48 - 1));
      });
    } catch (error) {
      void env.close(); // the format error is what the caller needs to see
      throw error;
    }
    const registers = env.openDB<Stored, LmdbKey>({ name: "registers", sharedStructuresKey: SHARED_STRUCTURES });
    const fragments = env.openDB<Uint8Array, LmdbKey>({ name: "fragments", encoding: "binary" });
    const revisions = env.openDB<number, LmdbKey>({ name: "revisions" });
    return new LmdbDashboardStore(env, parts, registers, fragments, meta, revisions);
  }

  private db(key: RecordKey): Database<Stored, LmdbKey> {
    return key.type === "part" ? this.parts : this.registers;
  }

  async load(keys: readonly RecordKey[]): Promise<RevisionedRecord[]> {
    return keys.map((key) => {
      const id = keyId(key);
      for (let i = this.inFlight.length - 1; i >= 0; i--) {
        const { serial, writes } = this.inFlight[i]!;
        const value = writes.get(id);
        if (value !== undefined) return { key, value, rev: pendingRev(serial, value === null) };
      }
      return this.read(key);
    });
  }

  /** A record as stored (in a write transaction: as that transaction sees it). */
  private read(key: RecordKey): RevisionedRecord {
    const stored = this.db(key).get(lmdbKey(key));
    return { key, value: stored?.value ?? null, rev: stored?.rev ?? 0 };
  }

  /** Resolves only once the commit is on disk, so the projector may acknowledge its events then. */
  async commit(commit: Commit, streamSeq: number): Promise<CommitResult> {
    return this.commitInFlight(commit, streamSeq);
  }

  async commitInWriteTransaction(
    prepare: (load: (keys: readonly RecordKey[]) => RevisionedRecord[]) => Commit,
    streamSeq: number,
  ): Promise<CommitResult> {
    return this.commitInFlight(() => prepare((keys) => keys.map((key) => this.read(key))), streamSeq);
  }

  /**
   * Commits `commit`, or what `prepare` gives in the write transaction, as one of this process's
   * commits in flight (its writes are what loads see until it resolves, known from when it is
   * queued or from when it is prepared).
   */
  private async commitInFlight(commitOrPrepare: Commit | (() => Commit), streamSeq: number): Promise<CommitResult> {
    const serial = ++this.serial;
    this.outcomes.delete(serial - REMEMBERED_OUTCOMES);
    const entry: InFlightCommit = { serial, writes: new Map() };
    const noteWrites = (commit: Commit) => {
      for (const w of commit.writes) entry.writes.set(keyId(w.key), w.value);
    };
    if (typeof commitOrPrepare !== "function") noteWrites(commitOrPrepare);
    this.inFlight.push(entry);
    const committed = this.write((): CommitResult => {
      const commit = typeof commitOrPrepare === "function" ? commitOrPrepare() : commitOrPrepare;
      if (typeof commitOrPrepare === "function") noteWrites(commit);
      if (commit.writes.length === 0) return { ok: true, ownerVersions: new Map(), written: { records: 0, bytes: 0 } };
      const result = this.commitInTransaction(commit, streamSeq);
      if (result.ok) this.outcomes.set(serial, result.rev);
      return result.ok ? { ok: true, ownerVersions: result.ownerVersions, written: result.written } : result;
    });
    this.lastCommit = committed.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await committed;
    } catch (error) {
      // Rolled back: its revision may be given to the next commit, so nothing may expect it.
      this.outcomes.delete(serial);
      throw error;
    } finally {
      this.inFlight.splice(this.inFlight.indexOf(entry), 1);
    }
  }

  async flush(): Promise<void> {
    // Commits run in the order they were queued: once the last has settled, all have.
    await this.lastCommit;
    await this.durable().catch((error: unknown) => {
      throw new StoreUnavailableError(`LMDB cannot sync: ${(error as Error).message}`, { cause: error });
    });
  }

  async checkWritable(): Promise<void> {
    await this.write(() => this.meta.putSync(WRITE_CHECK, Date.now()));
  }

  /**
   * Runs `body` in a write transaction and resolves once it is durable, without blocking the
   * event loop on the disk: lmdb-js's write thread holds the write lock and commits, `body` runs
   * on this thread inside that transaction (its reads see its own writes), and the fsync happens
   * off this thread. A child transaction, so that a `body` that throws leaves nothing behind.
   * LMDB reports failures of the environment (a full disk is EIO or ENOSPC, a full map
   * MDB_MAP_FULL) with a numeric code, and a failed commit as a rejected promise: outages, not bad
   * records.
   */
  private async write<T>(body: () => T): Promise<T> {
    let thrown: unknown = NOTHING_THROWN;
    try {
      const result = await this.env.childTransaction(() => {
        try {
          return body();
        } catch (error) {
          thrown = error;
          throw error;
        }
      });
      await this.durable();
      return result;
    } catch (error) {
      if (error === thrown && typeof (error as { code?: unknown }).code !== "number") throw error;
      // A failed commit carries LMDB's own error as a promise that rejects with it.
      const commitError = (error as { commitError?: Promise<unknown> }).commitError;
      const cause =
        commitError === undefined
          ? error
          : await commitError.then(
              () => error,
              (reason: unknown) => reason,
            );
      throw new StoreUnavailableError(`LMDB cannot write: ${(cause as Error).message}`, { cause });
    }
  }

  /**
   * Resolves once every transaction committed so far is flushed to disk. mdb_env_sync on a libuv
   * thread; it returns at once when lmdb-js's write thread has already synced them.
   */
  private durable(): Promise<void> {
    return new Promise((resolve, reject) =>
      (this.env as unknown as EnvSync).sync((error) => (error ? reject(error) : resolve())),
    );
  }

  /**
   * A record's revision, from the small revisions database, so a check never decodes a part. Every
   * record written since format 4 has its entry there (an older store is refused at start), so no
   * entry means no record.
   */
  private revision(key: RecordKey): number {
    return this.revisions.get(revisionKey(key)) ?? 0;
  }

  /** Whether `key` is still at the revision it was loaded at (a placeholder: as its commit left it). */
  private unchanged(key: RecordKey, loadedRev: number): boolean {
    let expected = loadedRev;
    if (loadedRev < 0) {
      const { serial, deleted } = fromPendingRev(loadedRev);
      const rev = this.outcomes.get(serial);
      if (rev === undefined) return false;
      expected = deleted ? 0 : rev;
    }
    return this.revision(key) === expected;
  }

  private commitInTransaction(
    { writes, reads }: Commit,
    streamSeq: number,
  ): (CommitResult & { ok: false }) | (CommitResult & { ok: true; rev: number }) {
    for (const read of reads) if (!this.unchanged(read.key, read.rev)) return { ok: false, conflict: read.key };
    for (const write of writes) {
      if (!this.unchanged(write.key, write.baseRev)) return { ok: false, conflict: write.key };
    }
    // Revisions come from one counter, so a record deleted and created again never reuses one.
    const rev = (this.meta.get(COMMITS) ?? 0) + 1;
    this.meta.putSync(COMMITS, rev);
    const ownerVersions = new Map<string, number>();
    let bytes = 0;
    for (const write of writes) {
      const db = this.db(write.key);
      const k = lmdbKey(write.key);
      if (write.value === null) {
        db.removeSync(k);
        this.revisions.removeSync(revisionKey(write.key));
      } else {
        db.putSync(k, { rev, value: write.value });
        this.revisions.putSync(revisionKey(write.key), rev);
        bytes += db.getBinaryFast(k)?.length ?? 0;
      }
      if (write.key.type === "part") {
        const fragment = write.value === null ? null : encodeFragment(write.value as Part);
        if (fragment === null) this.fragments.removeSync(k);
        else {
          this.fragments.putSync(k, fragment);
          bytes += fragment.byteLength;
        }
      }
      ownerVersions.set(write.key.ownerId, 0);
    }
    const clients = writtenClients(writes);
    for (const ownerId of ownerVersions.keys()) {
      const version = (this.meta.get([ownerId, OWNER_VERSION]) ?? 0) + 1;
      this.meta.putSync([ownerId, OWNER_VERSION], version);
      for (const clientId of clients.get(ownerId) ?? [])
        this.meta.putSync([ownerId, CLIENT_VERSION, clientId], version);
      ownerVersions.set(ownerId, version);
    }
    if (streamSeq > (this.meta.get(APPLIED_SEQ) ?? 0)) this.meta.putSync(APPLIED_SEQ, streamSeq);
    return { ok: true, rev, ownerVersions, written: { records: writes.length, bytes } };
  }

  identity(): string {
    // Read each time (one in-memory lookup): a reader may open before the writer creates the store.
    return String(this.meta.get(IDENTITY) ?? "");
  }

  async version(ownerId: string, clientId?: string): Promise<number> {
    return this.versionNow(ownerId, clientId);
  }

  private versionNow(ownerId: string, clientId: string | undefined): number {
    const key = clientId === undefined ? [ownerId, OWNER_VERSION] : [ownerId, CLIENT_VERSION, clientId];
    return this.meta.get(key) ?? 0;
  }

  async readDashboard(ownerId: string, clientId?: string): Promise<DashboardRead> {
    // Reads in one event-loop turn share one read snapshot, and a range iterator keeps the snapshot
    // it started in until it ends: so version and fragments agree even though a large owner's range
    // is read in slices, letting other requests run between them.
    const version = this.versionNow(ownerId, clientId);
    const prefix = clientId === undefined ? [ownerId] : [ownerId, clientId];
    const fragments: StoredFragment[] = [];
    for (const { key, value } of this.fragments.getRange({ start: prefix, end: [...prefix, AFTER_ANY_ID] })) {
      fragments.push({ clientId: String(key[1]), projectId: String(key[2]), chunk: Number(key[3]), bytes: value });
      if (fragments.length % FRAGMENTS_PER_TURN === 0) await setImmediate();
    }
    return { version, fragments };
  }

  async partStats(ownerId: string): Promise<PartStats> {
    const stats: PartStats = { parts: 0, bytes: 0, largestPartBytes: 0 };
    for (const key of this.parts.getKeys({ start: [ownerId], end: [ownerId, AFTER_ANY_ID] })) {
      const size = this.parts.getBinary(key)?.length ?? 0;
      stats.parts++;
      stats.bytes += size;
      stats.largestPartBytes = Math.max(stats.largestPartBytes, size);
    }
    return stats;
  }

  async appliedSeq(): Promise<number> {
    return this.meta.get(APPLIED_SEQ) ?? 0;
  }

  async close(): Promise<void> {
    await this.env.close();
  }
}
