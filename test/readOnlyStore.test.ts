// A reader (the query API) opens the read model without writing to it, so only a writer (the
// projector) decides what a new store holds: on LMDB it never records the stored format; on MongoDB
// it creates no collection (parts, registers, meta) and records no format document (the format
// version and the store's identity). MongoDB where one is reachable (MONGODB_URL, or testcontainers
// with a Docker engine), otherwise skipped with the reason printed.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { open } from "lmdb";
import { MongoClient } from "mongodb";
import { afterAll, describe, expect, it } from "vitest";
import { READ_MODEL_FORMATS } from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { MongoDashboardStore } from "@keybox/read-model/mongodb";
import { mongoAdapter, readDashboard } from "./support/stores.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-readonly-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The format the LMDB store under `dir` records, read with LMDB itself. */
async function recordedFormat(): Promise<unknown> {
  const env = open({ path: path.join(dir, "lmdb"), maxDbs: 8, readOnly: true });
  try {
    return env.openDB({ name: "meta" }).get("format");
  } finally {
    await env.close();
  }
}

describe("an LMDB read model opened read-only", () => {
  it("records nothing; the first writer records the format", async () => {
    const reader = LmdbDashboardStore.open(dir, { readOnly: true });
    expect((await readDashboard(reader, "anyOwner")).fragments).toEqual([]);
    await reader.close();
    expect(await recordedFormat()).toBeUndefined();

    const writer = LmdbDashboardStore.open(dir);
    await writer.close();
    expect(await recordedFormat()).toBe(READ_MODEL_FORMATS.lmdb.current);
  });
});

// A database of its own for this file (dropped afterwards), or a container of its own.
const mongo = await mongoAdapter();

/** What the MongoDB store's database holds, read with the driver: its collections and format document. */
async function mongoContents(): Promise<{ collections: string[]; format: Record<string, unknown> | null }> {
  const { url, dbName } = mongo.connection!;
  const client = new MongoClient(url);
  try {
    const db = client.db(dbName);
    const collections = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
    // The adapter's FORMAT document in its "meta" collection: { _id: "format", version, identity }.
    const format = await db.collection<{ _id: string }>("meta").findOne({ _id: "format" });
    return { collections, format };
  } finally {
    await client.close();
  }
}

describe.skipIf(mongo.skip !== undefined)("a MongoDB read model opened read-only", () => {
  afterAll(() => mongo.cleanup());

  it("creates no collection and records no format or identity; the first writer does", async () => {
    const { url, dbName } = mongo.connection!;
    const reader = await MongoDashboardStore.open({ url, dbName, appName: "keybox-readonly", readOnly: true });
    expect(reader.identity()).toBe(""); // none recorded yet
    expect((await readDashboard(reader, "anyOwner")).fragments).toEqual([]);
    await reader.close();
    expect(await mongoContents()).toEqual({ collections: [], format: null });

    const writer = await MongoDashboardStore.open({ url, dbName, appName: "keybox-readonly" });
    const identity = writer.identity();
    await writer.close();
    const after = await mongoContents();
    expect(after.collections).toEqual(["meta", "parts", "registers"]);
    expect(after.format).toEqual({
      _id: "format",
      version: READ_MODEL_FORMATS.mongodb.current,
      identity: expect.any(Number),
    });
    expect(identity).toBe(String(after.format?.identity));
  });
});

// Printed, not silent: what was skipped and why.
if (mongo.skip) console.warn(`SKIPPED ${mongo.name} read-only open: ${mongo.skip}`);
