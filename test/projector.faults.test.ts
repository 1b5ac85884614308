// The projector under store faults, on a real nats-server and the real LMDB store wrapped to fail
// or stall on purpose: nothing is lost, one bad event does not hold up the rest, and slow commits
// do not make JetStream redeliver what is waiting.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Projector } from "@keybox/projector";
import {
  buildEnvelope,
  connectNats,
  createLogger,
  loadConfig,
  LmdbDashboardStore,
  publishEvent,
  type Commit,
  type DashboardStore,
  type Envelope,
  type NatsConnection,
} from "@keybox/shared";
import { register } from "prom-client";
import { useNats } from "./support/nats.ts";
import { eventually } from "./support/pipeline.ts";

const nats = useNats();
const OWNER = "faultOwner";
const clientEvent = (id: string): Envelope =>
  buildEnvelope({ entity: "client", action: "created", version: 1, data: { id, ownerId: OWNER, name: id, email: `${id}@x.io`, createdAt: "2024-01-01T00:00:00.000Z" } });

/** The real store, with a hook that runs before each commit (to fail or stall it). */
interface FaultyStore extends DashboardStore {
  beforeCommit: (commit: Commit) => Promise<void>;
}

function faulty(inner: DashboardStore): FaultyStore {
  const store: FaultyStore = {
    beforeCommit: async () => {},
    load: (keys) => inner.load(keys),
    commit: async (commit, streamSeq) => {
      await store.beforeCommit(commit);
      return inner.commit(commit, streamSeq);
    },
    readDashboard: (ownerId, clientId) => inner.readDashboard(ownerId, clientId),
    partStats: (ownerId) => inner.partStats(ownerId),
    appliedSeq: () => inner.appliedSeq(),
    close: () => inner.close(),
  };
  return store;
}

async function counter(name: string): Promise<number> {
  const metric = (await register.getMetricsAsJSON()).find((m) => m.name === name);
  return metric?.values[0]?.value ?? 0;
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function startProjector(env: Record<string, string>): Promise<{ store: FaultyStore; nc: NatsConnection }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-faults-"));
  const config = loadConfig({ NATS_URL: nats.url, DATA_DIR: dir, LOG_LEVEL: "silent", ...env });
  const store = faulty(LmdbDashboardStore.open(dir));
  const nc = await connectNats(nats.url, "faults-test");
  const projector = new Projector(nc, store, config, createLogger("test", "silent"));
  await projector.start();
  cleanup.push(async () => {
    await projector.stop();
    await nc.drain();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, nc };
}

const clientNames = async (store: DashboardStore) =>
  (await store.readDashboard(OWNER)).parts.map((p) => (p.part.kind === "client" ? p.part.client.state?.id : undefined)).sort();

describe("the projector under store faults", () => {
  it("applies the rest of a batch when one event keeps failing, and retries that one", async () => {
    const { store, nc } = await startProjector({ PROJECTOR_DURABLE: "faults-poison", PROJECTOR_BATCH_SIZE: "50" });
    let poisonAttempts = 0;
    store.beforeCommit = async ({ writes }) => {
      if (writes.some((w) => w.key.type === "part" && w.key.clientId === "poison")) {
        poisonAttempts++;
        throw new Error("the store refuses this record");
      }
    };
    const js = nc.jetstream();
    // Published together, so they are taken as one batch.
    await Promise.all(["good1", "poison", "good2", "good3"].map((id) => publishEvent(js, clientEvent(id))));
    expect(await eventually(async () => ((await clientNames(store)).length === 3 ? clientNames(store) : undefined))).toEqual(["good1", "good2", "good3"]);
    await eventually(async () => (poisonAttempts >= 3 ? true : undefined));

    // Once the store takes it, the retried event is applied too: nothing was lost.
    store.beforeCommit = async () => {};
    expect(await eventually(async () => ((await clientNames(store)).length === 4 ? clientNames(store) : undefined))).toContain("poison");
  });

  it("does not let JetStream redeliver events that wait behind slow commits", async () => {
    const received = await counter("keybox_projector_events_received_total");
    const { store, nc } = await startProjector({ PROJECTOR_DURABLE: "faults-slow", PROJECTOR_BATCH_SIZE: "20", PROJECTOR_ACK_WAIT_MS: "1000" });
    // Each commit takes longer than the ack wait, so everything behind it waits several ack waits.
    store.beforeCommit = () => new Promise((resolve) => setTimeout(resolve, 1200));
    const js = nc.jetstream();
    const before = (await (await nc.jetstreamManager()).streams.info("KEYBOX_EVENTS")).state.messages;
    const ids = Array.from({ length: 100 }, (_, i) => `slow${String(i).padStart(3, "0")}`);
    await Promise.all(ids.map((id) => publishEvent(js, clientEvent(id))));
    await eventually(async () => ((await clientNames(store)).filter((n) => n?.startsWith("slow")).length === ids.length ? true : undefined), 60_000);
    // Every event in the stream (this test's and the earlier test's) was taken once: none came
    // back while waiting.
    expect((await counter("keybox_projector_events_received_total")) - received).toBe(before + ids.length);
    expect((await (await nc.jetstreamManager()).consumers.info("KEYBOX_EVENTS", "faults-slow")).num_redelivered).toBe(0);
  });
});
