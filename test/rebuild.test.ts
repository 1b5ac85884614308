// Rebuilds without downtime, as real processes on one LMDB folder and a real nats-server:
// - `npm run rebuild` while events are published and two query-API processes are read: every read
//   is 200 and complete (never the half-built new generation), live streams hear of the switch, the
//   old generation and its consumer are dropped, and the final dashboards equal the reference;
// - two projectors of a release with a newer projection version, started at once on a read model
//   built by the older one, make one rebuild between them (one new generation, one new consumer).
// MongoDB runs the same code through its own control document; its store-level behaviour is in
// generations.test.ts (these process tests need LMDB's shared folder).
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "nats";
import { publishEvent, type Envelope } from "@keybox/contract";
import type { DashboardBody } from "@keybox/query-api";
import { openReadModel, storeSettings, type ControlRecord } from "@keybox/read-model";
import { connectNats } from "@keybox/runtime";
import { freePort } from "../scripts/natsServer.ts";
import { clientCreated } from "./support/events.ts";
import { randomHistory } from "./support/history.ts";
import { bearer, httpGet } from "./support/http.ts";
import { renderBody, toEvent } from "./support/inMemory.ts";
import { TEST_STREAMS, useNats } from "./support/nats.ts";
import { eventually, TEST_JWT_SECRET, tokenFor } from "./support/pipeline.ts";
import { referenceDashboard } from "./support/reference.ts";
import { spawnQueryApi, spawnService, stopAll, waitUntilReady, type ServiceProcess } from "./support/process.ts";
import { openSse } from "./support/sse.ts";
import { readDashboard } from "./support/stores.ts";

const nats = useNats();
const dirs: string[] = [];
const running: ServiceProcess[] = [];
afterAll(async () => {
  await stopAll(running);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Between the logs' clock (Date.now()) and this process's performance.timeOrigin + now(). */
const CLOCK_SLACK_MS = 100;

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

async function startProjector(env: Record<string, string>): Promise<{ service: ServiceProcess; url: string }> {
  const port = await freePort();
  const service = spawnService("services/projector/src/main.ts", { METRICS_PORT: String(port), ...env });
  running.push(service);
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(url, service);
  return { service, url };
}

/** Publishes `events` in parallel slices (the dashboards do not depend on the order). */
async function publishAll(nc: NatsConnection, events: Envelope[]): Promise<void> {
  const js = nc.jetstream();
  for (let i = 0; i < events.length; i += 200)
    await Promise.all(events.slice(i, i + 200).map((e) => publishEvent(js, e)));
}

/** The control record and the LMDB databases under `dataDir`, read beside the services. */
async function readModelState(dataDir: string): Promise<{ control: ControlRecord }> {
  const readModel = await openReadModel(storeSettings.parse({ DATA_DIR: dataDir }), { readOnly: true });
  try {
    return { control: await readModel.control() };
  } finally {
    await readModel.close();
  }
}

/** The value of one sample line (`name value`) of /metrics, or undefined when absent. */
function sample(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

async function consumerNames(nc: NatsConnection): Promise<string[]> {
  const jsm = await nc.jetstreamManager();
  const names: string[] = [];
  for await (const info of jsm.consumers.list(TEST_STREAMS.eventsStream)) names.push(info.name);
  return names.sort();
}

/**
 * What every complete dashboard shows of the entities no event after the first `first` touches:
 * once those events are all applied, that part of the dashboard never changes again, whatever else
 * has been applied. A generation still replaying the stream lacks some of it.
 */
function settledPart(body: DashboardBody, events: Envelope[], first: number) {
  const touchedLater = new Set(events.slice(first).map((e) => e.data.id));
  const settled = (id: string) => !touchedLater.has(id);
  return body.data
    .filter((c) => settled(c._id))
    .map((c) => ({
      ...c,
      projects: c.projects
        .filter((p) => settled(p._id))
        .map((p) => ({ ...p, licenses: p.licenses.filter((l) => settled(l._id)) })),
    }));
}

describe("npm run rebuild while events are published and dashboards are read", () => {
  it("serves every read whole from the old generation, then from the new one, and drops the old", async () => {
    const OWNERS = ["rbA", "rbB", "rbC", "rbD"];
    const FIRST = 4000;
    const history = randomHistory({ seed: 20261210, owners: OWNERS, events: FIRST + 1000 });
    const dataDir = tempDir("keybox-rebuild-");
    const env = { NATS_URL: nats.url, DATA_DIR: dataDir, PROJECTOR_ACK_WAIT_MS: "2000", JWT_SECRET: TEST_JWT_SECRET };
    const projector = await startProjector(env);
    const apis = await Promise.all([0, 1].map(() => spawnQueryApi(nats.url, dataDir)));
    running.push(...apis.map((a) => a.service));
    const tokens = new Map(await Promise.all(OWNERS.map(async (o) => [o, await tokenFor({ userId: o })] as const)));
    const now = new Date();
    const expectedAfter = (events: Envelope[], ownerId: string) =>
      referenceDashboard(events.map(toEvent), ownerId, now);

    const nc = await connectNats(nats.url, "rebuild-test");
    await publishAll(nc, history.slice(0, FIRST));
    for (const ownerId of OWNERS) {
      const expected = JSON.stringify(expectedAfter(history.slice(0, FIRST), ownerId));
      await eventually(async () => {
        const res = await httpGet(`${apis[0]!.url}/dashboard`, { headers: bearer(tokens.get(ownerId)!) });
        return JSON.stringify(res.body) === expected ? true : undefined;
      }, 60_000);
    }
    const settled = new Map(
      OWNERS.map((o) => [o, JSON.stringify(settledPart(expectedAfter(history.slice(0, FIRST), o), history, FIRST))]),
    );
    const live = await openSse(`${apis[1]!.url}/dashboard/events`, bearer(tokens.get(OWNERS[0]!)!));

    const rebuild = spawnService("services/projector/src/rebuild.ts", env);
    running.push(rebuild);
    // Readers on both APIs, all the while.
    let reading = true;
    let reads = 0;
    let readsDuringRebuild = 0;
    /** The most events replayed the projector's metrics reported while the rebuild ran. */
    let replayedSeen = 0;
    const failures: string[] = [];
    const readers = apis.map(async (api, n) => {
      for (let i = n; reading; i++) {
        const ownerId = OWNERS[i % OWNERS.length]!;
        const rebuilding =
          rebuild.output().includes("rebuilding the read model") && !rebuild.output().includes("stopped rebuilding");
        const res = await httpGet(`${api.url}/dashboard`, { headers: bearer(tokens.get(ownerId)!) });
        reads++;
        if (rebuilding) readsDuringRebuild++;
        if (rebuilding && n === 0) {
          const text = (await httpGet(`${projector.url}/metrics`)).body as string;
          if (/^keybox_projector_rebuild_generation 2$/m.test(text))
            replayedSeen = Math.max(replayedSeen, sample(text, "keybox_projector_rebuild_events_replayed") ?? 0);
        }
        if (res.status !== 200) failures.push(`${api.url} ${ownerId}: ${res.status}`);
        else if (JSON.stringify(settledPart(res.body, history, FIRST)) !== settled.get(ownerId))
          failures.push(`${api.url} ${ownerId}: incomplete (${res.body.clientsCount} clients)`);
      }
    });

    // The rest of the history at a steady rate while the rebuild runs.
    const js = nc.jetstream();
    const started = Date.now();
    for (let i = FIRST; i < history.length; i++) {
      const due = started + ((i - FIRST) * 1000) / 250;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      await publishEvent(js, history[i]!);
    }
    expect(await rebuild.exited).toBe(0);
    reading = false;
    await Promise.all(readers);

    expect(failures).toEqual([]);
    expect(reads).toBeGreaterThan(100);
    expect(readsDuringRebuild).toBeGreaterThan(0);
    expect(replayedSeen).toBeGreaterThan(0);
    // Both processes watch the rebuild; whichever saw it catch up first logged its progress, then
    // switched the readers (the other may have stopped before its first sample).
    expect(rebuild.output() + projector.service.output()).toMatch(
      /"replayed":\d+,"left":\d+,"eventsPerSecond":\d+,"msg":"rebuild progress"/,
    );
    expect(rebuild.output() + projector.service.output()).toMatch(
      /"from":1,"to":2,"msg":"readers switched to the rebuilt generation"/,
    );

    // Readers use generation 2, whose versions are past generation 1's; generation 1 is gone.
    expect((await readModelState(dataDir)).control).toEqual({
      current: { generation: 2, projectionVersion: 1 },
      retired: [],
      lastGeneration: 2,
    });
    expect(await consumerNames(nc)).toEqual(["dashboard-projector-g2"]);
    const switched = await live.next((e) => e.event === "changed" && e.data.all === true, 10_000);
    expect(Number(switched.id)).toBeGreaterThan(2 ** 32);
    live.close();
    // Nothing of generation 2 was announced before readers used it (the rebuild announces nothing).
    const switchLine = (rebuild.output() + projector.service.output())
      .split("\n")
      .find((line) => line.includes('"msg":"readers switched to the rebuilt generation"'))!;
    const switchedAt = JSON.parse(switchLine).time as number;
    const announcedEarly = live.events.filter(
      (e) => Number(e.id) > 2 ** 32 && performance.timeOrigin + e.at < switchedAt - CLOCK_SLACK_MS,
    );
    expect(announcedEarly).toEqual([]);

    // The projector moved to generation 2 and goes on applying events.
    const metrics = (await httpGet(`${projector.url}/metrics`)).body as string;
    expect(metrics).toMatch(/^keybox_projector_read_model_generation 2$/m);
    expect((await httpGet(`${projector.url}/readyz`)).status).toBe(200);
    for (const ownerId of OWNERS) {
      const expected = expectedAfter(history, ownerId);
      for (const api of apis) {
        const body = await eventually(async () => {
          const res = await httpGet(`${api.url}/dashboard`, { headers: bearer(tokens.get(ownerId)!) });
          return JSON.stringify(res.body) === JSON.stringify(expected) ? res.body : undefined;
        }, 30_000).catch(
          async () => (await httpGet(`${api.url}/dashboard`, { headers: bearer(tokens.get(ownerId)!) })).body,
        );
        expect(body).toEqual(expected);
      }
    }
    // Read your own writes waits on the acknowledgement floor of generation 2's consumer now.
    const ack = await publishEvent(js, clientCreated(OWNERS[0]!, "afterRebuild"));
    const fresh = await httpGet(`${apis[1]!.url}/dashboard?minSeq=${ack.seq}`, {
      headers: bearer(tokens.get(OWNERS[0]!)!),
    });
    expect(fresh.headers["keybox-fresh"]).toBe("true");
    expect(fresh.body.data.map((c: { _id: string }) => c._id)).toContain("afterRebuild");
    await nc.close();
  }, 180_000);
});

describe("two projectors of a release with a newer projection version, started at once", () => {
  it("make one rebuild between them, and both go on with the new generation", async () => {
    const durable = "upgrade-projector";
    const dataDir = tempDir("keybox-upgrade-");
    const env = { NATS_URL: nats.url, DATA_DIR: dataDir, PROJECTOR_DURABLE: durable, PROJECTOR_ACK_WAIT_MS: "2000" };
    const history = randomHistory({ seed: 7, owners: ["upA", "upB"], events: 600 });
    const nc = await connectNats(nats.url, "upgrade-test");
    const older = await startProjector(env);
    await publishAll(nc, history);
    await nc.jetstream().publish("keybox.events.upA.client.created", "not json");
    await eventually(async () => ((await httpGet(`${older.url}/readyz`)).body.lag === 0 ? true : undefined), 30_000);
    const deadLettered = 'keybox_projector_events_dead_lettered_total{reason="invalid"}';
    expect(sample((await httpGet(`${older.url}/metrics`)).body, deadLettered)).toBe(1);
    older.service.child.kill("SIGTERM");
    expect(await older.service.exited).toBe(0);

    const newer = await Promise.all([0, 1].map(() => startProjector({ ...env, KEYBOX_TEST_PROJECTION_VERSION: "2" })));
    const mine = async () => (await consumerNames(nc)).filter((name) => name.startsWith(durable));
    // Both replicas take part in the one rebuild; a grace period after the switch the old generation goes.
    const { control } = await eventually(async () => {
      const state = await readModelState(dataDir);
      return state.control.current.generation === 2 && state.control.retired.length === 0 ? state : undefined;
    }, 60_000);
    expect(control).toEqual({ current: { generation: 2, projectionVersion: 2 }, retired: [], lastGeneration: 2 });
    expect(await eventually(async () => ((await mine()).length === 1 ? mine() : undefined))).toEqual([`${durable}-g2`]);
    for (const { service, url } of newer) {
      expect(service.child.exitCode).toBeNull();
      expect((await httpGet(`${url}/readyz`)).body).toMatchObject({ status: "ready", generation: 2 });
      // The older release dead-lettered the invalid event; the rebuild replayed it without doing so again.
      const metrics = (await httpGet(`${url}/metrics`)).body as string;
      expect(sample(metrics, deadLettered) ?? 0).toBe(0);
    }
    const now = new Date();
    const readModel = await openReadModel(storeSettings.parse({ DATA_DIR: dataDir }), { readOnly: true });
    try {
      const store = await readModel.current();
      for (const ownerId of ["upA", "upB"]) {
        const read = await readDashboard(store, ownerId);
        expect(read.version).toBeGreaterThan(2 ** 32);
        expect(renderBody(read.fragments, now)).toEqual(referenceDashboard(history.map(toEvent), ownerId, now));
      }
    } finally {
      await readModel.close();
    }
    await nc.close();
  }, 120_000);
});
