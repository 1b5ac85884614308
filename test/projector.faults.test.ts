// The projector under faults, on a real nats-server and the real LMDB store wrapped to fail or stall
// on purpose: nothing is lost, one bad event does not hold up the rest, no event is retried forever,
// a store outage never dead-letters good events, and what cannot be applied reaches the dead-letter
// stream whatever its size. The commit faults run on both of the projector's ways to commit a batch.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import type { JetStreamManager, NatsConnection } from "nats";
import { ConsumerLostError, deliveryPolicy, ensureConsumer, Projector, projectorSettings } from "@keybox/projector";
import { buildEnvelope, ensureStreams, publishEvent, type Envelope } from "@keybox/contract";
import { partKey, type Commit, type DashboardStore, type RecordKey } from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { connectNats, createLogger, loadConfig } from "@keybox/runtime";
import { register } from "prom-client";
import { clientCreated } from "./support/events.ts";
import { randomHistory } from "./support/history.ts";
import { clientIdsIn, renderBody, toEvent } from "./support/inMemory.ts";
import { TEST_STREAMS, useNats } from "./support/nats.ts";
import { eventually } from "./support/pipeline.ts";
import { referenceDashboard } from "./support/reference.ts";
import { readDashboard } from "./support/stores.ts";

const nats = useNats();

/**
 * The projector's two ways to commit a batch (see applyBatch): LMDB projects it inside its write
 * transaction (the production path); a store without commitInWriteTransaction (MongoDB) has it
 * loaded, projected and committed conditionally.
 */
const COMMIT_PATHS = [
  ["in-transaction", "projected in the write transaction (LMDB, production)"],
  ["optimistic", "committed conditionally (as on MongoDB)"],
] as const;
type CommitPath = (typeof COMMIT_PATHS)[number][0];

/** The real store, with hooks to fail or hold back its commits and write checks. */
interface FaultyStore extends DashboardStore {
  /**
   * Sees each commit where the store would fail it, and fails it by throwing: inside the write
   * transaction, before anything is written, on the in-transaction path; just before the
   * conditional commit on the optimistic one. `handedOverSince`: how many commits were handed to
   * the store after this one, so far; `streamSeq`: the sequence the commit records as applied.
   */
  refuse: (commit: Commit, handedOverSince: number, streamSeq: number) => void;
  /** Holds each commit back before the store starts it, one after another in the order handed over. */
  delay: () => Promise<void>;
  beforeWriteCheck: () => Promise<void>;
}

/** Every member of T, optional ones too (possibly undefined): none can be left out unnoticed. */
type EveryMember<T> = { [K in keyof Required<T>]: T[K] };

/** `inner` with faults, committing on `path` (the optimistic one hides LMDB's write-transaction commit). */
function faulty(inner: LmdbDashboardStore, path: CommitPath): FaultyStore {
  let handedOver = 0;
  let turns = Promise.resolve();
  /**
   * Waits for a commit's turn (the delays of those handed over before it, then its own); gives a
   * count of the commits handed over after it.
   */
  const turn = async () => {
    const index = ++handedOver;
    const mine = turns.then(() => store.delay());
    turns = mine;
    await mine;
    return () => handedOver - index;
  };
  const inTransaction = path === "in-transaction";
  const store: EveryMember<FaultyStore> = {
    refuse: () => {},
    delay: async () => {},
    beforeWriteCheck: async () => {},
    commitsInFlight: inTransaction ? inner.commitsInFlight : undefined,
    load: (keys) => inner.load(keys),
    commit: async (commit, streamSeq) => {
      const handedOverSince = await turn();
      store.refuse(commit, handedOverSince(), streamSeq);
      return inner.commit(commit, streamSeq);
    },
    commitInWriteTransaction: inTransaction
      ? async (prepare, streamSeq) => {
          const handedOverSince = await turn();
          return inner.commitInWriteTransaction((load) => {
            const commit = prepare(load);
            store.refuse(commit, handedOverSince(), streamSeq);
            return commit;
          }, streamSeq);
        }
      : undefined,
    checkWritable: async () => {
      await store.beforeWriteCheck();
      return inner.checkWritable();
    },
    version: (ownerId, clientId) => inner.version(ownerId, clientId),
    versionNow: (ownerId, clientId) => inner.versionNow(ownerId, clientId),
    identity: () => inner.identity(),
    openDashboard: (ownerId, clientId) => inner.openDashboard(ownerId, clientId),
    partStats: (ownerId) => inner.partStats(ownerId),
    appliedSeq: () => inner.appliedSeq(),
    generation: (inner as DashboardStore).generation?.bind(inner),
    close: () => inner.close(),
  };
  return store;
}

async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await register.getMetricsAsJSON()).find((m) => m.name === name);
  const value = metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return value?.value ?? 0;
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

/** A projector committing on `path` to the real LMDB store in `dataDir` (default: a temporary folder of its own). */
async function startProjector(
  commitPath: CommitPath,
  env: Record<string, string>,
  dataDir?: string,
): Promise<{ store: FaultyStore; nc: NatsConnection; projector: Projector }> {
  const dir = dataDir ?? mkdtempSync(path.join(os.tmpdir(), "keybox-faults-"));
  const config = loadConfig(projectorSettings, { NATS_URL: nats.url, DATA_DIR: dir, LOG_LEVEL: "silent", ...env });
  const store = faulty(LmdbDashboardStore.open(dir), commitPath);
  const nc = await connectNats(nats.url, "faults-test");
  const projector = new Projector(nc, store, config, createLogger("test", "silent"));
  await projector.start();
  cleanup.push(async () => {
    await projector.stop();
    await nc.drain();
    await store.close();
    if (!dataDir) rmSync(dir, { recursive: true, force: true });
  });
  return { store, nc, projector };
}

const clientIds = async (store: DashboardStore, owner: string) => clientIdsIn(await readDashboard(store, owner));

async function waitForClients(store: DashboardStore, owner: string, count: number, timeoutMs = 20_000) {
  return eventually(async () => {
    const ids = await clientIds(store, owner);
    return ids.length === count ? ids : undefined;
  }, timeoutMs);
}

interface DeadLetterSeen {
  subject: string;
  size: number;
  headers: Record<string, string>;
}

/** The dead letters of `owner`, read back from the dead-letter stream. */
async function deadLetters(jsm: JetStreamManager, owner: string): Promise<DeadLetterSeen[]> {
  const found: DeadLetterSeen[] = [];
  const { state } = await jsm.streams.info(TEST_STREAMS.dlqStream);
  for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(TEST_STREAMS.dlqStream, { seq }).catch(() => undefined);
    if (!m?.subject.startsWith(`keybox.dlq.${owner}.`)) continue;
    const headers: Record<string, string> = {};
    for (const key of m.header.keys()) headers[key] = m.header.get(key);
    found.push({ subject: m.subject, size: m.data.byteLength, headers });
  }
  return found;
}

/** A write to client "poison" of `owner`: the stream is shared, so other tests' poison events are not it. */
const isPoison = (key: RecordKey, owner: string) =>
  key.type === "part" && key.ownerId === owner && key.clientId === "poison";

const settled = async (jsm: JetStreamManager, durable: string) => {
  const info = await jsm.consumers.info(TEST_STREAMS.eventsStream, durable);
  return info.num_ack_pending === 0 && info.num_pending === 0 ? info : undefined;
};

/** Deliveries the consumer made, redeliveries included (its delivery sequence). */
const deliveries = async (jsm: JetStreamManager, durable: string) =>
  (await jsm.consumers.info(TEST_STREAMS.eventsStream, durable)).delivered.consumer_seq;

/** Publishes an event of `owner` that a crashing replica takes twice without acknowledging it. */
async function eventJetStreamGivesUpOn(durable: string, owner: string, id: string): Promise<number> {
  const admin = await connectNats(nats.url, "faults-admin");
  try {
    await ensureStreams(admin, TEST_STREAMS);
    await ensureConsumer(admin, {
      stream: TEST_STREAMS.eventsStream,
      durable,
      ackWaitMs: 1000,
      maxDeliver: 2,
      maxAckPending: 1000,
    });
    const jsm = await admin.jetstreamManager();
    // Everything already in the stream is someone else's: move this consumer past it.
    const { state } = await jsm.streams.info(TEST_STREAMS.eventsStream);
    const consumer = await admin.jetstream().consumers.get(TEST_STREAMS.eventsStream, durable);
    for (let n = 0; n < state.messages; n++) (await consumer.next({ expires: 2000 }))?.ack();
    const { seq } = await publishEvent(admin.jetstream(), clientCreated(owner, id));
    for (let delivery = 1; delivery <= 2; delivery++) {
      const msg = await consumer.next({ expires: 5000 });
      expect(msg?.seq).toBe(seq);
      expect(msg?.info.deliveryCount).toBe(delivery);
    }
    return seq;
  } finally {
    await admin.close();
  }
}

/** A 1 MiB tmpfs, for a read model on a disk that fills up; or why it cannot be had. */
function smallDisk(): { dir: string; grow(): void; remove(): void } | { skipped: string } {
  if (process.getuid?.() !== 0) return { skipped: "mounting a tmpfs needs root" };
  const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-full-disk-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir], { stdio: "pipe" });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    return { skipped: `mount -t tmpfs failed: ${String((error as Error).message).split("\n")[0]}` };
  }
  return {
    dir,
    grow: () => execFileSync("mount", ["-o", "remount,size=64m", dir]),
    remove: () => {
      execFileSync("umount", [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe.each(COMMIT_PATHS)("%s path: batches %s", (commitPath) => {
  // Owners and durables of their own on each path: the stream is shared by the whole file.
  const own = (name: string) => `${name}-${commitPath}`;
  const start = (env: Record<string, string>, dataDir?: string) => startProjector(commitPath, env, dataDir);

  describe("an event the store refuses", () => {
    it("does not hold up the rest of its batch, and is applied once the store takes it", async () => {
      const owner = own("refusedOnce");
      const { store, nc } = await start({
        PROJECTOR_DURABLE: own("faults-poison"),
        PROJECTOR_BATCH_SIZE: "50",
        PROJECTOR_ACK_WAIT_MS: "1000",
      });
      let poisonAttempts = 0;
      store.refuse = ({ writes }) => {
        if (writes.some((w) => isPoison(w.key, owner))) {
          poisonAttempts++;
          throw new Error("the store refuses this record");
        }
      };
      const js = nc.jetstream();
      // Published together, so they are taken as one batch.
      await Promise.all(["good1", "poison", "good2", "good3"].map((id) => publishEvent(js, clientCreated(owner, id))));
      expect(await waitForClients(store, owner, 3)).toEqual(["good1", "good2", "good3"]);
      await eventually(async () => (poisonAttempts >= 3 ? true : undefined));

      // Once the store takes it, the retried event is applied too: nothing was lost.
      store.refuse = () => {};
      expect(await waitForClients(store, owner, 4)).toContain("poison");
      expect(await deadLetters(await nc.jetstreamManager(), owner)).toEqual([]);
    });

    it("is dead-lettered with the store's reason after max_deliver deliveries, and not retried again", async () => {
      const owner = own("refusedAlways");
      const durable = own("faults-max-deliver");
      const { store, nc } = await start({
        PROJECTOR_DURABLE: durable,
        PROJECTOR_ACK_WAIT_MS: "1000",
        PROJECTOR_MAX_DELIVER: "3",
      });
      const jsm = await nc.jetstreamManager();
      // The consumer was created from the settings: three deliveries, backoff 1 s then 2 s.
      const created = await jsm.consumers.info(TEST_STREAMS.eventsStream, durable);
      expect(created.config.max_deliver).toBe(3);
      expect(created.config.backoff).toEqual([1e9, 2e9]);

      let poisonAttempts = 0;
      const soloAttemptsAt: number[] = []; // the poison event applied on its own: once per delivery
      store.refuse = ({ writes }) => {
        if (writes.some((w) => isPoison(w.key, owner))) {
          poisonAttempts++;
          if (writes.length === 1) soloAttemptsAt.push(Date.now());
          throw new Error("document too large");
        }
      };
      const before = await counter("keybox_projector_events_dead_lettered_total", { reason: "store_refused" });
      const js = nc.jetstream();
      await publishEvent(js, clientCreated(owner, "poison"));
      await publishEvent(js, clientCreated(owner, "fine"));

      const [letter] = await eventually(async () => {
        const found = await deadLetters(jsm, owner);
        return found.length ? found : undefined;
      }, 20_000);
      expect(letter!.subject).toBe(`keybox.dlq.${owner}.client.created`);
      expect(letter!.headers["KeyBox-DLQ-Reason"]).toMatch(/refused it 3 times: document too large/);
      // Handed back with the consumer's backoff: 1 s after the first delivery, 2 s after the second.
      expect(soloAttemptsAt).toHaveLength(3);
      const [first, second, third] = soloAttemptsAt as [number, number, number];
      expect(second - first).toBeGreaterThanOrEqual(900);
      expect(second - first).toBeLessThan(1950); // below the next step (2 s)
      expect(third - second).toBeGreaterThanOrEqual(1800);
      expect(await clientIds(store, owner)).toEqual(["fine"]);
      expect(await counter("keybox_projector_events_dead_lettered_total", { reason: "store_refused" })).toBe(
        before + 1,
      );
      // Acknowledged once dead-lettered: nothing pending, and no further attempts.
      await eventually(() => settled(jsm, durable));
      const attempts = poisonAttempts;
      await sleep(3000);
      expect(poisonAttempts).toBe(attempts);
    });
  });

  describe("several events the store refuses in one batch", () => {
    it("do not keep the rest of the batch from being tried and applied", async () => {
      const owner = own("refusedTwice");
      const { store, nc } = await start({
        PROJECTOR_DURABLE: own("faults-untried"),
        PROJECTOR_ACK_WAIT_MS: "1000",
        PROJECTOR_MAX_DELIVER: "3",
      });
      store.refuse = ({ writes }) => {
        if (writes.some((w) => w.key.type === "part" && w.key.clientId.startsWith("poison")))
          throw new Error("refused");
      };
      const js = nc.jetstream();
      // Published together, so they are taken as one batch, the good one last.
      await Promise.all(["poison1", "poison2", "good"].map((id) => publishEvent(js, clientCreated(owner, id))));
      expect(await waitForClients(store, owner, 1)).toEqual(["good"]);
      const letters = await eventually(async () => {
        const found = await deadLetters(await nc.jetstreamManager(), owner);
        return found.length === 2 ? found : undefined;
      }, 20_000);
      expect(letters.map((l) => l.headers["KeyBox-DLQ-Reason"])).toEqual([
        expect.stringMatching(/refused it 3 times/),
        expect.stringMatching(/refused it 3 times/),
      ]);
    });
  });

  describe("a store outage", () => {
    it("holds every event, dead-letters none, reports not ready, and applies all once the store is back", async () => {
      const owner = own("outageOwner");
      const durable = own("faults-outage");
      const { store, nc, projector } = await start({
        PROJECTOR_DURABLE: durable,
        PROJECTOR_ACK_WAIT_MS: "1000",
        PROJECTOR_MAX_DELIVER: "2",
      });
      const jsm = await nc.jetstreamManager();
      // This consumer starts at the stream's first event: the earlier tests' events are applied
      // before the outage (so the test also runs alone, on an empty stream).
      await eventually(() => settled(jsm, durable), 20_000);
      const outages = await counter("keybox_projector_store_outages_total");
      // Down: every commit fails, and so does the store's own write check.
      let down = true;
      const failWhileDown = () => {
        if (down) throw new Error("disk full");
      };
      store.refuse = failWhileDown;
      store.beforeWriteCheck = async () => failWhileDown();
      const js = nc.jetstream();
      const ids = ["o1", "o2", "o3"];
      for (const id of ids) await publishEvent(js, clientCreated(owner, id));

      await eventually(async () => ((await projector.readiness()).store === "unavailable" ? true : undefined));
      expect((await projector.readiness()).ready).toBe(false);
      // Longer than max_deliver × backoff: had the events been nak'd, they would have run out.
      await sleep(5000);
      expect(await clientIds(store, owner)).toEqual([]);

      down = false;
      expect(await waitForClients(store, owner, 3)).toEqual(ids);
      expect(await deadLetters(jsm, owner)).toEqual([]);
      expect(await counter("keybox_projector_store_outages_total")).toBe(outages + 1);
      await eventually(() => settled(jsm, durable));
      // Held, not handed back: each event was delivered once.
      expect(await deliveries(jsm, durable)).toBe((await jsm.streams.info(TEST_STREAMS.eventsStream)).state.messages);
      expect((await projector.readiness()).ready).toBe(true);
    });
  });

  describe("redelivery timing", () => {
    it("keeps slow batches from being redelivered, at the pace of the consumer's real ack wait", async () => {
      const durable = own("faults-slow");
      // The consumer already exists with a 1 s ack wait; this process is configured with 30 s, so
      // heartbeats paced by the environment would come too late.
      const admin = await connectNats(nats.url, "faults-admin");
      await ensureStreams(admin, TEST_STREAMS);
      await ensureConsumer(admin, {
        stream: TEST_STREAMS.eventsStream,
        durable,
        ackWaitMs: 1000,
        maxDeliver: 3,
        maxAckPending: 1000,
      });
      await admin.close();

      const received = await counter("keybox_projector_events_received_total");
      const { store, nc } = await start({
        PROJECTOR_DURABLE: durable,
        PROJECTOR_BATCH_SIZE: "20",
        PROJECTOR_ACK_WAIT_MS: "30000",
      });
      // Each commit takes longer than the ack wait, so everything behind it waits several ack waits.
      store.delay = () => sleep(1200);
      const js = nc.jetstream();
      const jsm = await nc.jetstreamManager();
      const before = (await jsm.streams.info(TEST_STREAMS.eventsStream)).state.messages;
      const owner = own("slowOwner");
      const ids = Array.from({ length: 100 }, (_, i) => `slow${String(i).padStart(3, "0")}`);
      await Promise.all(ids.map((id) => publishEvent(js, clientCreated(owner, id))));
      await waitForClients(store, owner, ids.length, 60_000);
      // Every event in the stream (this test's and the earlier tests') was taken once: none came
      // back while waiting.
      expect((await counter("keybox_projector_events_received_total")) - received).toBe(before + ids.length);
      expect(await deliveries(jsm, durable)).toBe(before + ids.length);
    });
  });

  describe("an event JetStream gave up on", () => {
    // JetStream gave up on the event because its deliveries crashed (maxDeliver reached).
    it("is applied when the store takes it, with no dead letter", async () => {
      const owner = own("crashOwner");
      await eventJetStreamGivesUpOn(own("faults-crashes"), owner, "crasher");
      // A healthy replica is running when JetStream gives up (after the second ack wait, 2 s).
      const { store, nc } = await start({ PROJECTOR_DURABLE: own("faults-crashes") });
      expect(await waitForClients(store, owner, 1)).toEqual(["crasher"]);
      expect(await deadLetters(await nc.jetstreamManager(), owner)).toEqual([]);
    });

    it("is dead-lettered with both reasons when the store then refuses it", async () => {
      const owner = own("crashRefusedOwner");
      const seq = await eventJetStreamGivesUpOn(own("faults-crashes-refused"), owner, "crasher");
      const { store, nc } = await start({ PROJECTOR_DURABLE: own("faults-crashes-refused") });
      store.refuse = ({ writes }) => {
        if (writes.some((w) => w.key.type === "part" && w.key.ownerId === owner)) throw new Error("document too large");
      };
      const [letter] = await eventually(async () => {
        const found = await deadLetters(await nc.jetstreamManager(), owner);
        return found.length ? found : undefined;
      });
      expect(letter!.headers["KeyBox-DLQ-Reason"]).toMatch(
        /not acknowledged after 2 deliveries; last attempt: document too large/,
      );
      expect(letter!.headers["KeyBox-Original-Seq"]).toBe(String(seq));
    });
  });

  describe("a full disk under the LMDB read model", () => {
    // Mounted by the test itself, so that a run that leaves it out leaves no mount behind.
    it("is an outage: events are held, none dead-lettered, all applied once there is room again", async ({ skip }) => {
      const disk = smallDisk();
      if ("skipped" in disk) {
        console.log(`SKIPPED full-disk test: ${disk.skipped}`);
        return skip();
      }
      cleanup.push(async () => disk.remove());
      const owner = own("fullDiskOwner");
      const { store, nc, projector } = await start({ PROJECTOR_DURABLE: own("faults-full-disk") }, disk.dir);
      const js = nc.jetstream();
      // 60 clients of 40 KB each: more than the 1 MiB disk holds.
      const big = (id: string): Envelope =>
        buildEnvelope({
          entity: "client",
          action: "created",
          version: 1,
          data: {
            id,
            ownerId: owner,
            name: "x".repeat(40 * 1024),
            email: `${id}@x.io`,
            createdAt: "2024-01-01T00:00:00.000Z",
          },
        });
      const ids = Array.from({ length: 60 }, (_, i) => `full${String(i).padStart(2, "0")}`);
      for (const id of ids) await publishEvent(js, big(id));
      await eventually(async () => ((await projector.readiness()).store === "unavailable" ? true : undefined), 20_000);
      const appliedWhileFull = (await clientIds(store, owner)).length;
      expect(appliedWhileFull).toBeLessThan(ids.length);

      disk.grow();
      expect(await waitForClients(store, owner, ids.length, 60_000)).toEqual(ids);
      expect(await deadLetters(await nc.jetstreamManager(), owner)).toEqual([]);
      expect((await projector.readiness()).store).toBe("ok");
    });
  });
});

describe("a batch the store refuses while the next one is already handed over (in the write transaction)", () => {
  it("loses nothing: the next batch is applied once, the refused event dead-lettered", async () => {
    const owners = ["pipelinedA", "pipelinedB", "pipelinedC"];
    const durable = "faults-pipelined";
    const { store, nc } = await startProjector("in-transaction", {
      PROJECTOR_DURABLE: durable,
      PROJECTOR_BATCH_SIZE: "5",
      PROJECTOR_ACK_WAIT_MS: "1000",
      PROJECTOR_MAX_DELIVER: "3",
    });
    const jsm = await nc.jetstreamManager();
    // The earlier tests' events first (this consumer starts at the stream's first event).
    await eventually(() => settled(jsm, durable), 30_000);

    const history = randomHistory({ seed: 20261201, owners, events: 80 });
    const poison = clientCreated(owners[0]!, "poison");
    let refusedWithNextHandedOver = 0;
    store.refuse = ({ writes }, handedOverSince) => {
      if (!writes.some((w) => isPoison(w.key, owners[0]!))) return;
      if (handedOverSince > 0) refusedWithNextHandedOver++;
      throw new Error("document too large");
    };
    // Each commit waits a little for the store (as for a write lock held elsewhere), so the next
    // batch is handed over before the one holding the poison event is refused.
    store.delay = () => sleep(50);
    const js = nc.jetstream();
    // Published together, so they are taken in batches of five as fast as the store takes them.
    await Promise.all([...history.slice(0, 40), poison, ...history.slice(40)].map((e) => publishEvent(js, e)));

    const letters = await eventually(async () => {
      const found = await deadLetters(jsm, owners[0]!);
      return found.length ? found : undefined;
    }, 20_000);
    await eventually(() => settled(jsm, durable), 20_000);
    expect(refusedWithNextHandedOver).toBeGreaterThan(0);
    expect(letters).toEqual([
      expect.objectContaining({
        subject: `keybox.dlq.${owners[0]}.client.created`,
        headers: expect.objectContaining({ "KeyBox-DLQ-Reason": expect.stringMatching(/refused it 3 times/) }),
      }),
    ]);
    // Every other event was delivered once and acknowledged: only the refused one came back (twice).
    expect(await deliveries(jsm, durable)).toBe((await jsm.streams.info(TEST_STREAMS.eventsStream)).state.messages + 2);
    // And applied: each dashboard is what the events other than the refused one describe.
    const now = new Date();
    for (const owner of owners) {
      const expected = referenceDashboard(history.map(toEvent), owner, now);
      expect(expected.clientsCount).toBeGreaterThan(0);
      expect(renderBody((await readDashboard(store, owner)).fragments, now)).toEqual(expected);
    }
  });
});

describe("a batch with nothing left to write (committed conditionally, as on MongoDB)", () => {
  it("is committed all the same (its reads and stream sequence), and acknowledged only after that", async () => {
    const owner = "supersededOwner";
    const durable = "faults-superseded";
    const { store, nc } = await startProjector("optimistic", {
      PROJECTOR_DURABLE: durable,
      PROJECTOR_ACK_WAIT_MS: "1000",
    });
    const jsm = await nc.jetstreamManager();
    const js = nc.jetstream();
    await publishEvent(js, clientCreated(owner, "c1"));
    await waitForClients(store, owner, 1);
    await eventually(() => settled(jsm, durable), 20_000);

    // The same event again, under another message id: superseded, so there is nothing to write.
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let held = 0;
    store.delay = async () => {
      held++;
      await released;
    };
    const emptyCommits: { reads: RecordKey[]; streamSeq: number }[] = [];
    store.refuse = (commit, _handedOverSince, streamSeq) => {
      if (commit.writes.length === 0) emptyCommits.push({ reads: commit.reads.map((r) => r.key), streamSeq });
    };
    const { seq } = await publishEvent(js, clientCreated(owner, "c1"));
    await eventually(async () => (held > 0 ? true : undefined));
    // Not acknowledged while its commit is in hand.
    await sleep(500);
    expect((await jsm.consumers.info(TEST_STREAMS.eventsStream, durable)).num_ack_pending).toBe(1);
    release();
    await eventually(() => settled(jsm, durable));
    expect(emptyCommits).toEqual([{ reads: [partKey(owner, "c1")], streamSeq: seq }]);
    expect(await clientIds(store, owner)).toEqual(["c1"]);
  });
});

describe("dead letters", () => {
  it("keep an invalid event as large as NATS allows: truncated, marked, with its original size", async () => {
    const owner = "hugeOwner";
    const durable = "faults-huge";
    const { store, nc } = await startProjector("in-transaction", {
      PROJECTOR_DURABLE: durable,
      PROJECTOR_ACK_WAIT_MS: "1000",
    });
    const js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    const size = 1_048_376; // accepted by a server whose max_payload is 1 MiB
    expect(nc.info!.max_payload).toBeGreaterThanOrEqual(size);
    await js.publish(`keybox.events.${owner}.client.created`, new Uint8Array(size).fill(0x7b));
    await publishEvent(js, clientCreated(owner, "afterHuge"));

    expect(await waitForClients(store, owner, 1)).toEqual(["afterHuge"]);
    const [letter] = await eventually(async () => {
      const found = await deadLetters(jsm, owner);
      return found.length ? found : undefined;
    });
    expect(letter!.headers["KeyBox-DLQ-Reason"]).toMatch(/too large: 1048376 bytes/);
    expect(letter!.headers["KeyBox-DLQ-Truncated"]).toBe("true");
    expect(letter!.headers["KeyBox-Original-Size"]).toBe(String(size));
    expect(letter!.size).toBeGreaterThan(900 * 1024);
    expect(letter!.size).toBeLessThan(size);
    await eventually(() => settled(jsm, durable));
    expect(await deliveries(jsm, durable)).toBe((await jsm.streams.info(TEST_STREAMS.eventsStream)).state.messages);
  });
});

describe("its durable consumer", () => {
  it("deleted: readiness says so at once, and the projector reports that it cannot go on", async () => {
    const durable = "faults-deleted";
    const { nc, projector } = await startProjector("in-transaction", { PROJECTOR_DURABLE: durable });
    expect(await projector.readiness()).toMatchObject({ ready: true, consumer: "ok" });
    await (await nc.jetstreamManager()).consumers.delete(TEST_STREAMS.eventsStream, durable);
    const failure = await projector.failed;
    expect(failure).toBeInstanceOf(ConsumerLostError);
    expect(await projector.readiness()).toMatchObject({ ready: false, consumer: "missing" });
  });

  it("is read back as the server has it, also when it was created without a limit or a backoff", () => {
    const info = (config: Record<string, unknown>) => ({ config }) as unknown as Parameters<typeof deliveryPolicy>[0];
    expect(deliveryPolicy(info({ ack_wait: 30e9, max_deliver: -1 }))).toEqual({
      ackWaitMs: 30_000,
      maxDeliver: 0,
      backoffMs: [30_000],
    });
    expect(deliveryPolicy(info({ ack_wait: 1e9, max_deliver: 3, backoff: [1e9, 2e9] }))).toEqual({
      ackWaitMs: 1000,
      maxDeliver: 3,
      backoffMs: [1000, 2000],
    });
  });
});
