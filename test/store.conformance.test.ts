// The store contract, held against every adapter: LMDB always; MongoDB where one is reachable
// (MONGODB_URL, or testcontainers with a Docker engine), otherwise skipped with the reason printed.
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyBatch } from "@keybox/projector";
import { createApp, createOwnerVerifier, renderDashboard, type DashboardBody } from "@keybox/query-api";
import { buildEnvelope, type Envelope, type LicenseState } from "@keybox/contract";
import {
  LICENSE_CHUNK_TARGET_BYTES,
  PART_MAX_BYTES,
  partKey,
  registerKey,
  renderLicense,
  type DashboardStore,
  type Part,
  type RecordKey,
} from "@keybox/read-model";
import { createLogger } from "@keybox/runtime";
import { CHUNKINGS, CLIENT_IDS, deliveryOf, historyArb, NOW, OWNERS, withOwnerSuffix } from "./support/arbitraries.ts";
import { bearer, httpGet } from "./support/http.ts";
import { dashboardText, toEvent } from "./support/inMemory.ts";
import { referenceDashboard } from "./support/reference.ts";
import { TEST_JWT_SECRET, tokenFor } from "./support/pipeline.ts";
import { readDashboard, storeAdapters } from "./support/stores.ts";

const client = (id: string, name = id): Part => ({
  kind: "client",
  client: { v: 1, state: { id, ownerId: "o1", name, email: `${id}@x.io`, createdAt: "2024-01-01T00:00:00.000Z" } },
});
const project = (id: string, clientId: string): Part => ({
  kind: "project",
  project: { v: 1, state: { id, ownerId: "o1", clientId, name: id, createdAt: "2024-01-01T00:00:00.000Z" } },
  chunks: 1,
  ranges: [{ from: ["", ""], chunk: 1 }],
});
const licenses = (...ids: string[]): Part => ({
  kind: "licenses",
  licenses: ids.map((id) => ({
    id,
    v: 1,
    state: renderLicense({
      id,
      ownerId: "o1",
      projectId: "p1",
      clientId: "c1",
      key: `key-${id}`,
      duration: 30,
      issuedAt: "2024-01-01T00:00:00.000Z",
      expiresAt: "2024-01-31T00:00:00.000Z",
      status: "PENDING",
      services: [],
      machineId: undefined,
      createdAt: undefined,
    }),
  })),
  bytes: 0,
});
const noReads = { reads: [] };

/** The query API's app on `store`, taking tokens made by tokenFor. */
const queryApp = (store: DashboardStore) =>
  createApp({
    store,
    verifyOwner: createOwnerVerifier({ secret: TEST_JWT_SECRET, algorithms: ["HS256"], ownerClaim: "userId" }),
    readiness: async () => ({ ready: true }),
    log: createLogger("test", "silent"),
  });

const adapters = await storeAdapters();

for (const adapter of adapters) {
  describe.skipIf(adapter.skip !== undefined)(`${adapter.name} store`, () => {
    let store: DashboardStore;
    beforeAll(async () => {
      store = await adapter.open();
    });
    afterAll(async () => {
      await store?.close();
      await adapter.cleanup();
    });

    it("reads back nothing for an unknown owner, at version 0", async () => {
      expect(await readDashboard(store, "nobody")).toEqual({ version: 0, fragments: [] });
      expect(await readDashboard(store, "nobody", "c1")).toEqual({ version: 0, fragments: [] });
      expect(await store.version("nobody")).toBe(0);
      expect(await store.version("nobody", "c1")).toBe(0);
      const [loaded] = await store.load([partKey("nobody", "c1")]);
      expect(loaded).toMatchObject({ value: null, rev: 0 });
    });

    it("commits writes, bumps the owner's version and reads an owner or one client with one range", async () => {
      const result = await store.commit(
        {
          writes: [
            { key: partKey("o1", "c2"), value: client("c2"), baseRev: 0 },
            { key: partKey("o1", "c1", "p1"), value: project("p1", "c1"), baseRev: 0 },
            { key: partKey("o1", "c1", "p1", 1), value: licenses("p1l1"), baseRev: 0 },
            { key: partKey("o1", "c1"), value: client("c1"), baseRev: 0 },
            { key: partKey("o2", "c9"), value: client("c9"), baseRev: 0 },
            { key: registerKey("o1", "project", "p1"), value: { kind: "project", clientId: "c1" }, baseRev: 0 },
            // An owner written to with no client part: its version moves, naming no client.
            { key: registerKey("o3r", "project", "p9"), value: { kind: "project", clientId: "c9" }, baseRev: 0 },
          ],
          ...noReads,
        },
        7,
      );
      expect(result).toMatchObject({
        ok: true,
        changes: new Map([
          ["o1", { version: 1, clients: ["c2", "c1"] }],
          ["o2", { version: 1, clients: ["c9"] }],
          ["o3r", { version: 1, clients: [] }],
        ]),
        written: { records: 7 },
      });
      const read = await readDashboard(store, "o1");
      expect(read.version).toBe(1);
      expect(await store.version("o1")).toBe(1);
      expect(read.fragments.map((p) => [p.clientId, p.projectId, p.chunk]).sort()).toEqual([
        ["c1", "", 0],
        ["c1", "p1", 0],
        ["c1", "p1", 1],
        ["c2", "", 0],
      ]);
      expect((await readDashboard(store, "o1", "c1")).fragments).toHaveLength(3);
      expect((await readDashboard(store, "o1", "c")).fragments).toHaveLength(0);
      expect(await store.appliedSeq()).toBe(7);
    });

    describe("client versions", () => {
      let seq = 3_000_000;
      const versions = async (ownerId: string, clientIds: string[]) => ({
        owner: await store.version(ownerId),
        ...Object.fromEntries(await Promise.all(clientIds.map(async (c) => [c, await store.version(ownerId, c)]))),
      });

      it("moves a client's version on a change to that client, not on a change to another client", async () => {
        await store.commit(
          {
            writes: [
              { key: partKey("cv1", "c1"), value: client("c1"), baseRev: 0 },
              { key: partKey("cv1", "c2"), value: client("c2"), baseRev: 0 },
            ],
            ...noReads,
          },
          30,
        );
        expect(await versions("cv1", ["c1", "c2", "c3"])).toEqual({ owner: 1, c1: 1, c2: 1, c3: 0 });
        const [c1] = await store.load([partKey("cv1", "c1")]);
        await store.commit(
          { writes: [{ key: partKey("cv1", "c1"), value: client("c1", "renamed"), baseRev: c1!.rev }], ...noReads },
          31,
        );
        expect(await versions("cv1", ["c1", "c2", "c3"])).toEqual({ owner: 2, c1: 2, c2: 1, c3: 0 });
        // A read of one client gives that client's version, from the same snapshot as its fragments.
        expect(await readDashboard(store, "cv1", "c2")).toMatchObject({ version: 1, fragments: [{ clientId: "c2" }] });
        expect(await readDashboard(store, "cv1", "c1")).toMatchObject({ version: 2, fragments: [{ clientId: "c1" }] });
        expect((await readDashboard(store, "cv1", "c3")).version).toBe(0);
        expect((await readDashboard(store, "cv1")).version).toBe(2);
        // A write to no client's parts (a register alone) moves only the owner's version.
        await store.commit(
          {
            writes: [
              { key: registerKey("cv1", "project", "pX"), value: { kind: "project", clientId: "c1" }, baseRev: 0 },
            ],
            ...noReads,
          },
          32,
        );
        expect(await versions("cv1", ["c1", "c2"])).toEqual({ owner: 3, c1: 2, c2: 1 });
        // Deleting a client's last part changes its version too (its view changed: it is gone), to 0.
        const [c2] = await store.load([partKey("cv1", "c2")]);
        const deleted = await store.commit(
          { writes: [{ key: partKey("cv1", "c2"), value: null, baseRev: c2!.rev }], ...noReads },
          33,
        );
        expect(deleted).toMatchObject({ ok: true, changes: new Map([["cv1", { version: 4, clients: ["c2"] }]]) });
        expect(await versions("cv1", ["c1", "c2"])).toEqual({ owner: 4, c1: 2, c2: 0 });
        expect(await readDashboard(store, "cv1", "c2")).toEqual({ version: 0, fragments: [] });
      });

      it("is dropped with a client's last part: a filtered tag taken before is not current", async () => {
        const owner = "cvGone";
        const app = queryApp(store);
        const token = await tokenFor({ userId: owner });
        const ask = async (ifNoneMatch?: string) =>
          app.request("/dashboard?clientId=c1", {
            headers: ifNoneMatch ? { ...bearer(token), "If-None-Match": ifNoneMatch } : bearer(token),
          });
        const tagOf = async (res: Response) => {
          expect(res.status).toBe(200);
          return { tag: res.headers.get("etag")!, clients: ((await res.json()) as DashboardBody).clientsCount };
        };
        const never = await tagOf(await ask());
        expect(never.clients).toBe(0);
        const write = (key: RecordKey, value: Part | null, baseRev: number) =>
          store.commit({ writes: [{ key, value, baseRev }], ...noReads }, ++seq);
        await write(partKey(owner, "c1"), client("c1"), 0);
        await write(partKey(owner, "c1", "p1"), project("p1", "c1"), 0);
        const shown = await tagOf(await ask());
        expect(shown.clients).toBe(1);
        expect((await ask(shown.tag)).status).toBe(304);
        // One part left: the client's version is still its owner's of that commit.
        const [head] = await store.load([partKey(owner, "c1", "p1")]);
        await write(partKey(owner, "c1", "p1"), null, head!.rev);
        expect(await versions(owner, ["c1"])).toEqual({ owner: 3, c1: 3 });
        const [part] = await store.load([partKey(owner, "c1")]);
        await write(partKey(owner, "c1"), null, part!.rev);
        expect(await versions(owner, ["c1"])).toEqual({ owner: 4, c1: 0 });
        // Gone: the view of a client never written, with its tag; no tag from while it was shown matches.
        expect(await tagOf(await ask(shown.tag))).toEqual(never);
        expect((await ask(never.tag)).status).toBe(304);
        // Written again, it gets its owner's version then: above any it had, so no earlier tag matches.
        await write(partKey(owner, "c1"), client("c1"), 0);
        expect(await versions(owner, ["c1"])).toEqual({ owner: 5, c1: 5 });
        for (const earlier of [never.tag, shown.tag]) expect((await ask(earlier)).status).toBe(200);
      });

      it("moves both clients' versions when a project moves between them, as the change notice says", async () => {
        const owner = "cvMove";
        const t0 = "2024-01-01T00:00:00.000Z";
        const apply = (...envelopes: Envelope[]) => applyBatch(store, envelopes.map(toEvent), ++seq);
        const clientEnvelope = (id: string) =>
          buildEnvelope({
            entity: "client",
            action: "created",
            version: 1,
            data: { id, ownerId: owner, name: id, email: `${id}@x.io`, createdAt: t0 },
          });
        const projectEnvelope = (clientId: string, version: number) =>
          buildEnvelope({
            entity: "project",
            action: version === 1 ? "created" : "updated",
            version,
            data: { id: "p1", ownerId: owner, clientId, name: "P", createdAt: t0 },
          });
        await apply(clientEnvelope("a"), clientEnvelope("b"), clientEnvelope("c"), projectEnvelope("a", 1));
        const before = await versions(owner, ["a", "b", "c"]);
        expect(before).toEqual({ owner: 1, a: 1, b: 1, c: 1 });

        const moved = await apply(projectEnvelope("b", 2));
        const after = await versions(owner, ["a", "b", "c"]);
        expect(after).toEqual({ owner: 2, a: 2, b: 2, c: 1 });
        const change = moved.changes.get(owner)!;
        expect(change.version).toBe(2);
        expect([...change.clients].sort()).toEqual(["a", "b"]);
        for (const clientId of change.clients) expect(await store.version(owner, clientId)).toBe(change.version);
        const projectsOf = async (clientId: string) => {
          const { version, fragments } = await readDashboard(store, owner, clientId);
          const body = JSON.parse(dashboardText(renderDashboard(fragments, NOW))) as DashboardBody;
          return { version, projects: body.data.flatMap((c) => c.projects.map((p) => p._id)) };
        };
        expect(await projectsOf("a")).toEqual({ version: 2, projects: [] });
        expect(await projectsOf("b")).toEqual({ version: 2, projects: ["p1"] });
        expect(await projectsOf("c")).toEqual({ version: 1, projects: [] });
      });

      it("moves with every change to a client's view, for any delivery of a history, as the notices say", async () => {
        const scenario = historyArb.chain((history) =>
          fc.tuple(deliveryOf(history), fc.integer({ min: 1, max: 6 }), fc.constantFrom(...CHUNKINGS)),
        );
        let run = 0;
        await fc.assert(
          fc.asyncProperty(scenario, async ([delivery, batchSize, options]) => {
            const suffix = `-v${++run}`;
            const events = withOwnerSuffix(delivery, suffix);
            const views = OWNERS.flatMap((o) => CLIENT_IDS.map((c) => [o + suffix, c] as const));
            const seen = async () =>
              Promise.all(
                views.map(async ([ownerId, clientId]) => {
                  const { version, fragments } = await readDashboard(store, ownerId, clientId);
                  expect(await store.version(ownerId, clientId)).toBe(version);
                  return { version, text: dashboardText(renderDashboard(fragments, NOW)) };
                }),
              );
            const emptyView = dashboardText(renderDashboard([], NOW));
            let before = await seen();
            for (let i = 0; i < events.length; i += batchSize) {
              const { changes } = await applyBatch(store, events.slice(i, i + batchSize), ++seq, options);
              const after = await seen();
              for (const [n, [ownerId, clientId]] of views.entries()) {
                const moved = after[n]!.version !== before[n]!.version;
                const named = changes.get(ownerId)?.clients.includes(clientId) ?? false;
                // The notice names exactly the clients whose version moved, and gives their new version,
                // unless the commit left the client with no part: then 0, as for a client never written.
                expect([ownerId, clientId, moved]).toEqual([ownerId, clientId, named]);
                if (named && after[n]!.version !== 0) expect(after[n]!.version).toBe(changes.get(ownerId)!.version);
                // Version 0 (so its tag) always stands for the same body: the empty one.
                if (after[n]!.version === 0) expect(after[n]!.text).toBe(emptyView);
                // A view whose body changed has a new version (what its ETag is made from).
                if (after[n]!.text !== before[n]!.text)
                  expect([ownerId, clientId, moved]).toEqual([ownerId, clientId, true]);
              }
              before = after;
            }
          }),
          { numRuns: 25, interruptAfterTimeLimit: 30_000 },
        );
      }, 120_000);
    });

    it("refuses a commit whose written or read records changed since loaded, and writes nothing of it", async () => {
      await store.commit({ writes: [{ key: partKey("o3", "c1"), value: client("c1"), baseRev: 0 }], ...noReads }, 8);
      const [loaded] = await store.load([partKey("o3", "c1")]);
      expect(loaded!.rev).toBeGreaterThan(0);
      const staleWrite = await store.commit(
        {
          writes: [
            { key: partKey("o3", "c2"), value: client("c2"), baseRev: 0 },
            { key: partKey("o3", "c1"), value: client("c1", "lost"), baseRev: 0 },
          ],
          ...noReads,
        },
        9,
      );
      expect(staleWrite).toEqual({ ok: false, conflict: partKey("o3", "c1") });
      const staleRead = await store.commit(
        {
          writes: [{ key: partKey("o3", "c3"), value: client("c3"), baseRev: 0 }],
          reads: [{ key: partKey("o3", "c1"), rev: loaded!.rev + 1 }],
        },
        9,
      );
      expect(staleRead).toEqual({ ok: false, conflict: partKey("o3", "c1") });
      const read = await readDashboard(store, "o3");
      expect(read.fragments).toHaveLength(1);
      expect(read.version).toBe(1);
      const fresh = await store.commit(
        {
          writes: [{ key: partKey("o3", "c1"), value: client("c1", "won"), baseRev: loaded!.rev }],
          reads: [{ key: partKey("o3", "c9"), rev: 0 }],
        },
        10,
      );
      expect(fresh.ok).toBe(true);
    });

    it("refuses a stale commit on a license chunk, whether it has live licenses or only tombstones", async () => {
      // LMDB keeps a chunk with a live license as its fragment and one of tombstones only as a
      // record: its revision must hold across both, and across the move between them.
      const chunk = partKey("o5", "c1", "p1", 1);
      const tombstones: Part = { kind: "licenses", licenses: [{ id: "l1", v: 2, state: null }], bytes: 0 };
      let rev = 0;
      for (const value of [licenses("l1"), tombstones, licenses("l1", "l2"), tombstones]) {
        expect((await store.commit({ writes: [{ key: chunk, value, baseRev: rev }], ...noReads }, 15)).ok).toBe(true);
        const [loaded] = await store.load([chunk]);
        expect(loaded!.value).toEqual(value);
        expect(loaded!.rev).toBeGreaterThan(rev);
        const stale = { writes: [{ key: partKey("o5", "c2"), value: client("c2"), baseRev: 0 }] };
        expect(await store.commit({ ...stale, reads: [{ key: chunk, rev }] }, 16)).toEqual({
          ok: false,
          conflict: chunk,
        });
        expect(await store.commit({ writes: [{ key: chunk, value, baseRev: rev }], ...noReads }, 16)).toEqual({
          ok: false,
          conflict: chunk,
        });
        rev = loaded!.rev;
      }
      expect((await readDashboard(store, "o5")).fragments).toEqual([]);
    });

    it("deletes a record whose new value is null, and never reuses a revision for it", async () => {
      await store.commit({ writes: [{ key: partKey("o4", "c1"), value: client("c1"), baseRev: 0 }], ...noReads }, 11);
      const [first] = await store.load([partKey("o4", "c1")]);
      await store.commit({ writes: [{ key: partKey("o4", "c1"), value: null, baseRev: first!.rev }], ...noReads }, 12);
      expect((await readDashboard(store, "o4")).fragments).toEqual([]);
      expect((await store.load([partKey("o4", "c1")]))[0]).toMatchObject({ value: null, rev: 0 });
      await store.commit({ writes: [{ key: partKey("o4", "c1"), value: client("c1"), baseRev: 0 }], ...noReads }, 13);
      const [again] = await store.load([partKey("o4", "c1")]);
      expect(again!.rev).not.toBe(first!.rev);
      // A writer still holding the first incarnation loses.
      const late = await store.commit(
        { writes: [{ key: partKey("o4", "c1"), value: client("c1", "late"), baseRev: first!.rev }], ...noReads },
        14,
      );
      expect(late.ok).toBe(false);
    });

    describe("names the record that conflicted, among records that did not, and writes nothing of the commit", () => {
      type Commit = Parameters<DashboardStore["commit"]>[0];
      /** What a case's commit finds: each record's revision as loaded, before the concurrent change. */
      interface Loaded {
        a: number;
        b: number;
        r: number;
      }
      const reg = (clientId: string) => ({ kind: "project" as const, clientId });
      // Each case on an owner of its own: parts A (client c1, its only part) and B (client c2), a
      // register R, and N, absent when loaded; `meanwhile` is the other writer's commit, `commit`
      // this one's, whose conflict is `conflict`.
      const cases: {
        name: string;
        meanwhile: (o: string, at: Loaded) => Commit;
        commit: (o: string, at: Loaded) => Commit;
        conflict: (o: string) => RecordKey;
      }[] = [
        {
          name: "a write of a record replaced meanwhile",
          meanwhile: (o, at) => ({
            writes: [{ key: partKey(o, "c1"), value: client("c1", "x"), baseRev: at.a }],
            reads: [],
          }),
          commit: (o, at) => ({
            writes: [
              { key: partKey(o, "c2"), value: client("c2", "y"), baseRev: at.b },
              { key: partKey(o, "c1"), value: client("c1", "y"), baseRev: at.a },
              { key: registerKey(o, "project", "p1"), value: reg("c2"), baseRev: at.r },
            ],
            reads: [],
          }),
          conflict: (o) => partKey(o, "c1"),
        },
        {
          name: "a write of a record deleted meanwhile",
          meanwhile: (o, at) => ({ writes: [{ key: partKey(o, "c1"), value: null, baseRev: at.a }], reads: [] }),
          commit: (o, at) => ({
            writes: [
              { key: partKey(o, "c2"), value: client("c2", "y"), baseRev: at.b },
              { key: partKey(o, "c1"), value: client("c1", "y"), baseRev: at.a },
            ],
            reads: [],
          }),
          conflict: (o) => partKey(o, "c1"),
        },
        {
          name: "a delete of a record replaced meanwhile",
          meanwhile: (o, at) => ({
            writes: [{ key: partKey(o, "c1"), value: client("c1", "x"), baseRev: at.a }],
            reads: [],
          }),
          commit: (o, at) => ({
            writes: [
              { key: partKey(o, "c2"), value: client("c2", "y"), baseRev: at.b },
              { key: partKey(o, "c1"), value: null, baseRev: at.a },
            ],
            reads: [],
          }),
          conflict: (o) => partKey(o, "c1"),
        },
        {
          name: "a delete of a record deleted meanwhile",
          meanwhile: (o, at) => ({ writes: [{ key: partKey(o, "c1"), value: null, baseRev: at.a }], reads: [] }),
          commit: (o, at) => ({
            writes: [
              { key: partKey(o, "c2"), value: client("c2", "y"), baseRev: at.b },
              { key: partKey(o, "c1"), value: null, baseRev: at.a },
            ],
            reads: [],
          }),
          conflict: (o) => partKey(o, "c1"),
        },
        {
          name: "a delete, where there was none, of a record created meanwhile",
          meanwhile: (o) => ({ writes: [{ key: partKey(o, "c3"), value: client("c3"), baseRev: 0 }], reads: [] }),
          commit: (o, at) => ({
            writes: [
              { key: partKey(o, "c2"), value: client("c2", "y"), baseRev: at.b },
              { key: partKey(o, "c3"), value: null, baseRev: 0 },
            ],
            reads: [],
          }),
          conflict: (o) => partKey(o, "c3"),
        },
        {
          name: "a read of a record deleted meanwhile",
          meanwhile: (o, at) => ({ writes: [{ key: partKey(o, "c1"), value: null, baseRev: at.a }], reads: [] }),
          commit: (o, at) => ({
            writes: [{ key: partKey(o, "c2"), value: client("c2", "y"), baseRev: at.b }],
            reads: [
              { key: registerKey(o, "project", "p1"), rev: at.r },
              { key: partKey(o, "c1"), rev: at.a },
            ],
          }),
          conflict: (o) => partKey(o, "c1"),
        },
        {
          name: "a read of an absent record created meanwhile",
          meanwhile: (o) => ({ writes: [{ key: partKey(o, "c3"), value: client("c3"), baseRev: 0 }], reads: [] }),
          commit: (o, at) => ({
            writes: [{ key: partKey(o, "c2"), value: client("c2", "y"), baseRev: at.b }],
            reads: [
              { key: partKey(o, "c1"), rev: at.a },
              { key: partKey(o, "c3"), rev: 0 },
            ],
          }),
          conflict: (o) => partKey(o, "c3"),
        },
        {
          name: "a register written at a revision replaced meanwhile",
          meanwhile: (o, at) => ({
            writes: [{ key: registerKey(o, "project", "p1"), value: reg("c2"), baseRev: at.r }],
            reads: [],
          }),
          commit: (o, at) => ({
            writes: [
              { key: partKey(o, "c1"), value: client("c1", "y"), baseRev: at.a },
              { key: registerKey(o, "project", "p1"), value: reg("c3"), baseRev: at.r },
              { key: partKey(o, "c2"), value: client("c2", "y"), baseRev: at.b },
            ],
            reads: [],
          }),
          conflict: (o) => registerKey(o, "project", "p1"),
        },
        {
          name: "a register created that exists",
          meanwhile: (o) => ({
            writes: [{ key: registerKey(o, "project", "p2"), value: reg("c1"), baseRev: 0 }],
            reads: [],
          }),
          commit: (o, at) => ({
            writes: [
              { key: partKey(o, "c1"), value: client("c1", "y"), baseRev: at.a },
              { key: registerKey(o, "project", "p2"), value: reg("c2"), baseRev: 0 },
            ],
            reads: [{ key: partKey(o, "c2"), rev: at.b }],
          }),
          conflict: (o) => registerKey(o, "project", "p2"),
        },
      ];
      let seq = 100;
      it.each(cases.map((c, i) => [c.name, i] as const))("%s", async (_name, i) => {
        const { meanwhile, commit, conflict } = cases[i]!;
        const o = `oconflict${i}`;
        const keys = [partKey(o, "c1"), partKey(o, "c2"), partKey(o, "c3"), registerKey(o, "project", "p1")];
        await store.commit(
          {
            writes: [
              { key: keys[0]!, value: client("c1"), baseRev: 0 },
              { key: keys[1]!, value: client("c2"), baseRev: 0 },
              { key: keys[3]!, value: reg("c1"), baseRev: 0 },
            ],
            reads: [],
          },
          ++seq,
        );
        const [a, b, , r] = await store.load(keys);
        const at = { a: a!.rev, b: b!.rev, r: r!.rev };
        expect((await store.commit(meanwhile(o, at), ++seq)).ok).toBe(true);
        const state = async () => ({
          records: await store.load([...keys, registerKey(o, "project", "p2")]),
          dashboard: await readDashboard(store, o),
          versions: await Promise.all(["c1", "c2", "c3"].map((c) => store.version(o, c))),
        });
        const before = await state();
        expect(await store.commit(commit(o, at), ++seq)).toEqual({ ok: false, conflict: conflict(o) });
        expect(await state()).toEqual(before);
      });
    });

    it("bumps an owner's version once per commit when commits to it run at once: none is lost", async () => {
      const o = "oconcurrent";
      const results = await Promise.all(
        ["c0", "c1", "c2", "c3", "c4", "c5"].map((c, i) =>
          store.commit({ writes: [{ key: partKey(o, c), value: client(c), baseRev: 0 }], ...noReads }, 200 + i),
        ),
      );
      const versions = results.map((result) => (result.ok ? result.changes.get(o)!.version : 0));
      expect([...versions].sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(await store.version(o)).toBe(6);
      for (const [i, version] of versions.entries()) expect(await store.version(o, `c${i}`)).toBe(version);
    });

    /** One commit that removes `owner`'s client `firstId` and adds a client "zz", after every other. */
    async function replaceFirstClientWithLast(owner: string, firstId: string, seq: number): Promise<void> {
      const [first] = await store.load([partKey(owner, firstId)]);
      await store.commit(
        {
          writes: [
            { key: partKey(owner, firstId), value: null, baseRev: first!.rev },
            { key: partKey(owner, "zz"), value: client("zz"), baseRev: 0 },
          ],
          ...noReads,
        },
        seq,
      );
    }

    it("reads a large owner from one snapshot, also when a commit lands while it reads", async () => {
      const ids = Array.from({ length: 2500 }, (_, n) => `c${String(n).padStart(4, "0")}`);
      const writes = ids.map((id) => ({ key: partKey("snap", id), value: client(id), baseRev: 0 }));
      await store.commit({ writes, ...noReads }, 20);
      const reading = readDashboard(store, "snap");
      await replaceFirstClientWithLast("snap", ids[0]!, 21); // lands while the read is under way
      const read = await reading;
      expect(read.version).toBe(1);
      expect(read.fragments.map((f) => f.clientId)).toEqual(ids);
      const after = await readDashboard(store, "snap");
      expect(after.version).toBe(2);
      expect(after.fragments.map((f) => f.clientId)).toEqual([...ids.slice(1), "zz"]);
    });

    it("visits a snapshot's fragments alike every time, whatever commits meanwhile", async () => {
      const ids = Array.from({ length: 600 }, (_, n) => `v${String(n).padStart(4, "0")}`);
      await store.commit(
        { writes: ids.map((id) => ({ key: partKey("twice", id), value: client(id), baseRev: 0 })), ...noReads },
        30,
      );
      const snapshot = await store.openDashboard("twice");
      try {
        const visit = async () => {
          const seen: string[] = [];
          await snapshot.fragments(({ clientId, bytes }) =>
            seen.push(`${clientId}:${Buffer.from(bytes).toString("hex")}`),
          );
          return seen;
        };
        const firstVisit = await visit();
        await replaceFirstClientWithLast("twice", ids[0]!, 31);
        expect(firstVisit).toHaveLength(ids.length);
        expect(await visit()).toEqual(firstVisit);
        expect(snapshot.version).toBe(1);
      } finally {
        snapshot.close();
      }
      expect((await readDashboard(store, "twice")).fragments.map((f) => f.clientId)).toEqual([...ids.slice(1), "zz"]);
    });

    it("keeps everything across a restart, its identity included", async () => {
      const seq = await store.appliedSeq();
      const identity = store.identity();
      expect(identity).toMatch(/^\d+$/);
      await store.close();
      store = await adapter.reopen();
      expect((await readDashboard(store, "o1")).fragments).toHaveLength(4);
      expect(await store.appliedSeq()).toBe(seq);
      expect(store.identity()).toBe(identity);
    });

    it("has an identity of its own: another store (a rebuild) counts versions again, under another", async () => {
      const other = await storeAdapters().then((all) => all.find((a) => a.name === adapter.name)!);
      const rebuilt = await other.open();
      try {
        expect(rebuilt.identity()).toMatch(/^\d+$/);
        expect(rebuilt.identity()).not.toBe(store.identity());
      } finally {
        await rebuilt.close();
        await other.cleanup();
      }
    });

    // Issue 6: ids are any [A-Za-z0-9_-]{1,64}, "__proto__" included. Stored parts must keep them
    // through the adapter's encoding (msgpack renames an object key "__proto__" to "__proto_").
    describe("ids such as __proto__, through the store's encoding", () => {
      let seq = 2_000_000;

      /**
       * Applies each event in a batch of its own, so each reads what the one before stored;
       * gives "id status" per license served.
       */
      async function served(events: Envelope[]) {
        for (const envelope of events) await applyBatch(store, [toEvent(envelope)], ++seq);
        const body = JSON.parse(
          dashboardText(renderDashboard((await readDashboard(store, events[0]!.ownerid)).fragments, NOW)),
        ) as DashboardBody;
        return body.data.flatMap((c) => c.projects.flatMap((p) => p.licenses.map((l) => `${l._id} ${l.status}`)));
      }
      const parents = (ownerId: string) => [
        buildEnvelope({
          entity: "client",
          action: "created",
          version: 1,
          data: { id: "c1", ownerId, name: "C", email: "c@x.io", createdAt: "2024-01-01T00:00:00.000Z" },
        }),
        buildEnvelope({
          entity: "project",
          action: "created",
          version: 1,
          data: { id: "p1", ownerId, clientId: "c1", name: "P", createdAt: "2024-01-01T00:00:00.000Z" },
        }),
      ];
      const licenseEvent = (ownerId: string, id: string, version: number, status: LicenseState["status"]) =>
        buildEnvelope({
          entity: "license",
          action: version === 1 ? "created" : "updated",
          version,
          data: {
            id,
            ownerId,
            clientId: "c1",
            projectId: "p1",
            key: `KB-${id}-${version}`,
            duration: 12,
            issuedAt: "2024-01-01T00:00:00.000Z",
            expiresAt: "2099-01-01T00:00:00.000Z",
            status,
            services: [],
          },
        });
      describe.each(["__proto__", "constructor", "prototype", "toString"])("license %s", (id) => {
        it("serves its update (v2 ACTIVE), not v1 PENDING", async () => {
          const owner = `upd${id}`;
          expect(
            await served([
              ...parents(owner),
              licenseEvent(owner, id, 1, "PENDING"),
              licenseEvent(owner, id, 2, "ACTIVE"),
            ]),
          ).toEqual([`${id} ACTIVE`]);
        });

        it("keeps a license created before it whose id is one character shorter", async () => {
          const owner = `nbr${id}`;
          const neighbour = id.slice(0, -1);
          expect(
            await served([
              ...parents(owner),
              licenseEvent(owner, neighbour, 1, "PENDING"),
              licenseEvent(owner, id, 1, "ACTIVE"),
            ]),
          ).toEqual([`${neighbour} PENDING`, `${id} ACTIVE`]);
        });

        it("is no longer served once deleted", async () => {
          const owner = `del${id}`;
          const gone = buildEnvelope({
            entity: "license",
            action: "deleted",
            version: 2,
            data: { id, ownerId: owner, clientId: "c1", projectId: "p1" },
          });
          expect(await served([...parents(owner), licenseEvent(owner, id, 1, "PENDING"), gone])).toEqual([]);
        });
      });

      it("matches the reference model for any delivery of a history with such ids, whole and per client", async () => {
        const scenario = historyArb.chain((history) =>
          fc.tuple(deliveryOf(history), fc.integer({ min: 1, max: 12 }), fc.constantFrom(...CHUNKINGS)),
        );
        let run = 0;
        await fc.assert(
          fc.asyncProperty(scenario, async ([delivery, batchSize, options]) => {
            const suffix = `-${++run}`;
            const events = withOwnerSuffix(delivery, suffix);
            for (let i = 0; i < events.length; i += batchSize)
              await applyBatch(store, events.slice(i, i + batchSize), ++seq, options);
            for (const ownerId of OWNERS.map((o) => o + suffix)) {
              for (const clientId of [undefined, ...CLIENT_IDS]) {
                const { fragments } = await readDashboard(store, ownerId, clientId);
                expect(JSON.parse(dashboardText(renderDashboard(fragments, NOW)))).toEqual(
                  referenceDashboard(events, ownerId, NOW, clientId),
                );
              }
            }
          }),
          // A failure is shrunk for at most 30 s: each try writes to the store.
          { numRuns: 40, interruptAfterTimeLimit: 30_000 },
        );
      }, 120_000);
    });

    describe("a large tenant: 100,000 licenses across 1,000 clients, one client with 20,000", () => {
      const OWNER = "largeTenant";
      const BIG = "client0000";
      const t = (n: number) => new Date(Date.UTC(2024, 0, 1) + n * 1000).toISOString();
      const license = (id: string, clientId: string, projectId: string, version: number, services = ["Hosting"]) =>
        buildEnvelope({
          entity: "license",
          action: version === 1 ? "created" : "updated",
          version,
          data: {
            id,
            ownerId: OWNER,
            clientId,
            projectId,
            key: `KB-${projectId}-${id}`,
            duration: 12,
            issuedAt: t(1),
            expiresAt: "2099-01-01T00:00:00.000Z",
            status: "ACTIVE",
            services,
          },
        });

      function* history(): Generator<Envelope> {
        for (let c = 0; c < 1000; c++) {
          const clientId = `client${String(c).padStart(4, "0")}`;
          yield buildEnvelope({
            entity: "client",
            action: "created",
            version: 1,
            data: { id: clientId, ownerId: OWNER, name: `Client ${c}`, email: `c${c}@x.io`, createdAt: t(c) },
          });
          const projects = c === 0 ? 1 : 2;
          for (let p = 0; p < projects; p++) {
            // 20,000 + 999 × 80 + 80 = 100,000 licenses.
            const perProject = c === 0 ? 20_000 : p === 0 && c <= 80 ? 41 : 40;
            const projectId = `${clientId}p${p}`;
            yield buildEnvelope({
              entity: "project",
              action: "created",
              version: 1,
              data: { id: projectId, ownerId: OWNER, clientId, name: `Project ${p}`, createdAt: t(p) },
            });
            for (let l = 0; l < perProject; l++) yield license(`${projectId}l${l}`, clientId, projectId, 1);
          }
        }
      }

      let seq = 1_000_000;
      async function apply(envelopes: Envelope[]) {
        return applyBatch(store, envelopes.map(toEvent), ++seq);
      }

      beforeAll(async () => {
        let batch: Envelope[] = [];
        for (const envelope of history()) {
          batch.push(envelope);
          if (batch.length === 2000) {
            await apply(batch);
            batch = [];
          }
        }
        if (batch.length) await apply(batch);
      }, 600_000);

      it("is served whole by GET /dashboard", async () => {
        const app = queryApp(store);
        const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
        await new Promise((resolve) => server.once("listening", resolve));
        try {
          const { port } = server.address() as AddressInfo;
          const res = await httpGet(`http://127.0.0.1:${port}/dashboard`, {
            headers: bearer(await tokenFor({ userId: OWNER })),
          });
          expect(res.status).toBe(200);
          // Streamed in slices, yet with its length up front (compact JSON: re-serialising gives its bytes).
          expect(res.headers["transfer-encoding"]).toBeUndefined();
          expect(Number(res.headers["content-length"])).toBe(Buffer.byteLength(JSON.stringify(res.body)));
          expect(res.body.clientsCount).toBe(1000);
          expect(res.body.projectsCount).toBe(1999);
          const licenses = res.body.data.flatMap((c: any) => c.projects.flatMap((p: any) => p.licenses));
          expect(licenses).toHaveLength(100_000);
          expect(res.body.data[0].projects[0].licenses).toHaveLength(20_000);
          const one = await httpGet(`http://127.0.0.1:${port}/dashboard?clientId=${BIG}`, {
            headers: bearer(await tokenFor({ userId: OWNER })),
          });
          expect(one.body.data[0].projects[0].licenses).toHaveLength(20_000);
        } finally {
          server.close();
        }
      });

      it(`keeps every stored part under ${PART_MAX_BYTES} bytes`, async () => {
        const stats = await store.partStats(OWNER);
        console.log(
          `${adapter.name} large tenant: ${stats.parts} parts, ${stats.bytes} bytes stored, ` +
            `largest part ${stats.largestPartBytes} bytes`,
        );
        expect(stats.parts).toBeGreaterThan(2999); // clients, project heads and several chunks
        expect(stats.largestPartBytes).toBeLessThan(PART_MAX_BYTES);
      });

      it("applies one more event by writing one part and a bounded number of bytes", async () => {
        // A chunk holds its target plus one license, and its fragment about as much again.
        const bound = LICENSE_CHUNK_TARGET_BYTES * 2;
        const update = await apply([license(`${BIG}p0l12345`, BIG, `${BIG}p0`, 2, ["Hosting", "Support"])]);
        const created = await apply([license(`${BIG}p0lNEW`, BIG, `${BIG}p0`, 1)]);
        const small = await apply([license("client0500p1l7", "client0500", "client0500p1", 2, ["Hosting", "Support"])]);
        const rename = await apply([
          buildEnvelope({
            entity: "client",
            action: "updated",
            version: 2,
            data: { id: BIG, ownerId: OWNER, name: "Renamed", email: "r@x.io", createdAt: t(0) },
          }),
        ]);
        console.log(
          `${adapter.name} bytes written per event: ` +
            `license update in the 20,000-license client ${update.written.bytes}, ` +
            `new license there ${created.written.bytes}, ` +
            `license update in a 80-license client ${small.written.bytes}, client rename ${rename.written.bytes}`,
        );
        expect(update.written.records).toBe(1);
        expect(small.written.records).toBe(1);
        expect(rename.written.records).toBe(1);
        expect(created.written.records).toBeLessThanOrEqual(3); // its chunk, its register, maybe the head
        for (const outcome of [update, created, small]) expect(outcome.written.bytes).toBeLessThan(bound);
        expect(rename.written.bytes).toBeLessThan(1024);
      });
    });
  });
}

// Printed, not silent: what was skipped and why.
for (const adapter of adapters)
  if (adapter.skip) console.warn(`SKIPPED ${adapter.name} store conformance: ${adapter.skip}`);
