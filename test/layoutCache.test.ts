// The query API's layout cache (LayoutCache): a read that reuses the layouts of the clients that did
// not change since an earlier read must send exactly the bytes a read that lays out everything
// sends, whatever the events, the client filter, the page and the time (licenses expire at read
// time), and must visit only the clients that changed. On the real LMDB store, whose snapshots tell
// their clients' versions.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { applyBatch } from "@keybox/projector";
import { LayoutCache, renderSnapshot } from "@keybox/query-api";
import { buildEnvelope } from "@keybox/contract";
import type { DashboardSnapshot } from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { CHUNKINGS, CLIENT_IDS, deliveryOf, historyArb, NOW, OWNERS, withOwnerSuffix } from "./support/arbitraries.ts";
import { clientCreated, clientEvent, licenseEvent, projectCreated } from "./support/events.ts";
import { dashboardText, toEvent } from "./support/inMemory.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-layout-cache-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * When the reads after batch `b` of `batches` happen: rising from before the arbitraries' first
 * expiry time to after their last, so kept layouts are reused across commits and go out of date.
 */
function readTime(b: number, batches: number): Date {
  const [from, to] = [Date.parse("2024-04-30T00:00:00.000Z"), Date.parse("2024-08-01T00:00:00.000Z")];
  return new Date(from + ((to - from) * b) / Math.max(1, batches - 1));
}

/** A snapshot that counts the fragments visited through it, whole or client by client. */
function counted(snapshot: DashboardSnapshot, visits: { whole: number; clients: string[] }): DashboardSnapshot {
  return {
    ...snapshot,
    fragments: (visit) => {
      visits.whole++;
      return snapshot.fragments(visit);
    },
    clients: () => {
      const clients = snapshot.clients!();
      return {
        ...clients,
        fragments: (clientId, visit) => {
          visits.clients.push(clientId);
          return clients.fragments(clientId, visit);
        },
      };
    },
  };
}

async function render(
  store: LmdbDashboardStore,
  ownerId: string,
  now: Date,
  { clientId, cache, page }: { clientId?: string; cache?: LayoutCache; page?: number } = {},
): Promise<string> {
  const snapshot = await store.openDashboard(ownerId, clientId);
  const select =
    page === undefined
      ? undefined
      : (clients: readonly unknown[]) => ({
          from: page,
          to: page + 2,
          nextCursor: page + 2 < clients.length ? "x" : null,
        });
  const rendered = await renderSnapshot(snapshot, now, { select, layouts: cache && { cache, ownerId } });
  try {
    return dashboardText(rendered);
  } finally {
    rendered.release();
  }
}

describe("a read with the layout cache", () => {
  it("sends exactly what a read without it sends, after any events, filter, page and time", async () => {
    const store = LmdbDashboardStore.open(dir);
    let run = 0;
    let seq = 0;
    /** Reads that showed anything: the property is about dashboards, not empty ones. */
    let shown = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          historyArb.chain((history) => deliveryOf(history)),
          fc.integer({ min: 1, max: 6 }),
          fc.constantFrom(...CHUNKINGS),
          async (delivery, batchSize, options) => {
            const suffix = `-${++run}`;
            const events = withOwnerSuffix(delivery, suffix);
            const cache = new LayoutCache({ maxBytes: 1024 * 1024 });
            const batches = Math.ceil(events.length / batchSize);
            for (let b = 0; b < batches; b++) {
              await applyBatch(store, events.slice(b * batchSize, (b + 1) * batchSize), ++seq, options);
              const now = readTime(b, batches);
              // Twice: the second read of each kind finds every layout kept.
              for (const ownerId of OWNERS.map((o) => o + suffix))
                for (const _ of [1, 2]) {
                  const reads = [{}, { page: 0 }, { page: 1 }, ...CLIENT_IDS.map((clientId) => ({ clientId }))];
                  for (const read of reads) {
                    const expected = await render(store, ownerId, now, read);
                    if (expected.includes('"_id"')) shown++;
                    expect(await render(store, ownerId, now, { ...read, cache })).toBe(expected);
                  }
                }
            }
          },
        ),
        { numRuns: 60 },
      );
      expect(shown).toBeGreaterThan(1000);
    } finally {
      await store.close();
    }
  });

  it("lays out again only the clients that changed, and keeps within its bound", async () => {
    const store = LmdbDashboardStore.open(dir);
    try {
      const ownerId = "tenant";
      const events = [];
      for (let c = 0; c < 20; c++) {
        events.push(clientCreated(ownerId, `c${c}`), projectCreated(ownerId, `p${c}`, { clientId: `c${c}` }));
        for (let l = 0; l < 3; l++)
          events.push(licenseEvent(ownerId, `l${c}-${l}`, { clientId: `c${c}`, projectId: `p${c}` }));
      }
      await applyBatch(store, events.map(toEvent), 1);
      const cache = new LayoutCache({ maxBytes: 1024 * 1024 });
      const read = async () => {
        const visits = { whole: 0, clients: [] as string[] };
        const snapshot = counted(await store.openDashboard(ownerId), visits);
        const rendered = await renderSnapshot(snapshot, NOW, { layouts: { cache, ownerId } });
        rendered.release();
        return { visits, text: dashboardText(rendered) };
      };
      expect((await read()).visits).toEqual({ whole: 1, clients: [] }); // nothing kept: one visit of all
      expect((await read()).visits).toEqual({ whole: 0, clients: [] }); // nothing changed
      await applyBatch(
        store,
        [
          toEvent(
            licenseEvent(ownerId, "l7-1", { clientId: "c7", projectId: "p7" }, { version: 2, action: "renewed" }),
          ),
        ],
        2,
      );
      const afterChange = await read();
      expect(afterChange.visits).toEqual({ whole: 0, clients: ["c7"] });
      expect(afterChange.text).toBe(await render(store, ownerId, NOW));

      // A client deleted: laid out again, showing nothing (its tombstone keeps it a version).
      await applyBatch(store, [toEvent(clientCreated(ownerId, "lonely"))], 3);
      await read();
      const withLonely = cache.bytes;
      await applyBatch(store, [toEvent(clientEvent(ownerId, "lonely", {}, { version: 2, action: "deleted" }))], 4);
      expect((await read()).visits).toEqual({ whole: 0, clients: ["lonely"] });
      const item = (withLonely - cache.bytes) / 2; // its head and closing brace went
      expect(item).toBeGreaterThan(0);
      // A client left with no part at all (its only project moved away) has no version: dropped.
      await applyBatch(store, [toEvent(projectCreated(ownerId, "moving", { clientId: "ghost" }))], 5);
      expect((await read()).visits).toEqual({ whole: 0, clients: ["ghost"] });
      const withGhost = cache.bytes;
      const moved = buildEnvelope({
        entity: "project",
        action: "updated",
        version: 2,
        data: { id: "moving", ownerId, clientId: "c0", name: "moving", createdAt: "2024-01-01T00:00:00.000Z" },
      });
      await applyBatch(store, [toEvent(moved)], 6);
      const afterMove = await read();
      expect(afterMove.visits).toEqual({ whole: 0, clients: ["c0"] });
      expect(afterMove.text).toBe(await render(store, ownerId, NOW));
      // c0 gained the project (a comma, its head, its closing bracket); ghost's entry went.
      expect(cache.bytes).toBe(withGhost + 3 * item - item);

      // An owner whose layouts alone exceed the bound is not kept (every read lays it out), and
      // does not push out the others.
      await applyBatch(store, [toEvent(clientCreated("other", "c1"))], 7);
      const small = new LayoutCache({ maxBytes: 20 * item });
      const visitsOf = async (owner: string) => {
        const visits = { whole: 0, clients: [] as string[] };
        const snapshot = counted(await store.openDashboard(owner), visits);
        (await renderSnapshot(snapshot, NOW, { layouts: { cache: small, ownerId: owner } })).release();
        return visits.whole;
      };
      expect(await visitsOf("other")).toBe(1);
      expect([await visitsOf(ownerId), await visitsOf(ownerId)]).toEqual([1, 1]);
      expect(await visitsOf("other")).toBe(0);
      expect(small.bytes).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  });
});

describe("a read from kept layouts", () => {
  it("streams a large body, or assembles it whole, with the bytes of a read that lays out everything", async () => {
    const store = LmdbDashboardStore.open(dir);
    try {
      const ownerId = "large";
      const events = [clientCreated(ownerId, "c"), projectCreated(ownerId, "p", { clientId: "c" })];
      for (let l = 0; l < 700; l++)
        events.push(licenseEvent(ownerId, `l${l}`, { clientId: "c", projectId: "p", services: ["x".repeat(2000)] }));
      await applyBatch(store, events.map(toEvent), 1);
      const cache = new LayoutCache({ maxBytes: 1024 * 1024 });
      const expected = await render(store, ownerId, NOW);
      expect(expected.length).toBeGreaterThan(1024 * 1024);
      for (const stream of [true, true, false]) {
        const snapshot = await store.openDashboard(ownerId);
        const rendered = await renderSnapshot(snapshot, NOW, { stream, layouts: { cache, ownerId } });
        expect({ streamed: rendered.streamed, text: dashboardText(rendered) }).toEqual({
          streamed: stream,
          text: expected,
        });
        rendered.release();
      }
    } finally {
      await store.close();
    }
  });

  it("drops the least recently read owner first, and an owner's layouts when a body does not match them", async () => {
    const store = LmdbDashboardStore.open(dir);
    try {
      for (const ownerId of ["lru-a", "lru-b", "lru-c"])
        await applyBatch(store, [toEvent(clientCreated(ownerId, "c"))], 1);
      const probe = new LayoutCache({ maxBytes: 1024 * 1024 });
      await render(store, "lru-a", NOW, { cache: probe });
      const cache = new LayoutCache({ maxBytes: 2 * probe.bytes }); // room for two such owners
      const visitsOf = async (ownerId: string, snapshotOf = (s: DashboardSnapshot) => s) => {
        const visits = { whole: 0, clients: [] as string[] };
        const snapshot = snapshotOf(counted(await store.openDashboard(ownerId), visits));
        (await renderSnapshot(snapshot, NOW, { layouts: { cache, ownerId } })).release();
        return visits.whole;
      };
      for (const ownerId of ["lru-a", "lru-b", "lru-a", "lru-c"]) await visitsOf(ownerId);
      // b was read least recently: dropped for c; a, read again, stayed.
      expect([await visitsOf("lru-a"), await visitsOf("lru-c"), await visitsOf("lru-b")]).toEqual([0, 0, 1]);

      // A fragment that is not what a kept layout says: the read fails, and the next lays out again.
      const shorter = (snapshot: DashboardSnapshot): DashboardSnapshot => ({
        ...snapshot,
        fragment: (clientId, projectId, chunk) => snapshot.fragment!(clientId, projectId, chunk)?.subarray(0, -1),
      });
      await expect(visitsOf("lru-a", shorter)).rejects.toThrow("differed from their layout");
      expect(await visitsOf("lru-a")).toBe(1);
    } finally {
      await store.close();
    }
  });

  it("never comes from another store (a rebuilt one has another identity)", async () => {
    const other = mkdtempSync(path.join(os.tmpdir(), "keybox-layout-cache-other-"));
    const [first, second] = [LmdbDashboardStore.open(dir), LmdbDashboardStore.open(other)];
    try {
      const ownerId = "rebuilt";
      await applyBatch(first, [toEvent(clientCreated(ownerId, "c", { name: "First" }))], 1);
      // Version 1 of the client in both, with a project in the second only.
      const secondEvents = [
        clientCreated(ownerId, "c", { name: "Second" }),
        projectCreated(ownerId, "p", { clientId: "c" }),
      ];
      await applyBatch(second, secondEvents.map(toEvent), 1);
      const cache = new LayoutCache({ maxBytes: 1024 * 1024 });
      expect(await render(first, ownerId, NOW, { cache })).toContain('"name":"First"');
      // The same owner, client and version in the other store: its own layout, its own bytes.
      const expected = await render(second, ownerId, NOW);
      expect(expected).toContain('"_id":"p"');
      expect(await render(second, ownerId, NOW, { cache })).toBe(expected);
    } finally {
      await Promise.all([first.close(), second.close()]);
      rmSync(other, { recursive: true, force: true });
    }
  });
});
