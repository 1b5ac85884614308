// A reader (the query API) opens the read model without writing to it: on LMDB it never records
// the stored format, so only a writer (the projector) decides what a new store holds.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { open } from "lmdb";
import { afterAll, describe, expect, it } from "vitest";
import { READ_MODEL_FORMAT } from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";

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
    expect((await reader.readDashboard("anyOwner")).fragments).toEqual([]);
    await reader.close();
    expect(await recordedFormat()).toBeUndefined();

    const writer = LmdbDashboardStore.open(dir);
    await writer.close();
    expect(await recordedFormat()).toBe(READ_MODEL_FORMAT);
  });
});
