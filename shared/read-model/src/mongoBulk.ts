// One collection's share of a MongoDB commit as one ordered bulk write, and the record that
// conflicted, read back from the bulk's result or error. Pure: no connection needed.
import type { AnyBulkWriteOperation, BSON, OneOrMore, UpdateFilter } from "mongodb";
import type { RecordKey } from "./shape.ts";

/**
 * A record: its revision and its value as JSON text. One BSON string decoded by the driver and
 * then V8's JSON.parse is the cheapest read path, much cheaper than BSON-decoding a deep tree.
 */
export interface RecordDoc {
  _id: string;
  rev: number;
  json: string;
  /**
   * A part's fragment (see fragments.ts), binary: a read projects only this field, so it never
   * decodes the projection's state. Absent when the part shows nothing.
   */
  fragment?: BSON.Binary;
  /** The last commit that required the record unchanged (see `requireAt`). */
  lockedBy?: number;
}

const DUPLICATE_KEY = 11000;

/** What the bulk's result or error says about its operations (BulkWriteResult, MongoBulkWriteError). */
export interface BulkOutcome {
  /** Operation index → upserted _id. */
  upsertedIds?: { [index: number]: unknown };
  /**
   * One error or several (driver 6.x types it OneOrMore); absent for a bulk that completed, empty
   * for one stopped by an error of the whole command rather than of an operation.
   */
  writeErrors?: OneOrMore<{ index: number; code?: number }>;
}

/** An operation of the bulk, and the record whose condition it checks (undefined: none). */
interface Step {
  op: AnyBulkWriteOperation<RecordDoc>;
  checks?: RecordKey;
}

/**
 * The operations, in order, for an ordered bulkWrite: it stops at the first failing operation,
 * and the transaction around it is aborted on any conflict, so nothing of the commit remains. Every
 * condition is checked by an operation that fails (duplicate key) or upserts exactly when the
 * condition does not hold, so the index of that operation names the record.
 *
 * The driver sends each run of operations of one kind (update, insert, delete) of an ordered bulk
 * as one command (split only past 16 MiB or 100,000 operations), so the operations go updates
 * first, then inserts, then deletes: three runs, however many records. That order keeps each record's own operations in order (a lock
 * before its delete, an insert before its delete), and records do not depend on each other: a
 * commit names each record once (its reads are records it does not write).
 */
export class CommitBulk {
  private readonly updates: Step[] = [];
  private readonly inserts: Step[] = [];
  private readonly deletes: Step[] = [];

  /** The operations, for bulkWrite; a result's or error's indexes are into this order. */
  get ops(): AnyBulkWriteOperation<RecordDoc>[] {
    return this.steps().map(({ op }) => op);
  }

  private steps(): Step[] {
    return [...this.updates, ...this.inserts, ...this.deletes];
  }

  /**
   * The record must still be at `rev` (> 0). A real write (a no-op $set would write nothing and
   * lock nothing) makes a concurrent writer of the record conflict with this transaction (no write
   * skew). At another revision the upsert's insert hits the existing _id (duplicate key); gone, it
   * inserts (an upsert): both are this record's conflict. The server retries an upsert's duplicate
   * key itself only when the filter's fields are exactly a unique index's: {_id, rev} are not.
   */
  requireAt(key: RecordKey, _id: string, rev: number, lockedBy: number): void {
    this.updates.push({
      op: { updateOne: { filter: { _id, rev }, update: { $set: { lockedBy } }, upsert: true } },
      checks: key,
    });
  }

  /**
   * The record must be absent until the commit. Merely finding nothing would not stop a concurrent
   * transaction from creating it (write skew), so the id is written: inserted (duplicate key if it
   * exists) and deleted again, which leaves nothing behind but makes a concurrent creator conflict.
   */
  requireAbsent(key: RecordKey, _id: string): void {
    this.insert(key, { _id, rev: 0, json: "null" });
    this.deletes.push({ op: { deleteOne: { filter: { _id } } } });
  }

  /** Creates a record that must not exist yet (duplicate key if it does). */
  insert(key: RecordKey, doc: RecordDoc): void {
    this.inserts.push({ op: { insertOne: { document: doc } }, checks: key });
  }

  /** Replaces the record at `baseRev` (> 0); conflicts as requireAt. */
  update(key: RecordKey, baseRev: number, doc: RecordDoc): void {
    const update: UpdateFilter<RecordDoc> = doc.fragment
      ? { $set: { rev: doc.rev, json: doc.json, fragment: doc.fragment } }
      : { $set: { rev: doc.rev, json: doc.json }, $unset: { fragment: "" } };
    this.updates.push({
      op: { updateOne: { filter: { _id: doc._id, rev: baseRev }, update, upsert: true } },
      checks: key,
    });
  }

  /** Deletes the record at `baseRev` (> 0): required at it, then deleted. */
  delete(key: RecordKey, _id: string, baseRev: number, lockedBy: number): void {
    this.requireAt(key, _id, baseRev, lockedBy);
    this.deletes.push({ op: { deleteOne: { filter: { _id } } } });
  }

  /**
   * The record that conflicted, from the result of a bulk that completed (an upsert) or the error
   * of one that stopped (a duplicate key, or an upsert before it), the earliest in the bulk's
   * order; undefined when the outcome shows no conflict (another error is the caller's to throw).
   */
  conflict({ upsertedIds, writeErrors }: BulkOutcome): RecordKey | undefined {
    const indexes = Object.keys(upsertedIds ?? {}).map(Number);
    const stopped = writeErrors !== undefined;
    const errors = writeErrors === undefined ? [] : Array.isArray(writeErrors) ? writeErrors : [writeErrors];
    // A bulk stopped by another error (not a failed condition, or the whole command's) is no
    // conflict, even past an upsert.
    if (stopped && (errors.length === 0 || errors.some(({ code }) => code !== DUPLICATE_KEY))) return undefined;
    // Upserts in index order (integer keys enumerate ascending), then the error that stopped the
    // ordered bulk after them: the first is the earliest.
    for (const { index } of errors) indexes.push(index);
    const steps = this.steps();
    return indexes.map((index) => steps[index]?.checks).find((key) => key !== undefined);
  }
}
