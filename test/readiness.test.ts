// The query API's /readyz means "can serve reads": the read model answers. A projector far behind
// (a burst of events) does not make it not-ready, nor does NATS; a store that fails or hangs does.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startQueryApi } from "@keybox/query-api";
import type { NatsConnection } from "nats";
import { ensureStreams, publishEvent } from "@keybox/contract";
import { ensureConsumer } from "@keybox/projector";
import type { DashboardStore } from "@keybox/read-model";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { connectNats, createLogger, loadConfig } from "@keybox/runtime";
import { freePort } from "../scripts/natsServer.ts";
import { allInOneSettings } from "../scripts/settings.ts";
import { clientCreated } from "./support/events.ts";
import { bearer, httpGet, type HttpResult } from "./support/http.ts";
import { TEST_STREAMS, useNats } from "./support/nats.ts";
import { eventually, TEST_JWT_SECRET, tokenFor } from "./support/pipeline.ts";
import { spawnService } from "./support/process.ts";

const nats = useNats();
const dataDir = mkdtempSync(path.join(os.tmpdir(), "keybox-readiness-"));
let nc: NatsConnection;
beforeAll(async () => {
  nc = await connectNats(nats.url, "readiness-test");
});
afterAll(async () => {
  await nc?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const config = loadConfig(allInOneSettings, {
  DATA_DIR: dataDir,
  PORT: "0",
  HOST: "127.0.0.1",
  JWT_SECRET: TEST_JWT_SECRET,
  LOG_LEVEL: "silent",
});
const log = createLogger("test", "silent");
const PENDING = 10_000;

/** The answer, or a failed test (not a hung one) when the server does not answer in time. */
async function readyz(url: string, ms = 5000): Promise<HttpResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`/readyz gave no answer within ${ms} ms`)), ms)),
  );
  return Promise.race([httpGet(`${url}/readyz`), late]).finally(() => clearTimeout(timer));
}

describe("a query API process while the projector is 10,000 events behind", () => {
  it("is ready and serves GET /dashboard", async () => {
    await ensureStreams(nc, TEST_STREAMS);
    await ensureConsumer(nc, {
      stream: config.EVENTS_STREAM,
      durable: config.PROJECTOR_DURABLE,
      ackWaitMs: config.PROJECTOR_ACK_WAIT_MS,
      maxDeliver: 8,
      maxAckPending: 1000,
    });
    const js = nc.jetstream();
    for (let start = 0; start < PENDING; start += 1000) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) =>
          publishEvent(js, clientCreated("burstOwner", `burst${start + i}`, { name: "Burst", email: "b@x.io" })),
        ),
      );
    }
    const jsm = await nc.jetstreamManager();
    expect(
      (await jsm.consumers.info(config.EVENTS_STREAM, config.PROJECTOR_DURABLE)).num_pending,
    ).toBeGreaterThanOrEqual(PENDING);

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const service = spawnService("services/query-api/src/main.ts", {
      NATS_URL: nats.url,
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: "127.0.0.1",
      JWT_SECRET: TEST_JWT_SECRET,
    });
    try {
      // It starts in a few seconds; a readiness that waited for the projector would never come.
      const ready = await eventually(async () => {
        if (service.child.exitCode !== null) throw new Error(`query API exited:\n${service.output()}`);
        const res = await httpGet(`${url}/readyz`);
        return res.status === 200 ? res : undefined;
      }, 20_000).catch(async () => readyz(url));
      expect(ready.status).toBe(200);
      expect(ready.body).toMatchObject({ status: "ready", store: "ok", nats: "open" });

      const dashboard = await httpGet(`${url}/dashboard`, {
        headers: bearer(await tokenFor({ userId: "burstOwner" })),
      });
      expect(dashboard.status).toBe(200);
      expect(dashboard.body).toEqual({
        message: "Dashboard fetched successfully",
        clientsCount: 0,
        projectsCount: 0,
        data: [],
      });
      // Nothing consumed the burst: it really was pending all along.
      expect(
        (await jsm.consumers.info(config.EVENTS_STREAM, config.PROJECTOR_DURABLE)).num_pending,
      ).toBeGreaterThanOrEqual(PENDING);
    } finally {
      service.child.kill("SIGTERM");
      await service.exited;
    }
  });
});

describe("a query API whose read model does not answer", () => {
  const failing: [string, () => Promise<number>][] = [
    ["fails", () => Promise.reject(new Error("store is down"))],
    ["hangs", () => new Promise<number>(() => {})],
  ];
  it.each(failing)("answers /readyz 503 with JSON when the store %s", async (_name, appliedSeq) => {
    const store = { appliedSeq } as unknown as DashboardStore;
    const api = await startQueryApi(config, nc, store, log);
    try {
      const res = await readyz(api.url);
      expect(res.status).toBe(503);
      expect(res.headers["content-type"]).toMatch(/^application\/json/);
      expect(res.body).toEqual({ status: "not ready", ready: false, store: "not answering", nats: "open" });
    } finally {
      // Closing waits for requests in progress: a probe that hung must not hang the test too.
      await Promise.race([api.close(), new Promise((r) => setTimeout(r, 1000))]);
    }
  });
});

describe("a query API whose NATS connection is closed", () => {
  it("is still ready: reads need only the read model", async () => {
    const closed = await connectNats(nats.url, "readiness-test-closed");
    await closed.close();
    const store = await LmdbDashboardStore.open(path.join(dataDir, "own"));
    const api = await startQueryApi(config, closed, store, log);
    try {
      const res = await readyz(api.url);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: "ready", store: "ok", nats: "closed" });
    } finally {
      await api.close();
      await store.close();
    }
  });
});
