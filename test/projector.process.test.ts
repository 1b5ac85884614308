// The projector as a real process, as an orchestrator sees it: /readyz tells the truth while NATS is
// down, and a projector whose durable consumer is deleted stops (exit 1) instead of idling healthy;
// started again, it recreates the consumer and applies what was published meanwhile.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { publishEvent } from "@keybox/contract";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { connectNats } from "@keybox/runtime";
import { freePort, startLocalNats } from "../scripts/natsServer.ts";
import { httpGet } from "./support/http.ts";
import { clientCreated } from "./support/events.ts";
import { clientIdsIn } from "./support/inMemory.ts";
import { TEST_STREAMS, useNats } from "./support/nats.ts";
import { eventually } from "./support/pipeline.ts";
import { spawnService, stopAll, waitUntilReady, type ServiceProcess } from "./support/process.ts";
import { readDashboard } from "./support/stores.ts";

const nats = useNats();
const dirs: string[] = [];
const running: ServiceProcess[] = [];
afterAll(async () => {
  await stopAll(running);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

async function startProjectorProcess(env: Record<string, string>): Promise<{ service: ServiceProcess; url: string }> {
  const port = await freePort();
  const service = spawnService("services/projector/src/main.ts", {
    METRICS_PORT: String(port),
    PROJECTOR_ACK_WAIT_MS: "1000",
    ...env,
  });
  running.push(service);
  const url = `http://127.0.0.1:${port}`;
  await waitUntilReady(url, service);
  return { service, url };
}

/** The client ids of `owner` in the LMDB read model under `dataDir` (LMDB is shared across processes). */
async function clientIds(dataDir: string, owner: string): Promise<string[]> {
  const store = LmdbDashboardStore.open(dataDir);
  try {
    return clientIdsIn(await readDashboard(store, owner));
  } finally {
    await store.close();
  }
}

describe("a projector whose durable consumer is deleted", () => {
  it("exits with 1 naming the consumer, and once restarted recreates it and applies what was published", async () => {
    const owner = "deletedConsumerOwner";
    const durable = "process-deleted";
    const dataDir = tempDir("keybox-proc-deleted-");
    const env = { NATS_URL: nats.url, DATA_DIR: dataDir, PROJECTOR_DURABLE: durable };
    const first = await startProjectorProcess(env);
    const nc = await connectNats(nats.url, "process-test");
    const js = nc.jetstream();
    await publishEvent(js, clientCreated(owner, "before"));
    await eventually(async () => ((await clientIds(dataDir, owner)).length === 1 ? true : undefined));

    await (await nc.jetstreamManager()).consumers.delete(TEST_STREAMS.eventsStream, durable);
    expect(await first.service.exited).toBe(1);
    expect(first.service.output()).toMatch(
      new RegExp(`the durable consumer ${durable} on ${TEST_STREAMS.eventsStream} no longer exists`),
    );
    await publishEvent(js, clientCreated(owner, "whileGone"));

    await startProjectorProcess(env);
    expect(
      await eventually(async () => {
        const ids = await clientIds(dataDir, owner);
        return ids.length === 2 ? ids : undefined;
      }),
    ).toEqual(["before", "whileGone"]);
    await nc.close();
  });
});

describe("a projector while NATS is down", () => {
  it("answers /readyz 503 until NATS is back, then 200, and applies what is published after", async () => {
    const natsDir = tempDir("keybox-proc-nats-");
    const natsPort = await freePort();
    let server = await startLocalNats(natsDir, natsPort);
    const dataDir = tempDir("keybox-proc-outage-");
    const { url } = await startProjectorProcess({ NATS_URL: server.url, DATA_DIR: dataDir });
    try {
      await server.stop();
      const notReady = await eventually(async () => {
        const res = await httpGet(`${url}/readyz`);
        return res.status === 503 ? res.body : undefined;
      });
      expect(notReady).toMatchObject({ status: "not ready", nats: "disconnected" });
      // Still not ready a while later: it never pretends while NATS is away.
      await new Promise((r) => setTimeout(r, 1500));
      expect((await httpGet(`${url}/readyz`)).status).toBe(503);
      expect((await httpGet(`${url}/healthz`)).status).toBe(200);

      server = await startLocalNats(natsDir, natsPort);
      const ready = await eventually(async () => {
        const res = await httpGet(`${url}/readyz`);
        return res.status === 200 ? res.body : undefined;
      }, 20_000);
      expect(ready).toMatchObject({ status: "ready", nats: "connected", consumer: "ok", store: "ok" });

      const nc = await connectNats(server.url, "process-test");
      await publishEvent(nc.jetstream(), clientCreated("natsOutageOwner", "afterOutage"));
      expect(
        await eventually(async () => {
          const ids = await clientIds(dataDir, "natsOutageOwner");
          return ids.length === 1 ? ids : undefined;
        }, 20_000),
      ).toEqual(["afterOutage"]);
      await nc.close();
    } finally {
      await server.stop();
    }
  });
});
