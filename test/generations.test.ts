// The read model's generations and their control record, per store: a store without one is
// generation 1; replicas asking for a rebuild at once create one generation; readers keep the
// current generation until the switch and see the new one right after it, with versions past the old
// one's; a retired generation's data is dropped, and one in use never is. LMDB always; MongoDB where
// one is reachable (MONGODB_URL, or testcontainers with a Docker engine), otherwise skipped with the
// reason printed.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { open } from "lmdb";
import { MongoClient } from "mongodb";
import { afterAll, describe, expect, it } from "vitest";
import {
  INITIAL_CONTROL,
  openReadModel,
  partKey,
  requestRebuild,
  storeSettings,
  switchTo,
  upgradeTo,
  type DashboardStore,
  type Part,
  type ReadModel,
} from "@keybox/read-model";
import { clientIdsIn } from "./support/inMemory.ts";
import { mongoAdapter, readDashboard, type DashboardRead } from "./support/stores.ts";

const client = (id: string): Part => ({
  kind: "client",
  client: { v: 1, state: { id, ownerId: "o1", name: id, email: `${id}@x.io`, createdAt: "2024-01-01T00:00:00.000Z" } },
});

/** Writes client `clientId` of owner o1 into `store`, at stream sequence `seq`. */
const writeClient = (store: DashboardStore, clientId: string, seq: number) =>
  store.commit({ writes: [{ key: partKey("o1", clientId), value: client(clientId), baseRev: 0 }], reads: [] }, seq);

const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-generations-"));
const mongo = await mongoAdapter();
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await mongo.cleanup();
});

/** Generation 1's tables: LMDB databases, MongoDB collections (no `fragments` there). */
const FIRST_GENERATION = ["parts", "registers", "fragments", "meta"];

interface Adapter {
  name: string;
  skip?: string | undefined;
  open(options?: { readOnly?: boolean }): Promise<ReadModel>;
  /** The names of generation 1's tables that still exist. */
  firstGenerationTables(): Promise<string[]>;
}

const adapters: Adapter[] = [
  {
    name: "LMDB",
    open: (options) => openReadModel(storeSettings.parse({ DATA_DIR: dir }), options),
    firstGenerationTables: async () => {
      // The environment's main database lists the names of the databases in it.
      const env = open({ path: path.join(dir, "lmdb"), readOnly: true });
      try {
        return [...env.getKeys({})].map(String).filter((name) => FIRST_GENERATION.includes(name));
      } finally {
        await env.close();
      }
    },
  },
  {
    name: "MongoDB",
    skip: mongo.skip,
    open: (options) =>
      openReadModel(
        storeSettings.parse({ MONGODB_URL: mongo.connection?.url, MONGODB_DB: mongo.connection?.dbName }),
        options,
      ),
    firstGenerationTables: async () => {
      const mongoClient = new MongoClient(mongo.connection!.url);
      try {
        const names = await mongoClient.db(mongo.connection!.dbName).listCollections({}, { nameOnly: true }).toArray();
        return names.map((c) => c.name).filter((name) => FIRST_GENERATION.includes(name));
      } finally {
        await mongoClient.close();
      }
    },
  },
];

for (const adapter of adapters) {
  describe.skipIf(adapter.skip !== undefined)(`${adapter.name} read-model generations`, () => {
    it("runs a rebuild beside the current generation and switches readers over atomically", async () => {
      const writer = await adapter.open();
      const other = await adapter.open(); // another replica
      const reader = await (await adapter.open({ readOnly: true })).current();
      try {
        // A store that records nothing is generation 1, built by projection version 1.
        expect(await writer.control()).toEqual(INITIAL_CONTROL);
        const first = await writer.generation(1);
        await writeClient(first, "old", 5);
        expect(clientIdsIn(await readDashboard(reader, "o1"))).toEqual(["old"]);
        expect(await reader.version("o1")).toBe(1);
        const firstIdentity = reader.identity();
        expect(firstIdentity).not.toBe("");

        // A release of the same projection version asks for nothing; two replicas of a newer one
        // asking at once create one generation.
        expect((await writer.updateControl(upgradeTo(1, 1000))).changed).toBe(false);
        const asked = await Promise.all([writer, other].map((m) => m.updateControl(upgradeTo(2, 1000))));
        expect(asked.map((a) => a.changed).sort()).toEqual([false, true]);
        const building = { generation: 2, projectionVersion: 2, since: 1000 };
        for (const { record } of asked) expect(record).toEqual({ ...INITIAL_CONTROL, building, lastGeneration: 2 });
        // `npm run rebuild` by the same release joins it.
        expect((await other.updateControl(requestRebuild(2, 2000))).changed).toBe(false);

        // The rebuild fills generation 2 beside generation 1, which keeps serving and being updated.
        const second = await other.generation(2);
        const written = await writeClient(second, "new", 5);
        expect(written.ok && written.changes.get("o1")?.version).toBe(2 ** 32 + 1);
        await writeClient(first, "old2", 6);
        expect(clientIdsIn(await readDashboard(reader, "o1"))).toEqual(["old", "old2"]);
        expect(reader.generation?.()).toBe(1);

        // Only the generation being built can be switched to; the switch retires the old one.
        expect((await writer.updateControl(switchTo(3, 3000))).changed).toBe(false);
        const switched = await writer.updateControl(switchTo(2, 3000));
        expect(switched).toEqual({
          changed: true,
          record: {
            current: { generation: 2, projectionVersion: 2 },
            retired: [{ generation: 1, since: 3000 }],
            lastGeneration: 2,
          },
        });
        // Readers move at once on LMDB; on MongoDB within a poll of the control record.
        const read = await eventuallyRead(reader, (r) => clientIdsIn(r).join() === "new");
        expect(read.version).toBe(2 ** 32 + 1);
        expect(await reader.version("o1")).toBe(2 ** 32 + 1);
        expect(reader.generation?.()).toBe(2);
        expect(reader.identity()).not.toBe(firstIdentity);

        // An older release asks for no rebuild.
        expect((await other.updateControl(requestRebuild(1, 4000))).changed).toBe(false);

        // The generation in use is never dropped; the retired one is, and is gone.
        await expect(writer.drop(2)).rejects.toThrow("generation 2 is in use");
        expect(await adapter.firstGenerationTables()).not.toEqual([]);
        await writer.drop(1);
        expect(await adapter.firstGenerationTables()).toEqual([]);
        expect(clientIdsIn(await readDashboard(reader, "o1"))).toEqual(["new"]);
      } finally {
        await Promise.all([writer.close(), other.close(), reader.close()]);
      }
    });

    it("replaces a rebuild by an older projection version, retiring its generation", async () => {
      const model = await adapter.open();
      try {
        const before = await model.control();
        await model.updateControl(requestRebuild(before.current.projectionVersion + 1, 1));
        const { record, changed } = await model.updateControl(requestRebuild(before.current.projectionVersion + 2, 2));
        expect(changed).toBe(true);
        expect(record.building?.generation).toBe(before.lastGeneration + 2);
        expect(record.retired).toContainEqual({ generation: before.lastGeneration + 1, since: 2 });
        // An older release never takes it back.
        expect((await model.updateControl(requestRebuild(before.current.projectionVersion + 1, 3))).changed).toBe(
          false,
        );
      } finally {
        await model.close();
      }
    });
  });
}

/** Reads o1's dashboard until `done` says it is the one expected (MongoDB readers poll the control record). */
async function eventuallyRead(store: DashboardStore, done: (read: DashboardRead) => boolean) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const read = await readDashboard(store, "o1");
    if (done(read) || Date.now() > deadline) return read;
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Printed, not silent: what was skipped and why.
if (mongo.skip) console.warn(`SKIPPED ${mongo.name} read-model generations: ${mongo.skip}`);
