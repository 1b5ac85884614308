// The embedded read model: LMDB in DATA_DIR. Needs no server, survives restarts, and is shared
// safely by several processes on one machine (LMDB serialises writers with a file lock).
import { mkdirSync } from "node:fs";
import path from "node:path";
import { setImmediate } from "node:timers/promises";
import { open, type Database, type RootDatabase } from "lmdb";
import { encodeFragment } from "./fragments.ts";
import { checkReadModelFormat, READ_MODEL_FORMAT, type Part, type RecordKey, type StoredRecord } from "./shape.ts";
import {
  StoreUnavailableError,
  type Commit,
  type CommitResult,
  type DashboardRead,
  type DashboardStore,
  type PartStats,
  type RevisionedRecord,
  type StoredFragment,
} from "./store.ts";

interface Stored {
  rev: number;
  value: StoredRecord;
}

/** Ids are [A-Za-z0-9_-], all below "~", so [x, "~"] closes the range of keys that start with x. */
const AFTER_ANY_ID = "~";
const OWNER_VERSION = "";
const COMMITS = "commits";
const APPLIED_SEQ = "appliedSeq";
const FORMAT = "format";
const WRITE_CHECK = "writeCheck";
/** A large owner's fragments are read this many at a time (a few MB, a few ms) per event-loop turn. */
const FRAGMENTS_PER_TURN = 1000;
/**
 * Where msgpack keeps the shapes of stored records, once per database: without it every value
 * carries its own record definitions and every read decodes them again (2-3x the decoding cost of
 * a dashboard). Values written either way decode the same.
 */
const SHARED_STRUCTURES = Symbol.for("structures");

type LmdbKey = (string | number)[];

function lmdbKey(key: RecordKey): LmdbKey {
  return key.type === "part"
    ? [key.ownerId, key.clientId, key.projectId, key.chunk]
    : [key.ownerId, key.entity, key.id];
}

export class LmdbDashboardStore implements DashboardStore {
  private constructor(
    private readonly env: RootDatabase,
    private readonly parts: Database<Stored, LmdbKey>,
    private readonly registers: Database<Stored, LmdbKey>,
    /** Each part's fragment (see fragments.ts), under the part's key: what readDashboard reads. */
    private readonly fragments: Database<Uint8Array, LmdbKey>,
    private readonly meta: Database<number, string | LmdbKey>,
  ) {}

  /** `readOnly`: never records the format (a reader only checks it; writing it is a writer's job). */
  static open(dataDir: string, { readOnly = false }: { readOnly?: boolean } = {}): LmdbDashboardStore {
    const dir = path.join(dataDir, "lmdb");
    mkdirSync(dir, { recursive: true });
    // Large map so big tenants never hit MDB_MAP_FULL; LMDB grows the file lazily.
    const env = open({ path: dir, maxDbs: 8, mapSize: 64 * 1024 ** 3 });
    const parts = env.openDB<Stored, LmdbKey>({ name: "parts", sharedStructuresKey: SHARED_STRUCTURES });
    const meta = env.openDB<number, string | LmdbKey>({ name: "meta" });
    try {
      env.transactionSync(() => {
        const hasData = parts.getKeysCount({ limit: 1 }) > 0;
        const isNew = checkReadModelFormat(meta.get(FORMAT), hasData, dir);
        if (isNew && !readOnly) meta.putSync(FORMAT, READ_MODEL_FORMAT);
      });
    } catch (error) {
      void env.close(); // the format error is what the caller needs to see
      throw error;
    }
    const registers = env.openDB<Stored, LmdbKey>({ name: "registers", sharedStructuresKey: SHARED_STRUCTURES });
    const fragments = env.openDB<Uint8Array, LmdbKey>({ name: "fragments", encoding: "binary" });
    return new LmdbDashboardStore(env, parts, registers, fragments, meta);
  }

  private db(key: RecordKey): Database<Stored, LmdbKey> {
    return key.type === "part" ? this.parts : this.registers;
  }

  async load(keys: readonly RecordKey[]): Promise<RevisionedRecord[]> {
    return keys.map((key) => {
      const stored = this.db(key).get(lmdbKey(key));
      return { key, value: stored?.value ?? null, rev: stored?.rev ?? 0 };
    });
  }

  async commit(commit: Commit, streamSeq: number): Promise<CommitResult> {
    // A synchronous transaction commits and syncs to disk before it returns, so the projector may
    // acknowledge the events as soon as this resolves.
    return this.write(() => this.commitInTransaction(commit, streamSeq));
  }

  async checkWritable(): Promise<void> {
    this.write(() => this.meta.putSync(WRITE_CHECK, Date.now()));
  }

  /**
   * Runs a write transaction. LMDB reports failures of the environment (a full disk is EIO or
   * ENOSPC, a full map MDB_MAP_FULL) with a numeric code; those are outages, not bad records.
   */
  private write<T>(body: () => T): T {
    try {
      return this.env.transactionSync(body);
    } catch (error) {
      if (typeof (error as { code?: unknown }).code === "number") {
        throw new StoreUnavailableError(`LMDB cannot write: ${(error as Error).message}`, { cause: error });
      }
      throw error;
    }
  }

  private commitInTransaction({ writes, reads }: Commit, streamSeq: number): CommitResult {
    for (const expected of [...reads, ...writes.map((w) => ({ key: w.key, rev: w.baseRev }))]) {
      const rev = this.db(expected.key).get(lmdbKey(expected.key))?.rev ?? 0;
      if (rev !== expected.rev) return { ok: false, conflict: expected.key };
    }
    // Revisions come from one counter, so a record deleted and created again never reuses one.
    const rev = (this.meta.get(COMMITS) ?? 0) + 1;
    this.meta.putSync(COMMITS, rev);
    const ownerVersions = new Map<string, number>();
    let bytes = 0;
    for (const write of writes) {
      const db = this.db(write.key);
      const k = lmdbKey(write.key);
      if (write.value === null) db.removeSync(k);
      else {
        db.putSync(k, { rev, value: write.value });
        bytes += db.getBinary(k)?.length ?? 0;
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
    for (const ownerId of ownerVersions.keys()) {
      const version = (this.meta.get([ownerId, OWNER_VERSION]) ?? 0) + 1;
      this.meta.putSync([ownerId, OWNER_VERSION], version);
      ownerVersions.set(ownerId, version);
    }
    if (streamSeq > (this.meta.get(APPLIED_SEQ) ?? 0)) this.meta.putSync(APPLIED_SEQ, streamSeq);
    return { ok: true, ownerVersions, written: { records: writes.length, bytes } };
  }

  async ownerVersion(ownerId: string): Promise<number> {
    return this.meta.get([ownerId, OWNER_VERSION]) ?? 0;
  }

  async readDashboard(ownerId: string, clientId?: string): Promise<DashboardRead> {
    // Reads in one event-loop turn share one read snapshot, and a range iterator keeps the snapshot
    // it started in until it ends: so version and fragments agree even though a large owner's range
    // is read in slices, letting other requests run between them.
    const version = this.meta.get([ownerId, OWNER_VERSION]) ?? 0;
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
