// The LMDB adapter's own commit mechanics. "Acknowledged ⇒ durable": the projector acknowledges
// events once their commit resolves, so a commit must resolve only after it is on disk. LMDB
// flushes the data before it writes the commit's meta page; the store flushes the meta page after
// it, off the write lock, and a flush that fails there is an outage (held back here by intercepting
// the environment's asynchronous sync). A batch with nothing left to write (its events applied by a
// commit whose flush failed) is not acknowledged until a flush succeeds.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Database } from "lmdb";
import { afterAll, describe, expect, it } from "vitest";
import { buildEnvelope } from "@keybox/contract";
import { applyBatch } from "@keybox/projector";
import { isBrokenStore, keyId, partKey, registerKey, StoreUnavailableError, type Part } from "@keybox/read-model";
import { committed, LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { clientCreated, clientEvent, licenseEvent, projectCreated } from "./support/events.ts";
import { dashboardOf, renderBody, toEvent } from "./support/inMemory.ts";
import { REPO_ROOT } from "./support/process.ts";
import { readDashboard } from "./support/stores.ts";

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

/** Runs `use` on the store in `dir`, closing the store after, whatever happens. */
async function withStore(use: (store: LmdbDashboardStore) => Promise<void>): Promise<void> {
  const store = LmdbDashboardStore.open(dir);
  try {
    await use(store);
  } finally {
    await store.close();
  }
}

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

const WRITER = "test/support/lmdbWriter.ts";

/**
 * An strace -f trace's system calls in the order they returned, without the process ids: a call
 * that blocked, split into `<unfinished ...>` and `<... name resumed>` lines, joined again.
 */
function returnedCalls(trace: string): string[] {
  const unfinished = new Map<string, string>();
  const calls: string[] = [];
  for (const line of trace.split("\n")) {
    const [, pid, call] = /^(\d+) +(.*)$/.exec(line) ?? []; // strace pads shorter pids
    if (pid === undefined || call === undefined) continue;
    if (call.endsWith(" <unfinished ...>")) unfinished.set(pid, call.slice(0, -" <unfinished ...>".length));
    else if (call.startsWith("<... ")) calls.push(`${unfinished.get(pid) ?? ""}${call.slice(call.indexOf(">") + 1)}`);
    else calls.push(call);
  }
  return calls;
}

/** Whether strace is here and may trace a child of this process. */
function straceWorks(): boolean {
  return spawnSync("strace", ["-f", "-e", "trace=none", "true"], { stdio: "ignore" }).status === 0;
}

describe("an LMDB commit", () => {
  it("resolves only once it is on disk, its data flushed before the meta page that makes it the committed state", async ({
    skip,
  }) => {
    // LMDB's commit writes the data pages, flushes them, then writes the meta page; the store
    // flushes again (the meta page) before the commit resolves. That happens on lmdb-js's write
    // thread and a libuv thread: only a trace of the process's system calls shows it. A writer
    // commits three times, printing before and after each commit.
    if (!straceWorks()) {
      console.log("SKIPPED the commit-flush trace: strace is not installed or cannot trace here");
      return skip();
    }
    const trace = path.join(dir, "commit.trace");
    const syscalls = "trace=write,writev,pwrite64,pwritev,pwritev2,fdatasync,fsync";
    const traced = spawnSync(
      "strace",
      // -y: descriptors with the paths they are open on.
      ["-f", "-y", "-e", syscalls, "-o", trace, process.execPath, "--import", "tsx", WRITER]
        // Three commits of 20 clients by owner o1 to a folder of their own.
        .concat([path.join(dir, "traced"), "o1", "20", "3"]),
      { cwd: REPO_ROOT, encoding: "utf8", timeout: 60_000 },
    );
    expect(traced.status, traced.stderr).toBe(0);
    const calls = returnedCalls(readFileSync(trace, "utf8"));
    const writesData = (call: string) => /^(?:write|writev|pwrite64|pwritev2?)\(\d+<[^>]*\/data\.mdb>,/.test(call);
    const flushesData = (call: string) => /^(?:fdatasync|fsync)\(\d+<[^>]*\/data\.mdb>\) += 0$/.test(call);
    const printed = (text: string) =>
      calls.findIndex((call) => /^write\(1</.test(call) && call.includes(`"${text}\\n"`));
    for (const n of [1, 2, 3]) {
      const commit = calls.slice(printed(`committing ${n}`), printed(`committed ${n}`));
      expect(commit.length, `commit ${n} not traced`).toBeGreaterThan(0);
      // The meta page is the commit's last write to the data file.
      const meta = commit.findLastIndex(writesData);
      const lastData = commit.slice(0, meta).findLastIndex(writesData);
      expect(lastData, `commit ${n} wrote no data before its meta page`).toBeGreaterThanOrEqual(0);
      expect(commit.slice(lastData, meta).some(flushesData), `commit ${n}: data not flushed before its meta page`).toBe(
        true,
      );
      expect(commit.slice(meta).some(flushesData), `commit ${n}: resolved before its meta page was flushed`).toBe(true);
    }
  });
  it("resolves only once the sync after it is done", () =>
    withStore(async (store) => {
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
    }));

  it("fails as an outage when the flush fails", () =>
    withStore(async (store) => {
      const { held } = holdSyncs(store);
      const pending = store.commit(
        { writes: [{ key: partKey("o1", "c2"), value: client("c2"), baseRev: 0 }], reads: [] },
        2,
      );
      await until(() => held.length === 1);
      held[0]!(new Error("EIO: i/o error, fsync"));
      await expect(pending).rejects.toBeInstanceOf(StoreUnavailableError);
    }));
});

describe("a batch whose commit was not flushed", () => {
  it("is not taken for applied when retried: a retry with nothing left to write still waits for a flush", () =>
    withStore(async (store) => {
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
    }));
});

describe("batches on LMDB", () => {
  it("are prepared in the write transaction: concurrent ones keep each other's writes and never conflict", () =>
    withStore(async (store) => {
      const owner = "o5";
      const parents = [clientCreated(owner, "c1"), projectCreated(owner, "p1", { clientId: "c1" })];
      // Each batch renames the client and adds two licenses to the same project (the same chunk).
      const batches = Array.from({ length: 20 }, (_, i) => [
        clientEvent(owner, "c1", { name: `name ${i + 2}` }, { version: i + 2 }),
        licenseEvent(owner, `l${2 * i}`, { clientId: "c1", projectId: "p1" }),
        licenseEvent(owner, `l${2 * i + 1}`, { clientId: "c1", projectId: "p1" }),
      ]);
      await applyBatch(store, parents.map(toEvent), 1);
      const outcomes = await Promise.all(batches.map((batch, i) => applyBatch(store, batch.map(toEvent), i + 2)));
      expect(outcomes.map((o) => o.conflicts)).toEqual(batches.map(() => 0));
      const now = new Date();
      expect(renderBody((await readDashboard(store, owner)).fragments, now)).toEqual(
        dashboardOf([...parents, ...batches.flat()], owner, now),
      );
    }));
});

describe("a client's version on LMDB", () => {
  it("is a record in `meta` only while the client has a part: its last part's deletion removes it", () =>
    withStore(async (store) => {
      // Where the README says client versions are: [ownerId, "c", clientId] in the database `meta`.
      const meta = (store as unknown as { meta: { get(key: string[]): number | undefined } }).meta;
      const record = () => meta.get(["o6", "c", "c1"]);
      await store.commit({ writes: [{ key: partKey("o6", "c1"), value: client("c1"), baseRev: 0 }], reads: [] }, 1);
      expect(record()).toBe(1);
      const [part] = await store.load([partKey("o6", "c1")]);
      await store.commit({ writes: [{ key: partKey("o6", "c1"), value: null, baseRev: part!.rev }], reads: [] }, 2);
      expect(record()).toBeUndefined();
    }));
});

describe("a broken LMDB environment", () => {
  it("is told from an outage: MDB_PANIC ends the process (a new one opens it afresh), a full disk is retried", () => {
    // As lmdb-js reports it once a commit has failed to update the meta page.
    const panic = new Error("Invalid argument: MDB_PANIC: Update of meta page failed or environment had fatal error");
    expect(isBrokenStore(panic)).toBe(true);
    expect(isBrokenStore(new StoreUnavailableError("LMDB cannot write: ENOSPC: no space left on device"))).toBe(false);
    expect(isBrokenStore("MDB_PANIC")).toBe(false);
  });
});

describe("a write transaction whose commit fails", () => {
  it("rejects with LMDB's own error, and leaves no rejection unhandled (which would end the process)", async () => {
    // As lmdb-js fails a commit: the transaction with a generic error, LMDB's error as a second
    // promise. Left unhandled, that one ends a service (a projector did so when two replicas dropped
    // a retired generation at once) and fails this run.
    const lmdbError = Object.assign(new Error("MDB_BAD_TXN: Transaction must abort, has a child, or is invalid"), {
      code: -30782,
    });
    const commitError = Promise.reject(lmdbError);
    const transaction = Promise.reject(
      Object.assign(new Error("Commit failed (see commitError for details)"), { commitError }),
    );
    await expect(committed(transaction)).rejects.toBe(lmdbError);
    // A transaction whose body threw is rejected with what it threw.
    const thrown = new Error("refused");
    await expect(committed(Promise.reject(thrown))).rejects.toBe(thrown);
  });
});

describe("records a batch writes on LMDB", () => {
  /** The store's databases, as it opens them. */
  const databasesOf = (store: LmdbDashboardStore) =>
    store as unknown as Record<"parts" | "registers" | "fragments", Database<unknown, (string | number)[]>>;
  const range = (ownerId: string) => ({ start: [ownerId], end: [ownerId, "~"] });

  it("are counted in the bytes it reports as they are stored", () =>
    withStore(async (store) => {
      const owner = "o7";
      const place = { clientId: "c1", projectId: "p1" };
      const events = [
        clientCreated(owner, "c1"),
        projectCreated(owner, "p1", { clientId: "c1" }),
        licenseEvent(owner, "l1", place),
        licenseEvent(owner, "l2", place),
      ];
      const outcome = await applyBatch(store, events.map(toEvent), 1);
      let stored = 0;
      const { parts, registers, fragments } = databasesOf(store);
      for (const db of [parts, registers, fragments])
        for (const key of db.getKeys(range(owner))) stored += db.getBinary(key)!.length;
      expect(stored).toBeGreaterThan(0);
      expect(outcome.written.bytes).toBe(stored);
    }));

  it("leave no record of a chunk in `parts` once it holds a live license again after holding none", () =>
    withStore(async (store) => {
      const owner = "o8";
      const place = { clientId: "c1", projectId: "p1" };
      const chunkKey = [owner, "c1", "p1", 1];
      const { parts, fragments } = databasesOf(store);
      const created = [
        clientCreated(owner, "c1"),
        projectCreated(owner, "p1", place),
        licenseEvent(owner, "l1", place),
      ];
      await applyBatch(store, created.map(toEvent), 1);
      const deleted = buildEnvelope({
        entity: "license",
        action: "deleted",
        version: 2,
        data: { id: "l1", ownerId: owner, ...place },
      });
      await applyBatch(store, [toEvent(deleted)], 2);
      // Its tombstone only: a record of `parts`, no fragment.
      expect(parts.get(chunkKey)).toBeDefined();
      expect(fragments.get(chunkKey)).toBeUndefined();

      const again = licenseEvent(owner, "l2", place);
      await applyBatch(store, [toEvent(again)], 3);
      expect(parts.get(chunkKey)).toBeUndefined();
      expect(fragments.get(chunkKey)).toBeDefined();
      expect(renderBody((await readDashboard(store, owner)).fragments, new Date())).toEqual(
        dashboardOf([...created, deleted, again], owner, new Date()),
      );
    }));
});

describe("a batch on LMDB", () => {
  it("reads only what each event needs, each record once, as the rules ask: an update in its place reads its project's register, head and chunk", () =>
    withStore(async (store) => {
      const owner = "o9";
      const place = { clientId: "c1", projectId: "p1" };
      const created = [
        clientCreated(owner, "c1"),
        projectCreated(owner, "p1", place),
        ...["l1", "l2", "l3"].map((id) => licenseEvent(owner, id, place)),
      ];
      await applyBatch(store, created.map(toEvent), 1);
      // Each load the store is asked for: reading through, one record at a time, as the rules ask for it
      // (not a round of records, after which the event would be projected again).
      const loads: string[][] = [];
      const inTransaction = store.commitInWriteTransaction.bind(store);
      store.commitInWriteTransaction = (prepare, seq) =>
        inTransaction(
          (load) =>
            prepare((keys) => {
              loads.push(keys.map(keyId));
              return load(keys);
            }),
          seq,
        );
      const renewed = licenseEvent(owner, "l2", { ...place, duration: 48 }, { version: 2, action: "renewed" });
      const added = licenseEvent(owner, "l4", place);
      await applyBatch(store, [toEvent(renewed), toEvent(added)], 2);
      expect(loads).toEqual([
        [keyId(registerKey(owner, "project", "p1"))],
        [keyId(partKey(owner, "c1", "p1"))],
        [keyId(partKey(owner, "c1", "p1", 1))],
        [keyId(registerKey(owner, "license", "l4"))], // a new license: where is it filed already?
      ]);
      expect(renderBody((await readDashboard(store, owner)).fragments, new Date())).toEqual(
        dashboardOf([...created, renewed, added], owner, new Date()),
      );
    }));
});
