// The MongoDB commit's pure parts, without a MongoDB: the bulk a commit sends per collection, the
// record a bulk's result or error names as the conflict, and which driver errors are outages.
import {
  type BulkWriteResult,
  MongoBulkWriteError,
  MongoErrorLabel,
  MongoInvalidArgumentError,
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
  type TopologyDescription,
  TopologyType,
} from "mongodb";
import { describe, expect, it } from "vitest";
import { partKey, registerKey } from "@keybox/read-model";
import { CommitBulk, isOutage } from "@keybox/read-model/mongodb";

const a = partKey("o1", "c1");
const b = partKey("o1", "c2", "p1", 3);
const r = registerKey("o1", "license", "__proto__");
const c = partKey("o1", "c3");
const d = registerKey("o1", "project", "constructor");

/**
 * A bulk of every kind of operation. In the bulk's order: updates 0 lock A, 1 lock D (its
 * delete), 2 update B; inserts 3 C absent, 4 insert R; deletes 5 C absent, 6 delete D.
 */
function bulk(): CommitBulk {
  const commit = new CommitBulk();
  commit.requireAt(a, "o1/c1//000000", 7, 99);
  commit.requireAbsent(c, "o1/c3//000000");
  commit.insert(r, { _id: "o1/license/__proto__", rev: 99, json: "{}" });
  commit.delete(d, "o1/project/constructor", 4, 99);
  commit.update(b, 5, { _id: "o1/c2/p1/000003", rev: 99, json: "{}" });
  return commit;
}

describe("CommitBulk", () => {
  it("sends each condition as an operation that fails or upserts when it does not hold: updates, inserts, deletes", () => {
    const lock = (_id: string, rev: number) => ({
      updateOne: { filter: { _id, rev }, update: { $set: { lockedBy: 99 } }, upsert: true },
    });
    expect(bulk().ops).toEqual([
      lock("o1/c1//000000", 7),
      lock("o1/project/constructor", 4),
      {
        updateOne: {
          filter: { _id: "o1/c2/p1/000003", rev: 5 },
          update: { $set: { rev: 99, json: "{}" }, $unset: { fragment: "" } },
          upsert: true,
        },
      },
      { insertOne: { document: { _id: "o1/c3//000000", rev: 0, json: "null" } } },
      { insertOne: { document: { _id: "o1/license/__proto__", rev: 99, json: "{}" } } },
      { deleteOne: { filter: { _id: "o1/c3//000000" } } },
      { deleteOne: { filter: { _id: "o1/project/constructor" } } },
    ]);
  });

  it("names no record when nothing upserted and nothing failed", () => {
    expect(bulk().conflict({ upsertedIds: {} })).toBeUndefined();
    expect(bulk().conflict({ upsertedIds: {}, writeErrors: [] })).toBeUndefined();
  });

  it("names the record of an upsert: a record required at a revision was gone", () => {
    expect(bulk().conflict({ upsertedIds: { 2: "o1/c2/p1/000003" } })).toEqual(b);
    expect(bulk().conflict({ upsertedIds: { 1: "x", 2: "y" } })).toEqual(d);
  });

  it("names the record of a duplicate key, one error or several", () => {
    expect(bulk().conflict({ writeErrors: { index: 4, code: 11000 } })).toEqual(r);
    expect(bulk().conflict({ writeErrors: [{ index: 3, code: 11000 }] })).toEqual(c);
    // An ordered bulk stops at its first error: an upsert before it is the earlier conflict.
    expect(bulk().conflict({ upsertedIds: { 0: "x" }, writeErrors: [{ index: 4, code: 11000 }] })).toEqual(a);
  });

  it("names none for another write error, nor for an operation that checks nothing", () => {
    expect(bulk().conflict({ upsertedIds: { 0: "x" }, writeErrors: [{ index: 4, code: 2 }] })).toBeUndefined();
    expect(bulk().conflict({ writeErrors: [{ index: 5, code: 11000 }] })).toBeUndefined();
  });

  it("names none for a bulk stopped by an error of the whole command, even past an upsert", () => {
    // MongoBulkWriteError wrapping a command's error carries no write errors.
    expect(bulk().conflict({ upsertedIds: { 0: "x" }, writeErrors: [] })).toBeUndefined();
  });
});

describe("isOutage", () => {
  const result = {} as BulkWriteResult;
  const server = (code: number, ...labels: string[]) =>
    new MongoServerError({ message: `code ${code}`, code, errorLabels: labels });

  it("takes a network error in a transaction, as bulkWrite rethrows it, for an outage", () => {
    const network = new MongoNetworkError("connection reset");
    network.addErrorLabel(MongoErrorLabel.TransientTransactionError); // what the driver adds in a transaction
    expect(isOutage(network)).toBe(true);
    expect(isOutage(new MongoBulkWriteError(network, result))).toBe(true);
  });

  it("takes no server selectable, as bulkWrite rethrows it (unlabelled), for an outage", () => {
    const selection = new MongoServerSelectionError("Server selection timed out after 30000 ms", {
      type: TopologyType.ReplicaSetNoPrimary,
    } as TopologyDescription);
    expect(isOutage(new MongoBulkWriteError(selection, result))).toBe(true);
  });

  it("takes no primary (an election) for an outage, also from bulkWrite", () => {
    for (const code of [10107, 11602, 189, 13435, 91, 50, 133])
      expect([code, isOutage(new MongoBulkWriteError(server(code), result))]).toEqual([code, true]);
  });

  it("takes a write conflict or a duplicate key for no outage", () => {
    const conflict = server(112, MongoErrorLabel.TransientTransactionError);
    expect(isOutage(conflict)).toBe(false);
    expect(isOutage(new MongoBulkWriteError(conflict, result))).toBe(false);
    const duplicate = { message: "E11000", code: 11000, writeErrors: [] };
    // A driver error that is no outage stays none when bulkWrite wraps it.
    expect(isOutage(new MongoBulkWriteError(new MongoInvalidArgumentError("bad option"), result))).toBe(false);
    expect(isOutage(new MongoBulkWriteError(duplicate, result))).toBe(false);
  });
});
