// Read your own writes, on real parts. A projector process and a query-API process share a real
// nats-server and one LMDB folder: a writer publishes, takes the sequence from JetStream's publish
// acknowledgement, and GET /dashboard?minSeq=… waits until that event is committed. Then the
// watch on the consumer's acknowledgement floor alone, with the test acknowledging a real durable
// consumer's events out of order: a later event acknowledged first does not make an earlier visible.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AckPolicy, type JsMsg, type NatsConnection } from "nats";
import { publishEvent } from "@keybox/contract";
import { connectNats, createLogger } from "@keybox/runtime";
import { freePort } from "../scripts/natsServer.ts";
import { AckFloorWatch, type AckFloorWatchSettings } from "../services/query-api/src/adapters/ackFloor.ts";
import { TooManyWaitersError } from "../services/query-api/src/domain/freshness.ts";
import { clientCreated } from "./support/events.ts";
import { bearer, httpGet } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { TEST_JWT_SECRET, tokenFor } from "./support/pipeline.ts";
import { spawnService, stopAll, waitUntilReady, type ServiceProcess } from "./support/process.ts";

const nats = useNats();
const dataDir = mkdtempSync(path.join(os.tmpdir(), "keybox-ryw-"));
const running: ServiceProcess[] = [];
let nc: NatsConnection;
beforeAll(async () => {
  nc = await connectNats(nats.url, "ryw-writer");
});
afterAll(async () => {
  await stopAll(running);
  await nc?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const WAIT_MS = 2500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("GET /dashboard?minSeq= through real processes", () => {
  const owner = "writerOwner";
  let projector: ServiceProcess;
  let apiUrl: string;
  beforeAll(async () => {
    const common = { NATS_URL: nats.url, DATA_DIR: dataDir, JWT_SECRET: TEST_JWT_SECRET };
    const metricsPort = await freePort();
    projector = spawnService("services/projector/src/main.ts", { ...common, METRICS_PORT: String(metricsPort) });
    running.push(projector);
    const apiPort = await freePort();
    const api = spawnService("services/query-api/src/main.ts", {
      ...common,
      PORT: String(apiPort),
      HOST: "127.0.0.1",
      MIN_SEQ_WAIT_MS: String(WAIT_MS),
      MIN_SEQ_MAX_WAITERS: "2",
    });
    running.push(api);
    apiUrl = `http://127.0.0.1:${apiPort}`;
    await waitUntilReady(`http://127.0.0.1:${metricsPort}`, projector);
    await waitUntilReady(apiUrl, api);
  }, 60_000);

  const dashboard = async (query: string, headers: Record<string, string> = {}) =>
    httpGet(`${apiUrl}/dashboard${query}`, { headers: { ...bearer(await tokenFor({ userId: owner })), ...headers } });

  let ownSeq: number;

  it("waits until the writer's event is committed, then serves it and says it is fresh", async () => {
    // The projector is paused, so the write cannot be visible before the request is made.
    projector.child.kill("SIGSTOP");
    let answered = false;
    let pending: ReturnType<typeof dashboard>;
    try {
      ownSeq = (await publishEvent(nc.jetstream(), clientCreated(owner, "myOwnClient"))).seq;
      pending = dashboard(`?minSeq=${ownSeq}`);
      void pending.then(() => (answered = true));
      await sleep(700);
      expect(answered).toBe(false);
    } finally {
      projector.child.kill("SIGCONT");
    }
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.headers["keybox-fresh"]).toBe("true");
    expect(Number(res.headers["keybox-visible-seq"])).toBeGreaterThanOrEqual(ownSeq);
    expect(res.body.data.map((c: any) => c._id)).toEqual(["myOwnClient"]);

    // The header asks the same; a sequence already visible is answered at once.
    const viaHeader = await dashboard("", { "KeyBox-Min-Seq": String(ownSeq) });
    expect(viaHeader.headers["keybox-fresh"]).toBe("true");
    expect(viaHeader.body.clientsCount).toBe(1);
  });

  it("answers an unwritten sequence after the configured wait, not fresh; refuses waiters over the limit", async () => {
    const started = Date.now();
    const answers = await Promise.all(
      [1, 2, 3].map(async () => {
        const res = await dashboard(`?minSeq=${ownSeq + 1_000_000}`);
        return { ...res, elapsed: Date.now() - started };
      }),
    );
    const waited = answers.filter((a) => a.status === 200);
    expect(waited).toHaveLength(2);
    for (const a of waited) {
      expect(a.headers["keybox-fresh"]).toBe("false");
      expect(Number(a.headers["keybox-visible-seq"])).toBeGreaterThanOrEqual(ownSeq);
      expect(a.body.data.map((c: any) => c._id)).toEqual(["myOwnClient"]);
      expect(a.elapsed).toBeGreaterThanOrEqual(WAIT_MS - 50);
      expect(a.elapsed).toBeLessThan(WAIT_MS + 1500);
    }
    const refused = answers.find((a) => a.status === 503)!;
    expect(refused.body).toEqual({ message: "Too many requests are waiting for minSeq; try again shortly" });
    expect(refused.headers["retry-after"]).toBe("1");
    expect(refused.elapsed).toBeLessThan(1000);
  });

  it("waits for minSeq before revalidating: a current ETag with an unseen sequence gets a 304 saying so", async () => {
    const { headers } = await dashboard("");
    const started = Date.now();
    const res = await dashboard("", {
      "If-None-Match": String(headers.etag),
      "KeyBox-Min-Seq": String(ownSeq + 1_000_000),
    });
    expect(res.status).toBe(304);
    expect(res.headers["keybox-fresh"]).toBe("false");
    expect(Date.now() - started).toBeGreaterThanOrEqual(WAIT_MS - 50);
  });

  it.each([
    ["0", "?minSeq=0", {}],
    ["negative", "?minSeq=-3", {}],
    ["not a number", "?minSeq=latest", {}],
    ["a fraction", "?minSeq=1.5", {}],
    ["beyond 2^53 - 1", "?minSeq=9007199254740992", {}],
    ["empty", "?minSeq=", {}],
    ["given twice", "?minSeq=1&minSeq=2", {}],
    ["a bad header", "", { "KeyBox-Min-Seq": "soon" }],
    ["a header that disagrees with the query", "?minSeq=1", { "KeyBox-Min-Seq": "2" }],
  ])("answers 400 to a minSeq that is %s", async (_name, query, headers) => {
    const res = await dashboard(query, headers);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ message: "Invalid minSeq: must be a stream sequence from 1 to 9007199254740991" });
  });
});

describe("the acknowledgement-floor watch on a real durable consumer", () => {
  const stream = "RYW_FLOOR";
  const durable = "ryw-floor-consumer";
  const log = createLogger("test", "silent");
  const watch = (settings: Partial<AckFloorWatchSettings> = {}) =>
    new AckFloorWatch({
      nc,
      stream,
      durable: () => durable,
      waitMs: 600,
      pollMs: 25,
      maxWaiters: 10_000,
      log,
      ...settings,
    });
  let messages: JsMsg[];

  beforeAll(async () => {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: stream, subjects: ["ryw.floor.>"] });
    await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit });
    const js = nc.jetstream();
    for (const n of [1, 2, 3]) await js.publish(`ryw.floor.${n}`, "event");
    messages = [];
    const batch = await (await js.consumers.get(stream, durable)).fetch({ max_messages: 3, expires: 2000 });
    for await (const m of batch) messages.push(m);
    expect(messages.map((m) => m.seq)).toEqual([1, 2, 3]);
  });

  it("counts a sequence visible only once every event up to it is acknowledged", async () => {
    await messages[1]!.ackAck();
    await messages[2]!.ackAck(); // the latest is done, the first is not
    const floorWatch = watch();
    const started = Date.now();
    expect(await floorWatch.waitFor(3)).toEqual({ fresh: false, visibleSeq: 0 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(590);

    const waiting = floorWatch.waitFor(3);
    await sleep(100);
    await messages[0]!.ackAck();
    expect(await waiting).toEqual({ fresh: true, visibleSeq: 3 });
    expect(await floorWatch.waitFor(2)).toEqual({ fresh: true, visibleSeq: 3 }); // at once, from the floor read
  });

  it("asks JetStream once per poll interval for all its waiters, and not at all once nobody waits", async () => {
    const observer = await connectNats(nats.url, "ryw-observer");
    let infoRequests = 0;
    const sub = observer.subscribe(`$JS.API.CONSUMER.INFO.${stream}.${durable}`, { callback: () => infoRequests++ });
    await observer.flush();
    try {
      const floorWatch = watch({ waitMs: 1000, pollMs: 50 });
      const answers = await Promise.all(Array.from({ length: 1000 }, () => floorWatch.waitFor(1_000_000)));
      expect(answers.every((a) => !a.fresh)).toBe(true);
      // A poll sent just before the last waiter gave up may still be on its way to the observer:
      // once the server has had everything the watch sent, and the observer everything routed to
      // it, the count is settled.
      await nc.flush();
      await observer.flush();
      expect(infoRequests).toBeGreaterThanOrEqual(5);
      expect(infoRequests).toBeLessThanOrEqual(1000 / 50 + 2);
      const afterwards = infoRequests;
      await sleep(300);
      expect(infoRequests).toBe(afterwards);
    } finally {
      sub.unsubscribe();
      await observer.close();
    }
  });

  it("refuses a waiter beyond its limit", async () => {
    const floorWatch = watch({ maxWaiters: 3 });
    const waiting = [1, 2, 3].map(() => floorWatch.waitFor(1_000_000));
    await expect(floorWatch.waitFor(1_000_000)).rejects.toBeInstanceOf(TooManyWaitersError);
    await Promise.all(waiting);
    expect(await floorWatch.waitFor(1)).toEqual({ fresh: true, visibleSeq: 3 }); // room again
  });

  it("answers not fresh after the wait, never hanging, when the consumer does not exist or NATS is gone", async () => {
    const closed = await connectNats(nats.url, "ryw-closed");
    await closed.close();
    for (const floorWatch of [watch({ durable: () => "no-such-consumer" }), watch({ nc: closed })]) {
      const started = Date.now();
      expect(await floorWatch.waitFor(1)).toEqual({ fresh: false, visibleSeq: undefined });
      expect(Date.now() - started).toBeLessThan(600 + 500);
    }
  });
});
