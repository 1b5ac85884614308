// Crash safety as a user sees it: the service killed with SIGKILL and started again serves the
// same dashboards and applies what was published while it was down.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { publishEvent, type Envelope } from "@keybox/contract";
import { connectNats } from "@keybox/runtime";
import { freePort } from "../scripts/natsServer.ts";
import { clientEvent } from "./support/events.ts";
import { bearer, httpGet } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { eventually, TEST_JWT_SECRET, tokenFor } from "./support/pipeline.ts";
import { spawnService, waitUntilReady, type ServiceProcess } from "./support/process.ts";

const nats = useNats();
const dataDir = mkdtempSync(path.join(os.tmpdir(), "keybox-restart-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const OWNER = "restartOwner";
/** Client `n` at `version`: its name says both, which is what the dashboards are compared by. */
const numberedClient = (n: number, version = 1): Envelope =>
  clientEvent(
    OWNER,
    `client${String(n).padStart(4, "0")}`,
    {
      name: `Client ${n} v${version}`,
      email: `c${n}@x.io`,
      createdAt: new Date(Date.UTC(2024, 0, 1, 0, 0, n)).toISOString(),
    },
    { version },
  );

describe("a process killed with SIGKILL", () => {
  it("serves the same dashboards after a restart and applies what was published while it was down", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = {
      NATS_URL: nats.url,
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: "127.0.0.1",
      JWT_SECRET: TEST_JWT_SECRET,
      // Events the killed process held come back after the ack wait; keep the test short.
      PROJECTOR_ACK_WAIT_MS: "2000",
    };
    const token = await tokenFor({ userId: OWNER });
    const read = async () => (await httpGet(`${url}/dashboard`, { headers: bearer(token) })).body;
    const nc = await connectNats(nats.url, "restart-test-publisher");
    const js = nc.jetstream();
    let service: ServiceProcess | undefined;
    try {
      service = spawnService("scripts/start.ts", env);
      await waitUntilReady(url, service);
      for (let n = 0; n < 200; n++) await publishEvent(js, numberedClient(n));
      const before = await eventually(async () => {
        const body = await read();
        return body.clientsCount === 200 ? body : undefined;
      });

      // Kill it hard in the middle of a stream of updates.
      const inFlight = (async () => {
        for (let n = 0; n < 200; n++) await publishEvent(js, numberedClient(n, 2));
      })();
      await new Promise((r) => setTimeout(r, 20));
      service.child.kill("SIGKILL");
      expect(await service.exited).toBe("SIGKILL");
      await inFlight;
      // Published while it is down.
      for (let n = 200; n < 250; n++) await publishEvent(js, numberedClient(n));

      service = spawnService("scripts/start.ts", env);
      await waitUntilReady(url, service);
      // Ready means it serves, not that it has caught up: wait for what was published meanwhile.
      const names = (body: { data: { _id: string; name: string }[] }) => body.data.map((c) => `${c._id} ${c.name}`);
      const expected = [
        ...before.data.map((c: { _id: string }, n: number) => `${c._id} Client ${n} v2`),
        ...Array.from({ length: 50 }, (_, i) => `client${String(200 + i).padStart(4, "0")} Client ${200 + i} v1`),
      ];
      const after = await eventually(async () => {
        const body = await read();
        return JSON.stringify(names(body)) === JSON.stringify(expected) ? body : undefined;
      }, 30_000).catch(read);
      expect(after.clientsCount).toBe(250);
      expect(names(after)).toEqual(expected);
    } finally {
      service?.child.kill("SIGTERM");
      await service?.exited;
      await nc.close();
    }
  });

  it("stops cleanly on SIGTERM", async () => {
    const port = await freePort();
    const service = spawnService("scripts/start.ts", {
      NATS_URL: nats.url,
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: "127.0.0.1",
      JWT_SECRET: TEST_JWT_SECRET,
    });
    await waitUntilReady(`http://127.0.0.1:${port}`, service);
    service.child.kill("SIGTERM");
    expect(await service.exited).toBe(0);
    expect(service.output()).toContain("projector stopped");
  });
});

describe("bad configuration", () => {
  it.each([
    ["PORT", "not-a-port"],
    ["JWT_SECRET", "short"],
    ["MONGODB_URL", "postgres://nope"],
    ["PROJECTOR_BATCH_SIZE", "0"],
  ])("stops the process at start with a message naming %s", async (name, value) => {
    const service = spawnService("scripts/start.ts", { NATS_URL: nats.url, DATA_DIR: dataDir, [name]: value });
    expect(await service.exited).toBe(1);
    expect(service.output()).toMatch(new RegExp(`Invalid configuration: .*${name}`));
  });

  it.each([
    [
      "the projector without NATS_URL",
      "services/projector/src/main.ts",
      () => ({ NATS_URL: "" }),
      /NATS_URL is required/,
    ],
    [
      "the query API without NATS_URL",
      "services/query-api/src/main.ts",
      () => ({ NATS_URL: "", JWT_SECRET: TEST_JWT_SECRET }),
      /NATS_URL is required/,
    ],
    [
      "the query API without JWT_SECRET",
      "services/query-api/src/main.ts",
      () => ({ NATS_URL: nats.url, JWT_SECRET: "" }),
      /JWT_SECRET is required/,
    ],
  ])("stops %s with a message naming the setting", async (_name, entry, env, message) => {
    const service = spawnService(entry, { DATA_DIR: dataDir, METRICS_PORT: "0", ...env() });
    expect(await service.exited).toBe(1);
    expect(service.output()).toMatch(message);
  });

  it.each([
    [
      "the projector",
      "services/projector/src/main.ts",
      "METRICS_PORT",
      { JWT_SECRET: "short", PORT: "not-a-port", JWT_ALGORITHMS: "RS256" },
    ],
    [
      "the query API",
      "services/query-api/src/main.ts",
      "PORT",
      { PROJECTOR_BATCH_SIZE: "0", METRICS_PORT: "not-a-port", MAX_EVENT_BYTES: "1" },
    ],
  ])("does not stop %s over settings only the other service reads", async (_name, entry, portVariable, others) => {
    const port = await freePort();
    const service = spawnService(entry, {
      NATS_URL: nats.url,
      DATA_DIR: dataDir,
      JWT_SECRET: TEST_JWT_SECRET,
      HOST: "127.0.0.1",
      ...others,
      [portVariable]: String(port),
    });
    try {
      await waitUntilReady(`http://127.0.0.1:${port}`, service);
    } finally {
      service.child.kill("SIGTERM");
      await service.exited;
    }
  });
});
