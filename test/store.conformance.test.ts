// The store contract, held against every adapter: LMDB always; MongoDB where one is reachable.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LmdbDashboardStore, partKey, registerKey, type DashboardStore, type Part } from "@keybox/shared";

interface Adapter {
  name: string;
  open(): Promise<DashboardStore>;
  /** Opens the same data again, as a restarted process would. */
  reopen(): Promise<DashboardStore>;
  cleanup(): Promise<void>;
}

function lmdbAdapter(): Adapter {
  let dir = "";
  return {
    name: "LMDB",
    async open() {
      dir = mkdtempSync(path.join(os.tmpdir(), "keybox-store-"));
      return LmdbDashboardStore.open(dir);
    },
    async reopen() {
      return LmdbDashboardStore.open(dir);
    },
    async cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const client = (id: string, name = id): Part => ({
  kind: "client",
  client: { v: 1, state: { id, ownerId: "o1", name, email: `${id}@x.io`, createdAt: "2024-01-01T00:00:00.000Z" } },
});

for (const adapter of [lmdbAdapter()]) {
  describe(`${adapter.name} store`, () => {
    let store: DashboardStore;
    beforeEach(async () => {
      store = await adapter.open();
    });
    afterEach(async () => {
      await store.close();
      await adapter.cleanup();
    });

    it("reads back nothing for an unknown owner, at version 0", async () => {
      expect(await store.readDashboard("nobody")).toEqual({ version: 0, parts: [] });
      const [loaded] = await store.load([partKey("nobody", "c1")]);
      expect(loaded).toMatchObject({ value: null, rev: 0 });
    });

    it("commits writes, bumps the owner's version and returns parts in key order", async () => {
      const result = await store.commit(
        [
          { key: partKey("o1", "c2"), value: client("c2"), baseRev: 0 },
          { key: partKey("o1", "c1", "p1"), value: { kind: "project", licenses: {} }, baseRev: 0 },
          { key: partKey("o1", "c1"), value: client("c1"), baseRev: 0 },
          { key: partKey("o2", "c9"), value: client("c9"), baseRev: 0 },
          { key: registerKey("o1", "project", "p1"), value: { kind: "project", clientId: "c1" }, baseRev: 0 },
        ],
        7,
      );
      expect(result).toEqual({ ok: true, ownerVersions: new Map([["o1", 1], ["o2", 1]]) });
      const read = await store.readDashboard("o1");
      expect(read.version).toBe(1);
      expect(read.parts.map((p) => [p.clientId, p.projectId])).toEqual([["c1", ""], ["c1", "p1"], ["c2", ""]]);
      expect((await store.readDashboard("o1", "c1")).parts).toHaveLength(2);
      expect((await store.readDashboard("o1", "c")).parts).toHaveLength(0);
      expect(await store.appliedSeq()).toBe(7);
    });

    it("refuses a write whose base revision is stale, and writes nothing of that batch", async () => {
      await store.commit([{ key: partKey("o1", "c1"), value: client("c1"), baseRev: 0 }], 1);
      const [loaded] = await store.load([partKey("o1", "c1")]);
      expect(loaded!.rev).toBe(1);
      const stale = await store.commit(
        [
          { key: partKey("o1", "c2"), value: client("c2"), baseRev: 0 },
          { key: partKey("o1", "c1"), value: client("c1", "lost"), baseRev: 0 },
        ],
        2,
      );
      expect(stale).toEqual({ ok: false, conflict: partKey("o1", "c1") });
      const read = await store.readDashboard("o1");
      expect(read.parts).toHaveLength(1);
      expect(read.version).toBe(1);
      expect(await store.appliedSeq()).toBe(1);
      const fresh = await store.commit([{ key: partKey("o1", "c1"), value: client("c1", "won"), baseRev: 1 }], 3);
      expect(fresh.ok).toBe(true);
    });

    it("deletes a record when its new value is null", async () => {
      await store.commit([{ key: partKey("o1", "c1"), value: client("c1"), baseRev: 0 }], 1);
      await store.commit([{ key: partKey("o1", "c1"), value: null, baseRev: 1 }], 2);
      expect((await store.readDashboard("o1")).parts).toEqual([]);
      expect((await store.load([partKey("o1", "c1")]))[0]).toMatchObject({ value: null, rev: 0 });
    });

    it("keeps everything across a restart", async () => {
      await store.commit([{ key: partKey("o1", "c1"), value: client("c1"), baseRev: 0 }], 5);
      await store.close();
      store = await adapter.reopen();
      expect((await store.readDashboard("o1")).parts).toHaveLength(1);
      expect(await store.appliedSeq()).toBe(5);
    });
  });
}
