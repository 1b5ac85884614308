// The embedded read model: LMDB in DATA_DIR. Needs no server, survives restarts, and is shared
// safely by several processes on one machine (LMDB serialises writers with a file lock).
import { randomInt } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { setImmediate } from "node:timers/promises";
import { asBinary, open, type Database, type RootDatabase, type RootDatabaseOptions, type Transaction } from "lmdb";
import { decodeStoredChunk, encodeFragment, encodeStoredChunk } from "./fragments.ts";
import { generationName } from "./generations.ts";
import {
  checkReadModelFormat,
  keyId,
  READ_MODEL_FORMATS,
  type LicenseChunk,
  type Part,
  type RecordKey,
  type StoredRecord,
} from "./shape.ts";
import {
  StoreUnavailableError,
  type Commit,
  type CommitResult,
  type Committed,
  type DashboardChange,
  type DashboardSnapshot,
  type DashboardStore,
  type PartStats,
  type RevisionedRecord,
  type StoredFragment,
  clientsDeletingParts,
  writtenOwners,
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
/** A database that format 5 kept (see READ_MODEL_FORMATS), dropped by its upgrade. */
const REVISIONS_OF_FORMAT_5 = "revisions";
/** A large owner's fragments are read this many at a time (under a MB) per event-loop turn. */
const FRAGMENTS_PER_TURN = 250;
/**
 * Fragments leave LMDB as views of its read buffer (or of the map), valid until the next read:
 * a reader copies what it needs of each before the next (see DashboardSnapshot), rather than lmdb-js
 * allocating a copy of each. A range read passes the value's size; a point read sets the buffer's
 * `length` to it.
 */
const FRAGMENT_VIEWS = {
  encode: (bytes: Uint8Array) => bytes,
  decode: (bytes: Uint8Array, size?: unknown) => bytes.subarray(0, typeof size === "number" ? size : bytes.length),
};

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

/** lmdb-js's encoder of a database (msgpack, with its shared structures), which its types leave out. */
interface WithEncoder {
  encoder: { encode(value: Stored): Uint8Array };
}

/**
 * Puts a record encoded as putSync would encode it, and returns its size: the projector counts the
 * bytes it writes, and reading each record back to measure it cost a B-tree search per record.
 */
function putCountingBytes(db: Database<Stored, LmdbKey>, key: LmdbKey, value: Stored): number {
  const encoded = (db as unknown as WithEncoder).encoder.encode(value);
  db.putSync(key, asBinary(encoded) as unknown as Stored); // stored as exactly these bytes
  return encoded.byteLength;
}

function lmdbKey(key: RecordKey): LmdbKey {
  return key.type === "part"
    ? [key.ownerId, key.clientId, key.projectId, key.chunk]
    : [key.ownerId, key.entity, key.id];
}

/**
 * An lmdb-js transaction's outcome, a failed commit rejecting with LMDB's own error. lmdb-js rejects
 * the transaction with a generic error and LMDB's as a second promise (`commitError`), which, left
 * unhandled, would end the process: every write transaction goes through here.
 */
export async function committed<T>(transaction: Promise<T>): Promise<T> {
  try {
    return await transaction;
  } catch (error) {
    const commitError = (error as { commitError?: Promise<unknown> }).commitError;
    if (commitError === undefined) throw error;
    throw await commitError.then(
      () => error,
      (reason: unknown) => reason,
    );
  }
}

export interface LmdbStoreOptions {
  readOnly?: boolean;
  generation?: number;
}

/** Named databases: 4 per generation and the control record's, so one process can open 63 generations. */
const MAX_DBS = 256;

/** The LMDB environment under `dataDir` (its `lmdb` folder), which holds every generation. */
export function openLmdbEnv(dataDir: string): { env: RootDatabase; dir: string } {
  const dir = path.join(dataDir, "lmdb");
  mkdirSync(dir, { recursive: true });
  // Large map so big tenants never hit MDB_MAP_FULL; LMDB grows the file lazily. Commits are
  // transaction callbacks (lmdb-js may run several queued ones in one transaction, and then they
  // fail together); with event-turn batching a failed commit also left a rejected promise of its
  // own that nobody could handle.
  // Durable commits without lmdb-js's overlapping sync (its default), under which a process killed
  // while flushing left a lock that the next process to commit a large transaction found orphaned,
  // and lmdb-js's LMDB then declared that process's environment broken (MDB_PANIC) instead of
  // recovering (test/lmdbCrash.test.ts). A commit flushes its data under the write lock, then writes
  // its meta page without waiting for it (noMetaSync: the database stays consistent, a host crash
  // can only undo a commit whose meta page is not flushed yet, so not yet acknowledged); the store
  // flushes that off the lock before the commit resolves (write), so the next commit need not wait.
  const env = open({
    path: dir,
    maxDbs: MAX_DBS,
    mapSize: 64 * 1024 ** 3,
    eventTurnBatching: false,
    overlappingSync: false,
    noMetaSync: true,
  });
  return { env, dir };
}

export class LmdbDashboardStore implements DashboardStore {
  /**
   * One commit being made durable (its meta page flushed) while the next is prepared in the
   * following write transaction.
   */
  readonly commitsInFlight = 2;
  /** The identity, once there is one (see identity()). */
  private knownIdentity = "";

  private constructor(
    private readonly env: RootDatabase,
    /** Whether close() closes the environment (else it belongs to the caller: see openIn). */
    private readonly ownsEnv: boolean,
    private readonly parts: Database<Stored, LmdbKey>,
    private readonly registers: Database<Stored, LmdbKey>,
    /** Each part's fragment (see fragments.ts), under the part's key: what openDashboard reads. */
    private readonly fragments: Database<Uint8Array, LmdbKey>,
    private readonly meta: Database<number, string | LmdbKey>,
  ) {}

  /**
   * `readOnly`: never records the format nor upgrades it (a reader only checks it, and reads a store
   * of an upgradable format as it is; writing it is a writer's job).
   * `generation` (default 1): whose databases (see generations.ts).
   */
  static open(dataDir: string, options: LmdbStoreOptions = {}): LmdbDashboardStore {
    const { env, dir } = openLmdbEnv(dataDir);
    try {
      return LmdbDashboardStore.openIn(env, dir, options, true);
    } catch (error) {
      void env.close(); // the format error is what the caller needs to see
      throw error;
    }
  }

  /** A generation's store in an environment opened with openLmdbEnv (`dir` names it in errors). */
  static openIn(
    env: RootDatabase,
    dir: string,
    { readOnly = false, generation = 1 }: LmdbStoreOptions = {},
    ownsEnv = false,
  ): LmdbDashboardStore {
    const name = (table: string) => generationName(table, generation);
    const parts = env.openDB<Stored, LmdbKey>({ name: name("parts"), sharedStructuresKey: SHARED_STRUCTURES });
    const meta = env.openDB<number, string | LmdbKey>({ name: name("meta") });
    env.transactionSync(() => {
      const hasData = parts.getKeysCount({ limit: 1 }) > 0;
      const format = checkReadModelFormat(READ_MODEL_FORMATS.lmdb, meta.get(FORMAT), hasData, dir);
      if (format !== "current" && !readOnly) {
        // Format 5 also kept every record's revision in a database of its own, which this version
        // neither reads nor keeps up to date: it goes in the transaction that records format 7.
        // Format 6's license chunks are read where it kept them until they are written again.
        if (format === "upgrade") env.openDB({ name: name(REVISIONS_OF_FORMAT_5) }).dropSync();
        meta.putSync(FORMAT, READ_MODEL_FORMATS.lmdb.current);
      }
      if (!readOnly && meta.get(IDENTITY) === undefined) meta.putSync(IDENTITY, randomInt(2 ** 48 - 1));
    });
    const registers = env.openDB<Stored, LmdbKey>({ name: name("registers"), sharedStructuresKey: SHARED_STRUCTURES });
    // lmdb-js takes an encoder per database (open.js), though its types list one on the root only.
    const fragmentsOptions: RootDatabaseOptions & { name: string } = {
      name: name("fragments"),
      encoder: FRAGMENT_VIEWS,
    };
    const fragments = env.openDB<Uint8Array, LmdbKey>(fragmentsOptions);
    return new LmdbDashboardStore(env, ownsEnv, parts, registers, fragments, meta);
  }

  private db(key: RecordKey): Database<Stored, LmdbKey> {
    return key.type === "part" ? this.parts : this.registers;
  }

  async load(keys: readonly RecordKey[]): Promise<RevisionedRecord[]> {
    return keys.map((key) => this.read(key));
  }

  /**
   * A record as stored (in a write transaction: as that transaction sees it). A license chunk with
   * a live license is kept once, as its fragment (encodeStoredChunk); one with none, or written by
   * format 6, is a record of `parts`: a chunk's fragment with its state and a record of it in
   * `parts` never both exist, as each write of one removes the other (a fragment written by format
   * 6 carries no state). `notInParts` collects the chunks read here that have no record there
   * (found as such a fragment, or in neither), whose writes then need not remove one.
   */
  private read(key: RecordKey, notInParts?: Set<string>): RevisionedRecord {
    const k = lmdbKey(key);
    if (key.type === "part" && key.chunk > 0) {
      const fragment = this.fragments.get(k);
      const chunk = fragment === undefined ? null : decodeStoredChunk(fragment);
      if (chunk) {
        notInParts?.add(keyId(key));
        return { key, value: chunk.chunk, rev: chunk.rev };
      }
    }
    const stored = this.db(key).get(k);
    if (stored === undefined && key.type === "part" && key.chunk > 0) notInParts?.add(keyId(key));
    return { key, value: stored?.value ?? null, rev: stored?.rev ?? 0 };
  }

  /** Resolves only once the commit is on disk, so the projector may acknowledge its events then. */
  async commit(commit: Commit, streamSeq: number): Promise<CommitResult> {
    return this.write(() => {
      for (const read of commit.reads)
        if (!this.unchanged(read.key, read.rev)) return { ok: false, conflict: read.key };
      for (const write of commit.writes) {
        if (!this.unchanged(write.key, write.baseRev)) return { ok: false, conflict: write.key };
      }
      return this.commitInTransaction(commit, streamSeq);
    });
  }

  async commitInWriteTransaction(
    prepare: (load: (keys: readonly RecordKey[]) => RevisionedRecord[]) => Commit,
    streamSeq: number,
  ): Promise<Committed> {
    // What `prepare` read is the latest state, and stays so until this transaction ends (LMDB has
    // one writer at a time): there is nothing to check.
    return this.write(() => {
      const notInParts = new Set<string>();
      const commit = prepare((keys) => keys.map((key) => this.read(key, notInParts)));
      return this.commitInTransaction(commit, streamSeq, notInParts);
    });
  }

  async checkWritable(): Promise<void> {
    await this.write(() => this.meta.putSync(WRITE_CHECK, Date.now()));
  }

  /**
   * Runs `body` in a write transaction and resolves once it is durable, without blocking the
   * event loop on the disk: lmdb-js's write thread holds the write lock and commits (flushing the
   * data), `body` runs on this thread inside that transaction (its reads see its own writes), and
   * the meta page is flushed on a libuv thread after the lock is released (see openLmdbEnv). A
   * child transaction, so that a `body` that throws leaves nothing behind.
   * LMDB reports failures of the environment (a full disk is EIO or ENOSPC, a full map
   * MDB_MAP_FULL) with a numeric code, and a failed commit as a rejected promise: outages, not bad
   * records.
   */
  private async write<T>(body: () => T): Promise<T> {
    let thrown: unknown = NOTHING_THROWN;
    try {
      const result = await committed(
        this.env.childTransaction(() => {
          try {
            return body();
          } catch (error) {
            thrown = error;
            throw error;
          }
        }),
      );
      await this.durable();
      return result;
    } catch (error) {
      if (error === thrown && typeof (error as { code?: unknown }).code !== "number") throw error;
      throw new StoreUnavailableError(`LMDB cannot write: ${(error as Error).message}`, { cause: error });
    }
  }

  /**
   * Resolves once every transaction committed so far is on disk, meta pages included: mdb_env_sync
   * on a libuv thread, which takes no lock.
   */
  private durable(): Promise<void> {
    return new Promise((resolve, reject) =>
      (this.env as unknown as EnvSync).sync((error) => (error ? reject(error) : resolve())),
    );
  }

  /**
   * Whether `key` is still at the revision it was loaded at. Decodes the record: only conditional
   * commits check, and the projector prepares its commits in the write transaction instead.
   */
  private unchanged(key: RecordKey, loadedRev: number): boolean {
    return this.read(key).rev === loadedRev;
  }

  /**
   * Writes a commit in the current write transaction; a commit with no writes writes nothing.
   * `notInParts`: chunks this transaction read and found no record of in `parts` (see read).
   */
  private commitInTransaction({ writes }: Commit, streamSeq: number, notInParts?: ReadonlySet<string>): Committed {
    if (writes.length === 0) return { ok: true, changes: new Map(), written: { records: 0, bytes: 0 } };
    // Revisions come from one counter, so a record deleted and created again never reuses one.
    const rev = (this.meta.get(COMMITS) ?? 0) + 1;
    this.meta.putSync(COMMITS, rev);
    let bytes = 0;
    for (const write of writes) {
      const db = this.db(write.key);
      const k = lmdbKey(write.key);
      const chunk =
        write.key.type === "part" && write.key.chunk > 0 && write.value !== null
          ? encodeStoredChunk(write.value as LicenseChunk, rev)
          : null;
      if (chunk) {
        // Its tombstones, or what format 6 kept of it: a B-tree search for nothing when it has none.
        if (!notInParts?.has(keyId(write.key))) db.removeSync(k);
        this.fragments.putSync(k, chunk);
        bytes += chunk.byteLength;
        continue;
      }
      if (write.value === null) db.removeSync(k);
      else bytes += putCountingBytes(db, k, { rev, value: write.value });
      if (write.key.type === "part") {
        const fragment = write.value === null ? null : encodeFragment(write.value as Part);
        if (fragment === null) this.fragments.removeSync(k);
        else {
          this.fragments.putSync(k, fragment);
          bytes += fragment.byteLength;
        }
      }
    }
    const changes = new Map<string, DashboardChange>();
    const deletingParts = clientsDeletingParts(writes);
    for (const [ownerId, clients] of writtenOwners(writes)) {
      const version = (this.meta.get([ownerId, OWNER_VERSION]) ?? 0) + 1;
      this.meta.putSync([ownerId, OWNER_VERSION], version);
      for (const clientId of clients) {
        const key = [ownerId, CLIENT_VERSION, clientId];
        if (!deletingParts.get(ownerId)?.has(clientId) || this.hasParts(ownerId, clientId))
          this.meta.putSync(key, version);
        else this.meta.removeSync(key); // left with none: version 0 again (DashboardStore.version)
      }
      changes.set(ownerId, { version, clients: [...clients] });
    }
    if (streamSeq > (this.meta.get(APPLIED_SEQ) ?? 0)) this.meta.putSync(APPLIED_SEQ, streamSeq);
    return { ok: true, changes, written: { records: writes.length, bytes } };
  }

  /** Whether a client has any part (in a write transaction: as that transaction leaves it). */
  private hasParts(ownerId: string, clientId: string): boolean {
    // A range each: lmdb-js sets its own options on the one it is given.
    const range = () => ({ start: [ownerId, clientId], end: [ownerId, clientId, AFTER_ANY_ID], limit: 1 });
    return this.parts.getKeysCount(range()) > 0 || this.fragments.getKeysCount(range()) > 0;
  }

  identity(): string {
    // Read until there is one (a reader may open before the writer creates the store); it never
    // changes once drawn, and every revalidation asks for it.
    this.knownIdentity ||= String(this.meta.get(IDENTITY) ?? "");
    return this.knownIdentity;
  }

  async version(ownerId: string, clientId?: string): Promise<number> {
    return this.versionNow(ownerId, clientId);
  }

  versionNow(ownerId: string, clientId?: string, transaction?: Transaction): number {
    const key = clientId === undefined ? [ownerId, OWNER_VERSION] : [ownerId, CLIENT_VERSION, clientId];
    return (transaction ? this.meta.get(key, { transaction }) : this.meta.get(key)) ?? 0;
  }

  async openDashboard(ownerId: string, clientId?: string): Promise<DashboardSnapshot> {
    // The read transaction held for this snapshot (lmdb-js's of this turn, with a reference for it):
    // the visits of the fragments and the reads by key, over many event-loop turns, and the version
    // see the same snapshot, while other requests run between the turns.
    const transaction = this.env.useReadTransaction();
    let closed = false;
    try {
      const version = this.versionNow(ownerId, clientId, transaction);
      /** Visits the fragments under `prefix` ([ownerId] or [ownerId, clientId]). */
      const visitFragments = async (prefix: LmdbKey, visit: (fragment: StoredFragment) => void) => {
        let visited = 0;
        const range = { start: prefix, end: [...prefix, AFTER_ANY_ID], transaction };
        for (const { key, value } of this.fragments.getRange(range)) {
          visit({ clientId: String(key[1]), projectId: String(key[2]), chunk: Number(key[3]), bytes: value });
          if (++visited % FRAGMENTS_PER_TURN === 0) await setImmediate();
        }
      };
      return {
        version,
        fragments: (visit) => visitFragments(clientId === undefined ? [ownerId] : [ownerId, clientId], visit),
        fragment: (clientId, projectId, chunk) =>
          this.fragments.get([ownerId, clientId, projectId, chunk], { transaction }),
        clients: () => {
          const versions = new Map<string, number>();
          if (clientId !== undefined) {
            if (version > 0) versions.set(clientId, version);
          } else {
            const range = {
              start: [ownerId, CLIENT_VERSION],
              end: [ownerId, CLIENT_VERSION, AFTER_ANY_ID],
              transaction,
            };
            for (const { key, value } of this.meta.getRange(range)) versions.set(String((key as LmdbKey)[2]), value);
          }
          return {
            identity: this.identity(),
            clientId,
            versions,
            fragments: (client, visit) => {
              if (clientId !== undefined && client !== clientId)
                throw new Error(`a snapshot of client ${clientId} has no fragments of client ${client}`);
              return visitFragments([ownerId, client], visit);
            },
          };
        },
        close: () => {
          // Once: a second done() would drop a reference another read of the same turn holds.
          if (!closed) transaction.done();
          closed = true;
        },
      };
    } catch (error) {
      transaction.done();
      throw error;
    }
  }

  async partStats(ownerId: string): Promise<PartStats> {
    const stats: PartStats = { parts: 0, bytes: 0, largestPartBytes: 0 };
    const count = (size: number) => {
      stats.parts++;
      stats.bytes += size;
      stats.largestPartBytes = Math.max(stats.largestPartBytes, size);
    };
    // A range each: lmdb-js sets its own options on the one it is given.
    const range = () => ({ start: [ownerId], end: [ownerId, AFTER_ANY_ID] });
    for (const key of this.parts.getKeys(range())) count(this.parts.getBinary(key)?.length ?? 0);
    // Chunks kept as their fragments (see read).
    for (const { key, value } of this.fragments.getRange(range()))
      if (Number(key[3]) > 0 && decodeStoredChunk(value)) count(value.length);
    return stats;
  }

  async appliedSeq(): Promise<number> {
    return this.meta.get(APPLIED_SEQ) ?? 0;
  }

  async close(): Promise<void> {
    if (this.ownsEnv) await this.env.close();
  }
}
