// GET /dashboard/events through real query-API processes and a real nats-server: the projector runs
// beside one API (in this process), and the streams are read from other API processes on the same
// LMDB folder, as a replica behind a load balancer would serve them.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboardChangedSubject } from "@keybox/contract";
import { applyBatch } from "@keybox/projector";
import { openReadModel, requestRebuild, storeSettings, switchTo } from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { freePort, startLocalNats } from "../scripts/natsServer.ts";
import { clientCreated, clientEvent } from "./support/events.ts";
import { bearer, httpGet, rawRequest } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { eventually, startPipeline, tokenFor, type Pipeline } from "./support/pipeline.ts";
import { spawnQueryApi, stopAll, type ServiceProcess } from "./support/process.ts";
import { openSse, type SseStream } from "./support/sse.ts";
import { toEvent } from "./support/inMemory.ts";

const nats = useNats();
let pipeline: Pipeline;
const running: ServiceProcess[] = [];
const streams: SseStream[] = [];

beforeAll(async () => {
  pipeline = await startPipeline(nats.url);
});
afterAll(async () => {
  for (const stream of streams) stream.close();
  await stopAll(running);
  await pipeline?.stop();
});

/** Another query-API process on the pipeline's NATS and LMDB folder. */
async function queryApiProcess(env: Record<string, string> = {}, nodeOptions?: string[]) {
  const replica = await spawnQueryApi(
    nats.url,
    pipeline.config.DATA_DIR,
    { LIVE_HEARTBEAT_SECONDS: "1", ...env },
    nodeOptions,
  );
  running.push(replica.service);
  return replica;
}

async function open(url: string, ownerId: string, headers: Record<string, string> = {}, token?: string) {
  const stream = await openSse(url, { ...bearer(token ?? (await tokenFor({ userId: ownerId }))), ...headers });
  streams.push(stream);
  return stream;
}

const changes = (stream: SseStream) => stream.events.filter((e) => e.event === "changed");

let replica: { url: string; service: ServiceProcess };
beforeAll(async () => {
  replica = await queryApiProcess();
});

describe("GET /dashboard/events on a replica without the projector", () => {
  it("sends `changed` within a second of a publish, with the version and the client that changed", async () => {
    const owner = "liveOwner";
    const stream = await open(`${replica.url}/dashboard/events`, owner);
    expect(stream.status).toBe(200);
    expect(stream.headers).toMatchObject({
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    });
    const publishedAt = performance.now();
    await pipeline.publish(clientCreated(owner, "liveClient"));
    const changed = await stream.next((e) => e.event === "changed", 2000);
    expect(changed.at - publishedAt).toBeLessThan(1000);
    const version = await pipeline.store.version(owner);
    expect(changed.id).toBe(String(version));
    expect(changed.data).toEqual({ version, clients: ["liveClient"] });

    // The dashboard it points to already shows the change.
    const token = await tokenFor({ userId: owner });
    const dashboard = await httpGet(`${replica.url}/dashboard`, { headers: bearer(token) });
    expect(dashboard.body.data.map((c: { _id: string }) => c._id)).toEqual(["liveClient"]);
  });

  it("keeps an idle stream open with keep-alive comments", async () => {
    const stream = await open(`${replica.url}/dashboard/events`, "idleOwner");
    await eventually(async () => (stream.comments.filter((c) => c === "keep-alive").length >= 2 ? true : undefined));
    expect(changes(stream)).toEqual([]);
  });

  it("with clientId, sends only the changes naming that client, and names only it", async () => {
    const owner = "filterOwner";
    const filtered = await open(`${replica.url}/dashboard/events?clientId=wanted`, owner);
    const all = await open(`${replica.url}/dashboard/events`, owner);
    await pipeline.publish(clientCreated(owner, "other"));
    await all.next((e) => e.event === "changed" && e.data.clients.includes("other"));
    await pipeline.publish(clientCreated(owner, "wanted"));
    const forWanted = await filtered.next((e) => e.event === "changed");
    await all.next((e) => e.event === "changed" && e.data.clients.includes("wanted"));
    expect(changes(filtered)).toEqual([forWanted]);
    expect(forWanted.data).toEqual({ version: await pipeline.store.version(owner), clients: ["wanted"] });
  });

  it("answers a bad clientId with 400 and a missing or bad token with 401, as GET /dashboard does", async () => {
    const token = await tokenFor({ userId: "someone" });
    const badId = await openSse(`${replica.url}/dashboard/events?clientId=no%20spaces`, bearer(token));
    expect(badId.status).toBe(400);
    expect(badId.body).toEqual({ message: "Invalid clientId" });
    const noToken = await openSse(`${replica.url}/dashboard/events`);
    expect(noToken.status).toBe(401);
    expect(noToken.headers["www-authenticate"]).toBe('Bearer realm="keybox"');
    const expired = await openSse(
      `${replica.url}/dashboard/events`,
      bearer(await tokenFor({ userId: "someone" }, { expiresIn: "-1m" })),
    );
    expect(expired.status).toBe(401);
  });

  it("on reconnect with Last-Event-ID other than the stored version, sends one `changed` at once", async () => {
    const owner = "resumeOwner";
    const first = await open(`${replica.url}/dashboard/events`, owner);
    await pipeline.publish(clientCreated(owner, "a"));
    const seen = await first.next((e) => e.event === "changed");
    first.close();
    // Missed while disconnected:
    await pipeline.publish(clientCreated(owner, "b"));
    await eventually(async () => ((await pipeline.store.version(owner)) > Number(seen.id) ? true : undefined));
    const version = await pipeline.store.version(owner);

    const resumed = await open(`${replica.url}/dashboard/events`, owner, { "Last-Event-ID": seen.id! });
    const caughtUp = await resumed.next((e) => e.event === "changed", 1000);
    expect(caughtUp.id).toBe(String(version));
    expect(caughtUp.data).toEqual({ version, all: true });

    // The query parameter of EventSource polyfills does the same.
    const byQuery = await open(`${replica.url}/dashboard/events?lastEventId=${seen.id}`, owner);
    expect((await byQuery.next((e) => e.event === "changed", 1000)).data).toEqual({ version, all: true });

    // Ahead of the stored version: the id of a store since rebuilt, which counts again from 0.
    const fromOldStore = await open(`${replica.url}/dashboard/events`, owner, {
      "Last-Event-ID": String(version + 1000),
    });
    expect((await fromOldStore.next((e) => e.event === "changed", 1000)).data).toEqual({ version, all: true });

    // Up to date, or an id that is not a version: nothing to catch up on (the stream opens all the same).
    const current = await open(`${replica.url}/dashboard/events`, owner, { "Last-Event-ID": String(version) });
    const invalid = await open(`${replica.url}/dashboard/events`, owner, { "Last-Event-ID": "not-a-version" });
    expect(invalid.status).toBe(200);
    await eventually(async () => (current.comments.length > 0 && invalid.comments.length > 0 ? true : undefined));
    expect(changes(current)).toEqual([]);
    expect(changes(invalid)).toEqual([]);
  });

  it("resumes a client-filtered stream from that client's version: other clients' changes are not its", async () => {
    const owner = "resumeFiltered";
    await pipeline.publish(clientCreated(owner, "mine"));
    await pipeline.publish(clientCreated(owner, "other"));
    await eventually(async () => ((await pipeline.store.version(owner, "other")) > 0 ? true : undefined));
    const mineAt = await pipeline.store.version(owner, "mine");
    const filtered = `${replica.url}/dashboard/events?clientId=mine`;

    // Only the other client changed since: nothing to catch up on.
    const quiet = await open(filtered, owner, { "Last-Event-ID": String(mineAt) });
    await eventually(async () => (quiet.comments.length > 0 ? true : undefined));
    expect(changes(quiet)).toEqual([]);

    // Its own client changed since: one change naming it, at its version.
    await pipeline.publish(clientEvent(owner, "mine", { name: "Mine v2" }, { version: 2 }));
    await eventually(async () => ((await pipeline.store.version(owner, "mine")) > mineAt ? true : undefined));
    const version = await pipeline.store.version(owner, "mine");
    const resumed = await open(filtered, owner, { "Last-Event-ID": String(mineAt) });
    expect((await resumed.next((e) => e.event === "changed", 1000)).data).toEqual({ version, clients: ["mine"] });
  });

  it("ends the stream with `event: expired` when the token expires", async () => {
    const token = await tokenFor({ userId: "expiringOwner" }, { expiresIn: "3s" });
    const exp = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).exp as number;
    const stream = await open(`${replica.url}/dashboard/events`, "expiringOwner", {}, token);
    await stream.ended;
    const endedAt = Date.now();
    expect(stream.events.at(-1)).toMatchObject({ event: "expired", data: { message: "Token expired" } });
    expect(endedAt).toBeGreaterThanOrEqual(exp * 1000 - 50);
    expect(endedAt).toBeLessThan(exp * 1000 + 1000);
  });

  it("coalesces the changes of a client that does not read into one, with the newest version", async () => {
    const owner = "slowOwner";
    const stream = await open(`${replica.url}/dashboard/events`, owner);
    let received = 0;
    stream.response.on("data", (chunk: string) => (received += chunk.length));
    stream.response.pause();
    // Notices as the projector sends them, each naming 60 clients (one of 3 sets): about 20 MB of
    // events if each were sent, more than the socket buffers hold.
    const NOTICES = 5000;
    const clientSets = [0, 1, 2].map((set) =>
      Array.from({ length: 60 }, (_, c) => `client-${set}-${c}`.padEnd(64, "x")),
    );
    for (let version = 1; version <= NOTICES; version++) {
      const notice = { ownerId: owner, version, clients: clientSets[version % 3] };
      pipeline.nc.publish(dashboardChangedSubject(owner), JSON.stringify(notice));
      if (version % 500 === 0) await pipeline.nc.flush();
    }
    await pipeline.nc.flush();
    await new Promise((r) => setTimeout(r, 300));
    stream.response.resume();
    const last = await stream.next((e) => e.event === "changed" && e.data.version === NOTICES);
    expect(changes(stream).length).toBeLessThan(NOTICES / 2);
    expect(received).toBeLessThan(10 * 1024 * 1024);
    // What waited coalesced: past 100 clients a change says "all".
    expect(last.data).toEqual({ version: NOTICES, all: true });
  });

  it("ignores (and counts) notices that do not match the contract", async () => {
    const owner = "noisyOwner";
    const stream = await open(`${replica.url}/dashboard/events`, owner);
    pipeline.nc.publish(dashboardChangedSubject(owner), "not json");
    pipeline.nc.publish(
      dashboardChangedSubject(owner),
      JSON.stringify({ ownerId: "someoneElse", version: 9, clients: [] }),
    );
    pipeline.nc.publish(dashboardChangedSubject(owner), JSON.stringify({ ownerId: owner, version: -1, clients: [] }));
    await pipeline.publish(clientCreated(owner, "real"));
    const changed = await stream.next((e) => e.event === "changed");
    expect(changed.data.clients).toEqual(["real"]);
    expect(changes(stream)).toHaveLength(1);
    const metrics = (await httpGet(`${replica.url}/metrics`)).body as string;
    expect(metric(metrics, "keybox_query_live_invalid_notices_total")).toBe(3);
  });
});

/** A sample's value from Prometheus text. */
function metric(text: string, name: string): number {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

describe("limits", () => {
  it("refuses a stream past the owner's limit with 429 and Retry-After, past the process's with 503", async () => {
    const api = await queryApiProcess({ LIVE_STREAMS_PER_OWNER: "2", LIVE_STREAMS_MAX: "3" });
    const url = `${api.url}/dashboard/events`;
    const a1 = await open(url, "limitA");
    await open(url, "limitA");
    const a3 = await open(url, "limitA");
    expect(a3.status).toBe(429);
    expect(a3.headers["retry-after"]).toMatch(/^\d+$/);
    expect(a3.body).toEqual({ message: "Too many live streams for this owner (at most 2)" });
    expect((await open(url, "limitB")).status).toBe(200);
    const c1 = await open(url, "limitC");
    expect(c1.status).toBe(503);
    expect(c1.headers["retry-after"]).toMatch(/^\d+$/);
    expect(c1.body).toEqual({ message: "Too many live streams on this server" });
    // A closed stream frees its place.
    a1.close();
    await eventually(async () => ((await open(url, "limitA")).status === 200 ? true : undefined));
  });

  it("answers HEAD with the status and headers GET would start with, and opens no stream", async () => {
    const api = await queryApiProcess({ LIVE_STREAMS_PER_OWNER: "1" });
    const head = async (ownerId: string) =>
      rawRequest(
        api.url,
        `HEAD /dashboard/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${await tokenFor({ userId: ownerId })}\r\n` +
          "Connection: close\r\n\r\n",
      );
    // Answered and ended: a stream would hold the connection (and a place) until the token expires.
    const answered = await head("headOwner");
    expect({ status: answered.status, type: answered.headers["content-type"], body: answered.body }).toEqual({
      status: 200,
      type: "text/event-stream",
      body: "",
    });
    const liveStreams = async () =>
      /^keybox_query_live_streams (\d+)$/m.exec((await httpGet(`${api.url}/metrics`)).body)?.[1];
    expect(await liveStreams()).toBe("0");
    // The owner's one place is free for a stream; once taken, HEAD says what GET would: 429.
    expect((await open(`${api.url}/dashboard/events`, "headOwner")).status).toBe(200);
    const refusedStreams = async () =>
      /^keybox_query_live_refused_total\{limit="owner"\} (\d+)$/m.exec(
        (await httpGet(`${api.url}/metrics`)).body,
      )?.[1] ?? "0";
    const refused = await head("headOwner");
    expect([refused.status, refused.headers["retry-after"]]).toEqual([429, "30"]);
    // No stream was asked for: none counts as refused.
    expect(await refusedStreams()).toBe("0");
  });
});

describe("resources", () => {
  it("1,000 open streams, once closed, give back the memory and handles they held", async () => {
    // The process can be told to collect garbage (SIGUSR2), so that heap figures are comparable.
    const api = await queryApiProcess({ LOG_LEVEL: "warn" }, [
      "--import",
      "tsx",
      "--expose-gc",
      "--import",
      "./test/support/gcOnSignal.ts",
    ]);
    const sample = async () => {
      api.service.child.kill("SIGUSR2");
      await new Promise((r) => setTimeout(r, 300));
      const text = (await httpGet(`${api.url}/metrics`)).body as string;
      return {
        streams: metric(text, "keybox_query_live_streams"),
        owners: metric(text, "keybox_query_live_owners"),
        handles: metric(text, "nodejs_active_handles_total"),
        heap: metric(text, "nodejs_heap_size_used_bytes"),
        rss: metric(text, "process_resident_memory_bytes"),
      };
    };
    const round = async () => {
      const tokens = await Promise.all(Array.from({ length: 100 }, (_, o) => tokenFor({ userId: `many${o}` })));
      const opened: SseStream[] = [];
      for (let i = 0; i < 1000; i += 100)
        opened.push(
          ...(await Promise.all(
            Array.from({ length: 100 }, (_, j) =>
              openSse(`${api.url}/dashboard/events`, bearer(tokens[(i + j) % 100]!)),
            ),
          )),
        );
      expect(opened.every((s) => s.status === 200)).toBe(true);
      const open = await sample();
      for (const stream of opened) stream.close();
      await eventually(async () => ((await sample()).streams === 0 ? true : undefined));
      return { open, closed: await sample() };
    };
    await round(); // warms up what is made once (code, pools)
    const before = await sample();
    const { open, closed } = await round();
    expect(open).toMatchObject({ streams: 1000, owners: 100 });
    expect(open.handles).toBeGreaterThanOrEqual(before.handles + 1000);
    expect(closed.owners).toBe(0);
    expect(closed.handles).toBeLessThanOrEqual(before.handles + 2);
    expect(closed.heap).toBeLessThan(before.heap + 2 * 1024 * 1024);
    console.log(
      `1,000 streams: RSS +${((open.rss - before.rss) / 1000 / 1024).toFixed(1)} KiB ` +
        `and heap +${((open.heap - before.heap) / 1000 / 1024).toFixed(1)} KiB per stream while open; ` +
        `after closing, heap ${((closed.heap - before.heap) / 1024).toFixed(0)} KiB ` +
        `and RSS ${((closed.rss - before.rss) / 1024 / 1024).toFixed(1)} MiB from before, ` +
        `handles ${closed.handles - before.handles}`,
    );
  }, 60_000);
});

describe("shutdown", () => {
  it("SIGTERM ends open streams and the process exits promptly", async () => {
    const api = await queryApiProcess();
    const stream = await open(`${api.url}/dashboard/events`, "shutdownOwner");
    await pipeline.publish(clientEvent("shutdownOwner", "s1"));
    await stream.next((e) => e.event === "changed");
    const stoppedAt = Date.now();
    api.service.child.kill("SIGTERM");
    await stream.ended;
    expect(await api.service.exited).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(3000);
  });
});

describe("a NATS outage", () => {
  interface OwnNats {
    api: { url: string };
    /** The store the API reads, written here directly (as the projector would, but without notices). */
    store: LmdbDashboardStore;
    write(event: Parameters<typeof toEvent>[0]): Promise<unknown>;
    /** Stops the nats-server, runs `whileAway` (no notice can reach anyone meanwhile), starts it again. */
    outage(whileAway: () => Promise<unknown>): Promise<void>;
  }

  /** Runs `body` with a query API on a nats-server of its own. */
  async function withOwnNats(body: (own: OwnNats) => Promise<void>) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-live-outage-"));
    const natsPort = await freePort();
    let server = await startLocalNats(path.join(dir, "nats"), natsPort);
    const store = await LmdbDashboardStore.open(path.join(dir, "data"));
    let seq = 0;
    try {
      const api = await queryApiProcess({ NATS_URL: server.url, DATA_DIR: path.join(dir, "data") });
      await body({
        api,
        store,
        write: (event) => applyBatch(store, [toEvent(event)], ++seq),
        outage: async (whileAway) => {
          await server.stop();
          await new Promise((r) => setTimeout(r, 500)); // the API notices the closed connection
          await whileAway();
          server = await startLocalNats(path.join(dir, "nats"), natsPort);
        },
      });
    } finally {
      await server.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Resolves after two more keep-alives: the second was written a heartbeat after anything written before. */
  async function twoKeepAlives(stream: SseStream) {
    const before = stream.comments.length;
    await eventually(async () => (stream.comments.length >= before + 2 ? true : undefined));
  }

  it("re-checks the owners served once reconnected, and sends `changed` for the notice it missed", async () => {
    await withOwnNats(async ({ api, store, write, outage }) => {
      const owner = "outageOwner";
      const stream = await open(`${api.url}/dashboard/events`, owner);
      await outage(() => write(clientCreated(owner, "whileAway")));
      const version = await store.version(owner);
      expect(version).toBeGreaterThan(0);
      const changed = await stream.next((e) => e.event === "changed", 10_000);
      expect(changed.data).toEqual({ version, all: true });
    });
  }, 30_000);

  it("re-checks each stream against the version it last told: a client-filtered one, its client's", async () => {
    await withOwnNats(async ({ api, store, write, outage }) => {
      const owner = "outageFiltered";
      await write(clientCreated(owner, "mine"));
      await write(clientCreated(owner, "other"));
      const url = `${api.url}/dashboard/events`;
      const filtered = await open(`${url}?clientId=mine`, owner);
      const whole = await open(url, owner);
      // Only the other client changes while the replica is cut off; a stream opened meanwhile starts after it.
      let late: SseStream | undefined;
      await outage(async () => {
        await write(clientEvent(owner, "other", { name: "Other v2" }, { version: 2 }));
        late = await open(url, owner);
      });
      const version = await store.version(owner);
      expect((await whole.next((e) => e.event === "changed", 10_000)).data).toEqual({ version, all: true });
      await twoKeepAlives(filtered);
      await twoKeepAlives(late!);
      expect(changes(filtered)).toEqual([]);
      expect(changes(late!)).toEqual([]);

      // Its own client changes while cut off, then the other again: one change, at its client's version.
      await outage(async () => {
        await write(clientEvent(owner, "mine", { name: "Mine v2" }, { version: 2 }));
        await write(clientEvent(owner, "other", { name: "Other v3" }, { version: 3 }));
      });
      const mine = await store.version(owner, "mine");
      expect(mine).toBeLessThan(await store.version(owner));
      const changed = await filtered.next((e) => e.event === "changed", 10_000);
      expect(changed).toMatchObject({ id: String(mine), data: { version: mine, clients: ["mine"] } });
      await twoKeepAlives(filtered);
      expect(changes(filtered)).toEqual([changed]);
    });
  }, 40_000);
});

describe("a switch to a rebuilt read model", () => {
  it("tells every stream to refetch everything, also when the new generation's notices came first", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-live-switch-"));
    const readModel = await openReadModel(storeSettings.parse({ DATA_DIR: dir }));
    try {
      const owner = "switchOwner";
      await applyBatch(await readModel.generation(1), [toEvent(clientCreated(owner, "inOld"))], 1);
      const { record } = await readModel.updateControl(requestRebuild(1, Date.now()));
      const rebuilt = record.building!.generation;
      await applyBatch(await readModel.generation(rebuilt), [toEvent(clientCreated(owner, "inOld"))], 1);
      const api = await queryApiProcess({ DATA_DIR: dir });
      const stream = await open(`${api.url}/dashboard/events`, owner);
      // Right after the switch, the new generation's projector commits and announces a change, and
      // this replica hears of it before it has seen the switch.
      await readModel.updateControl(switchTo(rebuilt, Date.now()));
      const committed = await applyBatch(
        await readModel.generation(rebuilt),
        [toEvent(clientCreated(owner, "inNew"))],
        2,
      );
      const version = committed.changes.get(owner)!.version;
      expect(version).toBe(2 ** 32 + 2);
      pipeline.nc.publish(
        dashboardChangedSubject(owner),
        JSON.stringify({ ownerId: owner, version, clients: ["inNew"] }),
      );
      const all = await stream.next((e) => e.event === "changed" && e.data.all === true, 3000);
      expect(all.data).toEqual({ version, all: true });
    } finally {
      await readModel.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("tells a client-filtered stream its client's new version, and counts in the new generation from then on", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keybox-live-switch-"));
    const readModel = await openReadModel(storeSettings.parse({ DATA_DIR: dir }));
    try {
      const owner = "switchFiltered";
      const events = [toEvent(clientCreated(owner, "mine")), toEvent(clientCreated(owner, "other"))];
      await applyBatch(await readModel.generation(1), events, 1);
      await applyBatch(
        await readModel.generation(1),
        [toEvent(clientEvent(owner, "mine", { name: "Mine v2" }, { version: 2 }))],
        2,
      );
      const { record } = await readModel.updateControl(requestRebuild(1, Date.now()));
      const rebuilt = record.building!.generation;
      await applyBatch(await readModel.generation(rebuilt), events, 1);
      const api = await queryApiProcess({ DATA_DIR: dir });
      const stream = await open(`${api.url}/dashboard/events?clientId=mine`, owner);
      await readModel.updateControl(switchTo(rebuilt, Date.now()));
      const version = await (await readModel.generation(rebuilt)).version(owner, "mine");
      expect(version).toBe(2 ** 32 + 1);
      const switched = await stream.next((e) => e.event === "changed", 3000);
      expect(switched.data).toEqual({ version, clients: ["mine"] });
      // A notice of the old generation, late: its version is none of the new generation's, and the
      // stream's ids never go back to it.
      pipeline.nc.publish(
        dashboardChangedSubject(owner),
        JSON.stringify({ ownerId: owner, version: 3, clients: ["mine"] }),
      );
      const late = await stream.next((e) => e.event === "changed", 3000, stream.events.indexOf(switched) + 1);
      expect(late.data).toEqual({ version, clients: ["mine"] });
    } finally {
      await readModel.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
