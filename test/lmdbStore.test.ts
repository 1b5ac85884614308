// The LMDB adapter's own commit mechanics. "Acknowledged ⇒ durable": the projector acknowledges
// events once their commit resolves, so a commit must resolve only after LMDB has flushed it to
// disk, and a flush that fails is an outage (the flush is held back here by intercepting the
// environment's asynchronous sync). A batch with nothing left to write (its events applied by a
// commit whose flush failed) is not acknowledged until a flush succeeds.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildEnvelope } from "@keybox/contract";
import { applyBatch } from "@keybox/projector";
import { partKey, StoreUnavailableError, type ClientPart, type DashboardStore, type Part } from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { toEvent } from "./support/inMemory.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-lmdb-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type SyncCallback = (error?: Error) => void;
interface SyncingEnv {
  sync(callback: SyncCallback): void;
}

const client = (id: string): Part => ({
  kind: "client",
  client: { v: 1, state: { id, ownerId: "o1", name: id, email: `${id}@x.io`, createdAt: "2024-01-01T00:00:00.000Z" } },
});

/** Replaces the store's environment sync with one that waits for the test to finish it. */
function holdSyncs(store: LmdbDashboardStore): { held: SyncCallback[]; realSync: (callback: SyncCallback) => void } {
  const env = (store as unknown as { env: SyncingEnv }).env;
  const realSync = env.sync.bind(env);
  const held: SyncCallback[] = [];
  env.sync = (callback) => void held.push(callback);
  return { held, realSync };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}

describe("an LMDB commit", () => {
  it("resolves only once the data is flushed to disk", async () => {
    const store = LmdbDashboardStore.open(dir);
    try {
      const { held, realSync } = holdSyncs(store);
      let resolved = false;
      const pending = store
        .commit({ writes: [{ key: partKey("o1", "c1"), value: client("c1"), baseRev: 0 }], reads: [] }, 1)
        .then((result) => {
          resolved = true;
          return result;
        });
      await until(() => held.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(resolved).toBe(false);
      realSync(held[0]!);
      expect((await pending).ok).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("fails as an outage when the flush fails", async () => {
    const store = LmdbDashboardStore.open(dir);
    try {
      const { held } = holdSyncs(store);
      const pending = store.commit(
        { writes: [{ key: partKey("o1", "c2"), value: client("c2"), baseRev: 0 }], reads: [] },
        2,
      );
      await until(() => held.length === 1);
      held[0]!(new Error("EIO: i/o error, fsync"));
      await expect(pending).rejects.toBeInstanceOf(StoreUnavailableError);
    } finally {
      await store.close();
    }
  });
});

describe("a batch whose commit was not flushed", () => {
  it("is not taken for applied when retried: a retry with nothing left to write still waits for a flush", async () => {
    const store = LmdbDashboardStore.open(dir);
    try {
      const events = [
        toEvent(
          buildEnvelope({
            entity: "client",
            action: "created",
            version: 1,
            data: { id: "c1", ownerId: "o4", name: "c1", email: "c1@x.io", createdAt: "2024-01-01T00:00:00.000Z" },
          }),
        ),
      ];
      const { held, realSync } = holdSyncs(store);
      const first = applyBatch(store, events, 10);
      await until(() => held.length === 1);
      held[0]!(new Error("EIO: i/o error, fsync"));
      await expect(first).rejects.toBeInstanceOf(StoreUnavailableError);
      // Committed but not flushed: the retry finds nothing to write, and must not resolve on that.
      const retry = applyBatch(store, events, 10);
      await until(() => held.length === 2);
      held[1]!(new Error("EIO: i/o error, fsync"));
      await expect(retry).rejects.toBeInstanceOf(StoreUnavailableError);
      const again = applyBatch(store, events, 10);
      await until(() => held.length === 3);
      realSync(held[2]!);
      expect((await again).applied).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe("a batch that loses a commit race on LMDB", () => {
  const clientEvent = (version: number, name: string) =>
    toEvent(
      buildEnvelope({
        entity: "client",
        action: version === 1 ? "created" : "updated",
        version,
        data: { id: "c1", ownerId: "o3", name, email: "c1@x.io", createdAt: "2024-01-01T00:00:00.000Z" },
      }),
    );

  it("is projected again inside the write transaction and commits, keeping the other writer's work", async () => {
    const store = LmdbDashboardStore.open(dir);
    try {
      await applyBatch(store, [clientEvent(1, "one")], 1);
      // Another writer commits between this batch's load and its commit.
      let raced = false;
      let racer = clientEvent(3, "three");
      const racing: DashboardStore = Object.create(store, {
        commit: {
          value: async (...args: Parameters<DashboardStore["commit"]>) => {
            if (!raced) {
              raced = true;
              await applyBatch(store, [racer], 2);
            }
            return store.commit(...args);
          },
        },
      });
      const outcome = await applyBatch(racing, [clientEvent(2, "two")], 3);
      expect(outcome.conflicts).toBe(1);
      expect(outcome.applied).toBe(0); // version 2 is older than the other writer's 3
      const [stored] = await store.load([partKey("o3", "c1")]);
      expect((stored!.value as ClientPart).client).toMatchObject({ v: 3, state: { name: "three" } });

      raced = false;
      racer = clientEvent(4, "four");
      const newer = await applyBatch(racing, [clientEvent(5, "five")], 4);
      expect(newer).toMatchObject({ conflicts: 1, applied: 1 });
      const [after] = await store.load([partKey("o3", "c1")]);
      expect((after!.value as ClientPart).client).toMatchObject({ v: 5, state: { name: "five" } });
    } finally {
      await store.close();
    }
  });
});
