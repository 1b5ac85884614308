// Scale-out on one machine, as real processes: two projectors and two query APIs sharing a real
// nats-server and one LMDB folder. Events arrive at a steady rate; one projector is killed with
// SIGKILL in the middle; both query APIs must converge to the dashboards the events describe.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { publishEvent } from "@keybox/contract";
import { connectNats } from "@keybox/runtime";
import { freePort } from "../scripts/natsServer.ts";
import { randomHistory } from "./support/history.ts";
import { bearer, httpGet } from "./support/http.ts";
import { toEvent } from "./support/inMemory.ts";
import { referenceDashboard } from "./support/reference.ts";
import { useNats } from "./support/nats.ts";
import { eventually, TEST_JWT_SECRET, tokenFor } from "./support/pipeline.ts";
import { spawnService, stopAll, waitUntilReady, type ServiceProcess } from "./support/process.ts";

const nats = useNats();
const dataDir = mkdtempSync(path.join(os.tmpdir(), "keybox-scaleout-"));
const running: ServiceProcess[] = [];
afterAll(async () => {
  await stopAll(running);
  rmSync(dataDir, { recursive: true, force: true });
});

const OWNERS = ["ownerA", "ownerB", "ownerC"];
const EVENTS = 1500;
const EVENTS_PER_SECOND = 500;

describe("two projectors and two query APIs on one LMDB folder", () => {
  it("converge to the same dashboards as the events, also when a projector is killed mid-stream", async () => {
    const common = {
      NATS_URL: nats.url,
      DATA_DIR: dataDir,
      JWT_SECRET: TEST_JWT_SECRET,
      PROJECTOR_ACK_WAIT_MS: "2000",
    };
    const projectors = await Promise.all(
      [0, 1].map(async () => {
        const port = await freePort();
        const service = spawnService("services/projector/src/main.ts", { ...common, METRICS_PORT: String(port) });
        running.push(service);
        return { url: `http://127.0.0.1:${port}`, service };
      }),
    );
    const apis = await Promise.all(
      [0, 1].map(async () => {
        const port = await freePort();
        const service = spawnService("services/query-api/src/main.ts", {
          ...common,
          PORT: String(port),
          HOST: "127.0.0.1",
        });
        running.push(service);
        return { url: `http://127.0.0.1:${port}`, service };
      }),
    );
    // Ready projectors have declared the stream and the consumer; ready APIs can serve.
    for (const { url, service } of [...projectors, ...apis]) await waitUntilReady(url, service);

    const history = randomHistory({ seed: 20261127, owners: OWNERS, events: EVENTS });
    const nc = await connectNats(nats.url, "scaleout-publisher");
    const js = nc.jetstream();
    const started = Date.now();
    for (let i = 0; i < history.length; i++) {
      // A steady rate: event i goes out at i / rate seconds.
      const due = started + (i * 1000) / EVENTS_PER_SECOND;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      await publishEvent(js, history[i]!);
      if (i === Math.floor(history.length / 2)) projectors[0]!.service.child.kill("SIGKILL");
    }
    await nc.close();
    expect(await projectors[0]!.service.exited).toBe("SIGKILL");

    const tokens = new Map(await Promise.all(OWNERS.map(async (o) => [o, await tokenFor({ userId: o })] as const)));
    for (const ownerId of OWNERS) {
      const expected = referenceDashboard(history.map(toEvent), ownerId, new Date());
      expect(expected.clientsCount).toBeGreaterThan(0);
      for (const api of apis) {
        const body = await eventually(async () => {
          const res = await httpGet(`${api.url}/dashboard`, { headers: bearer(tokens.get(ownerId)!) });
          return JSON.stringify(res.body) === JSON.stringify(expected) ? res.body : undefined;
        }, 30_000).catch(async () => {
          // What the surviving projector said explains a stall better than the dashboards do.
          console.error(`surviving projector's output:\n${projectors[1]!.service.output()}`);
          return (await httpGet(`${api.url}/dashboard`, { headers: bearer(tokens.get(ownerId)!) })).body;
        });
        expect(body).toEqual(expected);
      }
    }
    // The surviving projector is healthy, ready, and did its share (its own metrics say so).
    expect(projectors[1]!.service.child.exitCode).toBeNull();
    const base = projectors[1]!.url;
    expect((await httpGet(`${base}/healthz`)).status).toBe(200);
    expect((await httpGet(`${base}/readyz`)).status).toBe(200);
    const applied = /^keybox_projector_events_applied_total (\d+)$/m.exec((await httpGet(`${base}/metrics`)).body)?.[1];
    expect(Number(applied)).toBeGreaterThan(0);
  });
});
