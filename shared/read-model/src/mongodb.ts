// The read model on MongoDB, for deployments across machines. Same behaviour as the LMDB adapter:
// an owner's parts are one _id range (read with one indexed query), and a commit is one
// multi-document transaction, conditional on the revisions its records were loaded at.
import { randomInt } from "node:crypto";
import {
  BSON,
  MongoBulkWriteError,
  MongoClient,
  MongoError,
  MongoErrorLabel,
  MongoNetworkError,
  MongoNotConnectedError,
  MongoOperationTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
  MongoWriteConcernError,
  WriteConcern,
  type AnyBulkWriteOperation,
  type ClientSession,
  type Collection,
  type Db,
  type ReadPreferenceMode,
  type TransactionOptions,
} from "mongodb";
import { encodeFragment } from "./fragments.ts";
import { CommitBulk, type RecordDoc } from "./mongoBulk.ts";
import { generationName } from "./generations.ts";
import { checkReadModelFormat, READ_MODEL_FORMATS, type Part, type RecordKey, type StoredRecord } from "./shape.ts";
import {
  StoreUnavailableError,
  type Commit,
  type CommitResult,
  type DashboardChange,
  type DashboardSnapshot,
  type DashboardStore,
  type PartStats,
  type RevisionedRecord,
  type StoredFragment,
  clientsDeletingParts,
  writtenOwners,
} from "./store.ts";

export { CommitBulk } from "./mongoBulk.ts";

/**
 * A read-model version, kept in the parts collection: an owner's at `${ownerId}/`, first in the
 * owner's range, and a client's at `${ownerId}/${clientId}/`, first in the client's range (no part
 * has either id: a part's has four segments).
 */
interface VersionDoc {
  _id: string;
  version: number;
}

interface SeqDoc {
  _id: string;
  seq: number;
}

const APPLIED_SEQ = "appliedSeq";
const FORMAT = "format";
/** Rewritten by checkWritable (its `seq` holds the time of the check). */
const WRITE_CHECK = "writeCheck";
const WRITE_CONFLICT = 112;
const TRANSACTION_TOO_LARGE_FOR_CACHE = 429;
const NAMESPACE_EXISTS = 48;

/**
 * Ids are [A-Za-z0-9_-] and never contain "/", so everything under a prefix ending in "/" lies in
 * [prefix, prefix with its last "/" replaced by "0"), "0" being the character after "/". The
 * owner's version document, `${ownerId}/`, sorts first in the owner's range, and a client's,
 * `${ownerId}/${clientId}/`, first in the client's.
 */
const AFTER_SLASH = "0";

/** Chunk numbers padded so that string order is numeric order (up to 999,999 chunks a project). */
function docId(key: RecordKey): string {
  return key.type === "part"
    ? `${key.ownerId}/${key.clientId}/${key.projectId}/${String(key.chunk).padStart(6, "0")}`
    : `${key.ownerId}/${key.entity}/${key.id}`;
}

const versionId = (ownerId: string, clientId?: string) =>
  clientId === undefined ? `${ownerId}/` : `${ownerId}/${clientId}/`;

/**
 * A majority write that cannot complete in this time (the majority of data-bearing members
 * unreachable) fails as an outage instead of waiting for ever.
 */
const WRITE_TIMEOUT_MS = 10_000;

/** Snapshot reads and majority commits: what the transaction read is what it conditions on. */
const TRANSACTION: TransactionOptions = {
  readConcern: { level: "snapshot" },
  writeConcern: new WriteConcern("majority", WRITE_TIMEOUT_MS),
  readPreference: "primary",
  maxCommitTimeMS: WRITE_TIMEOUT_MS,
};

/** Thrown inside the transaction callback to abort it; withTransaction rethrows it unretried. */
class Conflict extends Error {
  constructor(readonly key: RecordKey) {
    super("conflict");
  }
}

const hasCode = (error: unknown, code: number) => error instanceof MongoError && error.code === code;

/**
 * Server errors that mean "no usable primary right now" (an election, a shutdown, a timeout), not
 * anything about the documents written: HostUnreachable, HostNotFound, MaxTimeMSExpired,
 * WriteConcernFailed, NetworkTimeout, ShutdownInProgress, FailedToSatisfyReadPreference (a mongos
 * finding no primary), ReadConcernMajorityNotAvailableYet, PrimarySteppedDown, ExceededTimeLimit,
 * SocketException, NotWritablePrimary, InterruptedAtShutdown, InterruptedDueToReplStateChange,
 * NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary.
 */
const OUTAGE_CODES = new Set([6, 7, 50, 64, 89, 91, 133, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

/** Whether a driver error is an outage of the deployment rather than a problem of one commit. */
export function isOutage(error: unknown): boolean {
  return (
    error instanceof MongoNetworkError ||
    error instanceof MongoServerSelectionError ||
    error instanceof MongoNotConnectedError ||
    error instanceof MongoTopologyClosedError ||
    error instanceof MongoOperationTimeoutError ||
    error instanceof MongoWriteConcernError ||
    (error instanceof MongoError &&
      (error.hasErrorLabel(MongoErrorLabel.RetryableWriteError) || OUTAGE_CODES.has(Number(error.code)))) ||
    // bulkWrite rethrows the error that stopped it (a network error, no server selectable) wrapped
    // in a MongoBulkWriteError, the original kept as its errorResponse. Network errors also carry
    // the TransientTransactionError label in a transaction: unwrapped, they would pass for a lost race.
    (error instanceof MongoBulkWriteError &&
      (error.errorResponse as unknown) instanceof Error &&
      isOutage(error.errorResponse))
  );
}

const unavailable = (error: unknown) =>
  isOutage(error)
    ? new StoreUnavailableError(`MongoDB is unavailable: ${(error as Error).message}`, { cause: error })
    : error;

/** The database named in the URL's path (mongodb://hosts/<db>?options), if any. */
function urlDatabase(url: string): string | undefined {
  // Credentials and hosts cannot contain an unescaped "/", so the path starts at the first one.
  const name = /^mongodb(?:\+srv)?:\/\/[^/]*\/([^?]*)/.exec(url)?.[1];
  return name ? decodeURIComponent(name) : undefined;
}

export interface MongoStoreOptions {
  url: string;
  /** Default: the URL's database, else "keybox". */
  dbName?: string;
  /** For dashboard reads; loads for commits always read the primary. Default "primary". */
  readPreference?: ReadPreferenceMode;
  appName?: string;
  /**
   * For readers (the query API), which may run with a read-only database role: never creates the
   * collections or records the format (nor upgrades format 5, which it reads as it is), only
   * checks it. Default false.
   */
  readOnly?: boolean;
  /** Whose collections (see generations.ts); default 1. */
  generation?: number;
}

/** Connects to MongoDB and checks that it is a replica set (transactions are required). */
export async function connectReplicaSet(options: Pick<MongoStoreOptions, "url" | "appName">): Promise<MongoClient> {
  // The client keeps the default (primary) read preference: transactions require it, and
  // dashboard reads pass the configured one explicitly.
  const client = new MongoClient(options.url, options.appName ? { appName: options.appName } : {});
  try {
    await client.connect();
    const hello = await client.db("admin").command({ hello: 1 });
    if (hello.setName === undefined && hello.msg !== "isdbgrid") {
      throw new Error(
        "MONGODB_URL must point to a replica set (transactions are required); a single-node replica set " +
          "will do: start mongod with --replSet rs0 and run rs.initiate() once",
      );
    }
    return client;
  } catch (error) {
    await client.close();
    throw error;
  }
}

/** The database the options name: `dbName`, else the URL's, else "keybox". */
export const databaseName = (options: Pick<MongoStoreOptions, "url" | "dbName">): string =>
  options.dbName ?? urlDatabase(options.url) ?? "keybox";

export class MongoDashboardStore implements DashboardStore {
  private constructor(
    private readonly client: MongoClient,
    /** Whether close() closes the client (else it belongs to the caller: see openIn). */
    private readonly ownsClient: boolean,
    private readonly parts: Collection<RecordDoc>,
    private readonly versions: Collection<VersionDoc>,
    private readonly registers: Collection<RecordDoc>,
    private readonly meta: Collection<SeqDoc>,
    private readonly readPreference: ReadPreferenceMode,
    private readonly storeIdentity: string,
  ) {}

  static async open(options: MongoStoreOptions): Promise<MongoDashboardStore> {
    const client = await connectReplicaSet(options);
    try {
      return await MongoDashboardStore.openIn(client, client.db(databaseName(options)), options, true);
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  /** A generation's store (`options.generation`, default 1: see generations.ts) on a connected client. */
  static async openIn(
    client: MongoClient,
    db: Db,
    options: Pick<MongoStoreOptions, "readPreference" | "readOnly" | "generation">,
    ownsClient = false,
  ): Promise<MongoDashboardStore> {
    const name = (collection: string) => generationName(collection, options.generation ?? 1);
    // Created up front: older servers cannot create a collection inside a transaction.
    for (const collection of options.readOnly ? [] : ["parts", "registers", "meta"]) {
      await db.createCollection(name(collection)).catch((error: unknown) => {
        if (!hasCode(error, NAMESPACE_EXISTS)) throw error;
      });
    }
    const format = db.collection<{ _id: string; version: number; identity?: number }>(name("meta"));
    const recorded = await format.findOne({ _id: FORMAT });
    const hasData = (await db.collection(name("parts")).findOne({}, { projection: { _id: 1 } })) !== null;
    const found = checkReadModelFormat(
      READ_MODEL_FORMATS.mongodb,
      recorded?.version,
      hasData,
      `MongoDB database ${db.databaseName}`,
    );
    if (found !== "current" && !options.readOnly) {
      // A new store, or one of format 5, whose documents are those of format 6: only the number
      // changes. $max: a writer opening at the same time may have recorded it already.
      await format.updateOne(
        { _id: FORMAT },
        { $max: { version: READ_MODEL_FORMATS.mongodb.current } },
        { upsert: true },
      );
    }
    if (!options.readOnly && recorded?.identity === undefined) {
      // Only where none is recorded yet: replicas opening at once agree on the first one written.
      await format.updateOne(
        { _id: FORMAT, identity: { $exists: false } },
        { $set: { identity: randomInt(2 ** 48 - 1) } },
      );
    }
    const identity = (await format.findOne({ _id: FORMAT }))?.identity;
    // The built-in _id index is the only index needed: every read is by _id or an _id range.
    return new MongoDashboardStore(
      client,
      ownsClient,
      db.collection<RecordDoc>(name("parts")),
      db.collection<VersionDoc>(name("parts")),
      db.collection<RecordDoc>(name("registers")),
      db.collection<SeqDoc>(name("meta")),
      options.readPreference ?? "primary",
      identity === undefined ? "" : String(identity),
    );
  }

  async load(keys: readonly RecordKey[]): Promise<RevisionedRecord[]> {
    // From the primary (the client's default): a commit is conditional on the latest revisions.
    const find = async (collection: Collection<RecordDoc>, ids: string[]) =>
      ids.length ? collection.find({ _id: { $in: ids } }, { projection: { rev: 1, json: 1 } }).toArray() : [];
    const ids = keys.map(docId);
    const [parts, registers] = await Promise.all([
      find(
        this.parts,
        ids.filter((_, i) => keys[i]!.type === "part"),
      ),
      find(
        this.registers,
        ids.filter((_, i) => keys[i]!.type === "register"),
      ),
    ]).catch((error: unknown) => {
      throw unavailable(error);
    });
    // Part and register ids have 4 and 3 segments, so one map cannot mix them up.
    const found = new Map([...parts, ...registers].map((doc) => [doc._id, doc]));
    return keys.map((key, i) => {
      const doc = found.get(ids[i]!);
      return { key, value: doc ? (JSON.parse(doc.json) as StoredRecord) : null, rev: doc?.rev ?? 0 };
    });
  }

  async commit({ writes, reads }: Commit, streamSeq: number): Promise<CommitResult> {
    // A fresh revision per commit, random so that no counter document serialises writers; at
    // 2^47 values one is never reused in practice, so a record deleted and created again never
    // passes a check against its earlier incarnation.
    const rev = randomInt(1, 2 ** 47);
    // Round trips grow with the bytes written, not with the records (README, "MongoDB in
    // operation"): each collection's ordered bulk (CommitBulk) is one command per run of one kind
    // of operation, which the driver splits into commands of at most maxBsonObjectSize (16 MiB) or
    // maxWriteBatchSize (100,000) operations; then the owners' versions read at once, at most one
    // read for the clients a delete may have emptied, the versions' bulk, the applied seq, and the
    // commit. A batch under 16 MiB takes at most 12. The largest batch (PROJECTOR_BATCH_SIZE at
    // most 10,000 events) stays inside MongoDB's transaction limits (see the README): every document under
    // PART_MAX_BYTES (1 MiB) against BSON's 16 MiB, no total size limit since MongoDB 4.2, and a
    // command more per 16 MiB a bulk writes, far less than transactionLifetimeLimitSeconds (60 s).
    const parts = new CommitBulk();
    const registers = new CommitBulk();
    const bulkOf = (key: RecordKey) => (key.type === "part" ? parts : registers);
    for (const read of reads) {
      const _id = docId(read.key);
      if (read.rev === 0) bulkOf(read.key).requireAbsent(read.key, _id);
      else bulkOf(read.key).requireAt(read.key, _id, read.rev, rev);
    }
    let bytes = 0;
    for (const { key, value, baseRev } of writes) {
      const _id = docId(key);
      if (value === null) {
        if (baseRev === 0) bulkOf(key).requireAbsent(key, _id);
        else bulkOf(key).delete(key, _id, baseRev, rev);
        continue;
      }
      const doc: RecordDoc = { _id, rev, json: JSON.stringify(value) };
      const fragment = key.type === "part" ? encodeFragment(value as Part) : null;
      if (fragment !== null) doc.fragment = new BSON.Binary(fragment);
      if (baseRev === 0) bulkOf(key).insert(key, doc);
      else bulkOf(key).update(key, baseRev, doc);
      bytes += BSON.calculateObjectSize(doc);
    }
    const owners = writtenOwners(writes);
    // The clients (their version ids) some of whose parts this commit deletes: only they can be
    // left with none.
    const mayEmpty = new Set(
      [...clientsDeletingParts(writes)].flatMap(([ownerId, clients]) =>
        [...clients].map((clientId) => versionId(ownerId, clientId)),
      ),
    );
    let result: CommitResult | undefined;
    const session = this.client.startSession();
    try {
      // withTransaction runs the callback again on transient errors (a write conflict with a
      // concurrent transaction), so everything it produces is (re)set inside it.
      await session.withTransaction(async () => {
        await this.writeBulk(this.parts, parts, session);
        await this.writeBulk(this.registers, registers, session);
        const changes = new Map<string, DashboardChange>();
        if (owners.size > 0) {
          // Read, then set: in the snapshot a concurrent commit of the same owner writes the same
          // document, so one of the two conflicts and runs again; the version only ever grows.
          const ownerIds = [...owners.keys()].map((ownerId) => versionId(ownerId));
          const before = await this.versions
            .find({ _id: { $in: ownerIds } }, { projection: { version: 1 }, batchSize: ownerIds.length + 1, session })
            .toArray();
          const versions = new Map(before.map((doc) => [doc._id, doc.version]));
          const withParts = await this.clientsWithParts(session, [...mayEmpty]);
          const updates: AnyBulkWriteOperation<VersionDoc>[] = [];
          for (const [ownerId, clients] of owners) {
            const version = (versions.get(versionId(ownerId)) ?? 0) + 1;
            const written = [...clients];
            changes.set(ownerId, { version, clients: written });
            for (const _id of [versionId(ownerId), ...written.map((clientId) => versionId(ownerId, clientId))]) {
              // A client left with no part loses its document: version 0 again (DashboardStore.version).
              updates.push(
                mayEmpty.has(_id) && !withParts.has(_id)
                  ? { deleteOne: { filter: { _id } } }
                  : { updateOne: { filter: { _id }, update: { $set: { version } }, upsert: true } },
              );
            }
          }
          await this.versions.bulkWrite(updates, { session, ordered: false });
        }
        await this.meta.updateOne({ _id: APPLIED_SEQ }, { $max: { seq: streamSeq } }, { upsert: true, session });
        result = { ok: true, changes, written: { records: writes.length, bytes } };
      }, TRANSACTION);
    } catch (error) {
      if (error instanceof Conflict) return { ok: false, conflict: error.key };
      // The server still aborting after withTransaction's own retries (for up to 2 minutes): other
      // writers keep winning. A conflict, so the caller reloads and applies again; the server does
      // not say on which document, so the batch's first record is named. Network errors are
      // labelled transient too, but they are outages, not conflicts: those are thrown.
      const conflict = writes[0]?.key ?? reads[0]?.key;
      // A batch too large for the server's cache is neither: thrown as it is, so the projector
      // applies its events one at a time.
      const lostRace =
        error instanceof MongoServerError &&
        !isOutage(error) &&
        error.code !== TRANSACTION_TOO_LARGE_FOR_CACHE &&
        (error.code === WRITE_CONFLICT || error.hasErrorLabel(MongoErrorLabel.TransientTransactionError));
      if (lostRace && conflict) return { ok: false, conflict };
      throw unavailable(error);
    } finally {
      await session.endSession();
    }
    if (!result) throw new Error("MongoDB transaction ended without committing");
    return result;
  }

  /** Runs one collection's bulk of a commit; a failed condition aborts the transaction as a Conflict. */
  private async writeBulk(collection: Collection<RecordDoc>, bulk: CommitBulk, session: ClientSession): Promise<void> {
    const ops = bulk.ops;
    if (ops.length === 0) return;
    let conflict: RecordKey | undefined;
    try {
      conflict = bulk.conflict(await collection.bulkWrite(ops, { session, ordered: true }));
    } catch (error) {
      if (!(error instanceof MongoBulkWriteError)) throw error;
      conflict = bulk.conflict({ upsertedIds: error.result.upsertedIds, writeErrors: error.writeErrors });
      if (!conflict) throw error;
    }
    if (conflict) throw new Conflict(conflict);
  }

  /**
   * Of the clients given (their version ids), those that have a part, as the transaction of
   * `session` sees it (its own writes too): one aggregation over their ranges, one result per client.
   */
  private async clientsWithParts(session: ClientSession, clientVersionIds: string[]): Promise<Set<string>> {
    if (clientVersionIds.length === 0) return new Set();
    // A client's version document opens its range; its parts follow it.
    const ranges = clientVersionIds.map((_id) => ({ _id: { $gt: _id, $lt: `${_id.slice(0, -1)}${AFTER_SLASH}` } }));
    const segments = { $split: ["$_id", "/"] };
    const clientOf = { $concat: [{ $arrayElemAt: [segments, 0] }, "/", { $arrayElemAt: [segments, 1] }, "/"] };
    const found = await this.parts
      .aggregate<{ _id: string }>([{ $match: { $or: ranges } }, { $group: { _id: clientOf } }], {
        batchSize: clientVersionIds.length + 1,
        session,
      })
      .toArray();
    return new Set(found.map(({ _id }) => _id));
  }

  /** Read at open: a reader that opened before the store was created has none until it restarts. */
  identity(): string {
    return this.storeIdentity;
  }

  async version(ownerId: string, clientId?: string): Promise<number> {
    const doc = await this.versions.findOne(
      { _id: versionId(ownerId, clientId) },
      { readPreference: this.readPreference },
    );
    return doc?.version ?? 0;
  }

  async openDashboard(ownerId: string, clientId?: string): Promise<DashboardSnapshot> {
    // One query, in a snapshot session (MongoDB 5.0+): a large owner's parts come in several
    // batches, and a commit landing between two of them must not show half (a moved project
    // missing, or twice). The version document (the owner's, or the client's) sorts first in the
    // range; a whole owner's range also holds its clients' version documents, which have no fragment.
    const versionKey = versionId(ownerId, clientId);
    const end = clientId === undefined ? `${ownerId}${AFTER_SLASH}` : `${ownerId}/${clientId}${AFTER_SLASH}`;
    const filter = { _id: { $gte: versionKey, $lt: end } };
    const session = this.client.startSession({ snapshot: true });
    let docs: (Partial<RecordDoc & VersionDoc> & { _id: string })[];
    try {
      docs = await this.parts
        .find<Partial<RecordDoc & VersionDoc> & { _id: string }>(filter, {
          sort: { _id: 1 },
          projection: { fragment: 1, version: 1 },
          readPreference: this.readPreference,
          session,
        })
        .toArray();
    } finally {
      await session.endSession();
    }
    let version = 0;
    const fragments: StoredFragment[] = [];
    for (const doc of docs) {
      if (doc._id === versionKey) version = doc.version ?? 0;
      else if (doc.fragment) {
        const [, partClientId, projectId, chunk] = doc._id.split("/");
        fragments.push({
          clientId: partClientId!,
          projectId: projectId!,
          chunk: Number(chunk),
          bytes: doc.fragment.value(),
        });
      }
    }
    // Held in memory, as the driver gave them: nothing to end.
    return {
      version,
      fragments: async (visit) => {
        for (const fragment of fragments) visit(fragment);
      },
      close: () => {},
    };
  }

  async partStats(ownerId: string): Promise<PartStats> {
    // $bsonSize (MongoDB 4.4+) measures the stored documents on the server, without sending them.
    const [stats] = await this.parts
      .aggregate<PartStats>(
        [
          // Parts only: not the owner's version document nor its clients'.
          {
            $match: { _id: { $gt: versionId(ownerId), $lt: `${ownerId}${AFTER_SLASH}` }, version: { $exists: false } },
          },
          { $project: { size: { $bsonSize: "$$ROOT" } } },
          { $group: { _id: null, parts: { $sum: 1 }, bytes: { $sum: "$size" }, largestPartBytes: { $max: "$size" } } },
          { $project: { _id: 0 } },
        ],
        { readPreference: this.readPreference },
      )
      .toArray();
    return stats ?? { parts: 0, bytes: 0, largestPartBytes: 0 };
  }

  async checkWritable(): Promise<void> {
    await this.meta
      .updateOne(
        { _id: WRITE_CHECK },
        { $set: { seq: Date.now() } },
        { upsert: true, writeConcern: { w: "majority", wtimeoutMS: WRITE_TIMEOUT_MS } },
      )
      .catch((error: unknown) => {
        throw unavailable(error);
      });
  }

  async appliedSeq(): Promise<number> {
    return (await this.meta.findOne({ _id: APPLIED_SEQ }))?.seq ?? 0;
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }
}
