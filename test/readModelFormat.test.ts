// The read model's stored format, on LMDB: a store of format 5 (which also kept a `revisions`
// database) or 6 (which kept license chunks as records of `parts` too) is read as it is by a reader
// and upgraded in place by a writer; a store of any other format, older or newer, is refused at
// start by both, saying how to rebuild it.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { open, type Database, type RootDatabase } from "lmdb";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyBatch } from "@keybox/projector";
import {
  checkReadModelFormat,
  decodeFragment,
  decodeStoredChunk,
  encodeFragment,
  READ_MODEL_FORMATS,
  renderLicense,
  type DashboardStore,
} from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { NOW } from "./support/arbitraries.ts";
import { clientCreated, clientEvent, licenseEvent, projectCreated } from "./support/events.ts";
import { dashboardOf, renderBody, toEvent } from "./support/inMemory.ts";
import { readDashboard } from "./support/stores.ts";

const dashboard = async (store: DashboardStore, ownerId: string) =>
  renderBody((await readDashboard(store, ownerId)).fragments, NOW);

describe("a store written in another format", () => {
  const owner = "formatOwner";
  const events = [clientCreated(owner, "c1"), projectCreated(owner, "p1", { clientId: "c1" })];
  let dir = "";
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "keybox-format-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** LMDB itself on the store's folder: what it records, and which databases it holds. */
  async function withEnv<T>(body: (env: RootDatabase) => T | Promise<T>): Promise<T> {
    const env = open({ path: path.join(dir, "lmdb"), maxDbs: 8 });
    try {
      return await body(env);
    } finally {
      await env.close();
    }
  }

  /**
   * A dashboard, stored with `format` recorded. Format 5's projector also kept each record's
   * revision in a `revisions` database: one is left there as it did (an upgrade from 6 drops one
   * left behind all the same).
   */
  async function storedInFormat(format: number): Promise<void> {
    const store = LmdbDashboardStore.open(dir);
    await applyBatch(store, events.map(toEvent), 1);
    await store.close();
    await withEnv(async (env) => {
      await env.openDB({ name: "meta" }).put("format", format);
      await env.openDB({ name: "revisions" }).put(["p", owner, "c1", "", 0], 1);
    });
  }

  /** The format recorded, and the databases there. */
  const stored = () =>
    withEnv((env) => ({ format: env.openDB({ name: "meta" }).get("format"), databases: [...env.getKeys()] }));

  const { current } = READ_MODEL_FORMATS.lmdb;

  it.each([4, current + 1])("of format %i is refused at start, saying how to rebuild it", async (format) => {
    await storedInFormat(format);
    const refusal = new RegExp(`has format ${format} and this version needs format ${current}: delete it`);
    expect(() => LmdbDashboardStore.open(dir)).toThrow(refusal);
    expect(() => LmdbDashboardStore.open(dir, { readOnly: true })).toThrow(refusal);
    expect((await stored()).format).toBe(format);
  });

  it.each([5, 6])("of format %i is read as it is by a reader, and upgraded in place by a writer", async (format) => {
    expect(current).toBe(7);
    await storedInFormat(format);
    const expected = dashboardOf(events, owner, NOW);
    const reader = LmdbDashboardStore.open(dir, { readOnly: true });
    expect(await dashboard(reader, owner)).toEqual(expected);
    await reader.close();
    expect(await stored()).toEqual({ format, databases: expect.arrayContaining(["revisions"]) });

    const writer = LmdbDashboardStore.open(dir);
    try {
      expect(await dashboard(writer, owner)).toEqual(expected);
      const renamed = clientEvent(owner, "c1", { name: "renamed" }, { version: 2 });
      expect((await applyBatch(writer, [toEvent(renamed)], 2)).applied).toBe(1);
      expect(await dashboard(writer, owner)).toEqual(dashboardOf([...events, renamed], owner, NOW));
    } finally {
      await writer.close();
    }
    const upgraded = await stored();
    expect(upgraded.format).toBe(7);
    expect(upgraded.databases).not.toContain("revisions");
  });
});

describe("the formats each store accepts (checked without a server)", () => {
  const check = (store: keyof typeof READ_MODEL_FORMATS, recorded: number | undefined, hasData = true) =>
    checkReadModelFormat(READ_MODEL_FORMATS[store], recorded, hasData, "here");

  it("on MongoDB: 6 is current, 5 is upgraded in place, a new store records 6, any other is refused", () => {
    expect(check("mongodb", 6)).toBe("current");
    expect(check("mongodb", 5)).toBe("upgrade");
    expect(check("mongodb", undefined, false)).toBe("new");
    for (const other of [4, 7]) expect(() => check("mongodb", other)).toThrow(/needs format 6: delete it/);
    // Data without a recorded format is the first format's.
    expect(() => check("mongodb", undefined)).toThrow(/has format 1 and this version needs format 6/);
  });

  it("on LMDB: 7 is current, 5 and 6 are upgraded in place, any other is refused", () => {
    expect(check("lmdb", 7)).toBe("current");
    expect([check("lmdb", 5), check("lmdb", 6)]).toEqual(["upgrade", "upgrade"]);
    expect(() => check("lmdb", 4)).toThrow(/needs format 7: delete it/);
  });
});

describe("a store of format 6's license chunks", () => {
  const owner = "chunkOwner";
  const place = { clientId: "c1", projectId: "p1" };
  const events = [
    clientCreated(owner, "c1"),
    projectCreated(owner, "p1", { clientId: "c1" }),
    licenseEvent(owner, "l1", place),
    licenseEvent(owner, "__proto__", { ...place, status: "PENDING" }),
  ];
  const chunkKey = [owner, "c1", "p1", 1];
  let dir = "";
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "keybox-format6-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** The store's databases as the store opens them (records with shared msgpack structures). */
  async function withDatabases<T>(
    body: (dbs: { parts: Database; fragments: Database<Uint8Array>; meta: Database }) => T,
  ): Promise<T> {
    const env = open({ path: path.join(dir, "lmdb"), maxDbs: 8 });
    try {
      return await env.transaction(() =>
        body({
          parts: env.openDB({ name: "parts", sharedStructuresKey: Symbol.for("structures") }),
          fragments: env.openDB({ name: "fragments", encoding: "binary" }),
          meta: env.openDB({ name: "meta" }),
        }),
      );
    } finally {
      await env.close();
    }
  }

  it("are read where format 6 kept them, and kept as their fragments once written again", async () => {
    const store = LmdbDashboardStore.open(dir);
    await applyBatch(store, events.map(toEvent), 1);
    await store.close();
    // As format 6 kept the chunk: a record of `parts`, and a fragment without its state.
    await withDatabases(({ parts, fragments, meta }) => {
      const { chunk, rev } = decodeStoredChunk(fragments.get(chunkKey)!)!;
      expect(chunk.licenses.map((l) => l.id)).toEqual(["__proto__", "l1"]);
      parts.putSync(chunkKey, { rev, value: chunk });
      fragments.putSync(chunkKey, encodeFragment(chunk)!);
      meta.putSync("format", 6);
    });

    const writer = LmdbDashboardStore.open(dir);
    try {
      expect(await dashboard(writer, owner)).toEqual(dashboardOf(events, owner, NOW));
      // An update applied to the chunk as format 6 kept it: its other license is still there.
      const renewed = licenseEvent(owner, "l1", { ...place, duration: 24 }, { version: 2 });
      expect((await applyBatch(writer, [toEvent(renewed)], 2)).applied).toBe(1);
      expect(await dashboard(writer, owner)).toEqual(dashboardOf([...events, renewed], owner, NOW));
    } finally {
      await writer.close();
    }
    await withDatabases(({ parts, fragments, meta }) => {
      expect(meta.get("format")).toBe(7);
      expect(parts.get(chunkKey)).toBeUndefined();
      const { chunk } = decodeStoredChunk(fragments.get(chunkKey)!)!;
      expect(chunk.licenses.map((l) => [l.id, l.v])).toEqual([
        ["__proto__", 1],
        ["l1", 2],
      ]);
    });
  });
});

describe("a license chunk written before the projection kept chunks in order", () => {
  it("is served in response order (time, then id), tombstones left out", () => {
    const license = (id: string, issuedAt: string) =>
      renderLicense({
        id,
        key: `key-${id}`,
        duration: 30,
        issuedAt,
        expiresAt: "2999-01-01T00:00:00.000Z",
        status: "PENDING",
        services: [],
        projectId: "p1",
        clientId: "c1",
        ownerId: "o1",
        machineId: undefined,
        createdAt: undefined,
      });
    // Appended as they arrived, as the projection filed them before it kept chunks in order.
    const licenses = [
      { id: "b", v: 1, state: license("b", "2026-01-02T00:00:00.000Z") },
      { id: "gone", v: 2, state: null },
      { id: "c", v: 1, state: license("c", "2026-01-01T00:00:00.000Z") },
      { id: "a", v: 1, state: license("a", "2026-01-02T00:00:00.000Z") },
    ];
    const fragment = decodeFragment(encodeFragment({ kind: "licenses", licenses, bytes: 0 })!);
    const ids = (JSON.parse(`[${fragment.body.toString()}]`) as { _id: string }[]).map((l) => l._id);
    expect(ids).toEqual(["c", "a", "b"]);
    expect(fragment.kind === "licenses" && fragment.first).toEqual(["2026-01-01T00:00:00.000Z", "c"]);
  });
});
