// The read model's stored format, on LMDB: a store of format 5 (which also kept a `revisions`
// database) is read as it is by a reader and upgraded in place by a writer; a store of any other
// format, older or newer, is refused at start by both, saying how to rebuild it.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { open, type RootDatabase } from "lmdb";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyBatch } from "@keybox/projector";
import {
  decodeFragment,
  encodeFragment,
  READ_MODEL_FORMAT,
  renderLicense,
  type DashboardStore,
} from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { NOW } from "./support/arbitraries.ts";
import { clientCreated, clientEvent, projectCreated } from "./support/events.ts";
import { dashboardOf, renderBody, toEvent } from "./support/inMemory.ts";
import { readDashboard } from "./support/stores.ts";

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
   * revision in a `revisions` database: one is left there as it did.
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

  const dashboard = async (store: DashboardStore) => renderBody((await readDashboard(store, owner)).fragments, NOW);

  it.each([4, READ_MODEL_FORMAT + 1])("of format %i is refused at start, saying how to rebuild it", async (format) => {
    await storedInFormat(format);
    const refusal = new RegExp(`has format ${format} and this version needs format ${READ_MODEL_FORMAT}: delete it`);
    expect(() => LmdbDashboardStore.open(dir)).toThrow(refusal);
    expect(() => LmdbDashboardStore.open(dir, { readOnly: true })).toThrow(refusal);
    expect((await stored()).format).toBe(format);
  });

  it("of format 5 is read as it is by a reader, and upgraded in place by a writer", async () => {
    expect(READ_MODEL_FORMAT).toBe(6);
    await storedInFormat(5);
    const expected = dashboardOf(events, owner, NOW);
    const reader = LmdbDashboardStore.open(dir, { readOnly: true });
    expect(await dashboard(reader)).toEqual(expected);
    await reader.close();
    expect(await stored()).toEqual({ format: 5, databases: expect.arrayContaining(["revisions"]) });

    const writer = LmdbDashboardStore.open(dir);
    try {
      expect(await dashboard(writer)).toEqual(expected);
      const renamed = clientEvent(owner, "c1", { name: "renamed" }, { version: 2 });
      expect((await applyBatch(writer, [toEvent(renamed)], 2)).applied).toBe(1);
      expect(await dashboard(writer)).toEqual(dashboardOf([...events, renamed], owner, NOW));
    } finally {
      await writer.close();
    }
    const upgraded = await stored();
    expect(upgraded.format).toBe(6);
    expect(upgraded.databases).not.toContain("revisions");
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
