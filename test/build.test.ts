// What production runs: the services built by `npm run build` into plain JavaScript, started with
// `node --enable-source-maps` as separate processes, serve the API document's example; and the
// MongoDB driver is only imported by the MongoDB adapter's own chunk.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats } from "@keybox/runtime";
import { publishEvent } from "@keybox/contract";
import { buildServices } from "../scripts/build.mjs";
import { freePort } from "../scripts/natsServer.ts";
import { DEMO_OWNER_ID, exampleEvents } from "../scripts/seedExample.ts";
import { bearer, httpGet } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { eventually, TEST_JWT_SECRET, tokenFor } from "./support/pipeline.ts";
import { REPO_ROOT, spawnService, stopAll, waitUntilReady, type ServiceProcess } from "./support/process.ts";

const expected = createRequire(import.meta.url)("./fixtures/seed-example-response.json");
const nats = useNats();
// Inside the repository, so the bundles find the installed packages as they do under dist/.
const outdir = path.join(REPO_ROOT, "node_modules", ".cache", `keybox-build-test-${process.pid}`);
const dataDir = mkdtempSync(path.join(os.tmpdir(), "keybox-build-"));
const running: ServiceProcess[] = [];

beforeAll(async () => {
  await buildServices(outdir);
});
afterAll(async () => {
  await stopAll(running, "SIGTERM");
  rmSync(outdir, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
});

function runBuilt(name: string, env: Record<string, string>): ServiceProcess {
  const service = spawnService(path.join(outdir, `${name}.mjs`), env, ["--enable-source-maps"]);
  running.push(service);
  return service;
}

describe("the built services", () => {
  it("run as plain JavaScript and serve the API document's example", async () => {
    const common = { NATS_URL: nats.url, DATA_DIR: dataDir, JWT_SECRET: TEST_JWT_SECRET, HOST: "127.0.0.1" };
    const [metricsPort, apiPort] = [await freePort(), await freePort()];
    const projector = runBuilt("projector", { ...common, METRICS_PORT: String(metricsPort) });
    const api = runBuilt("query-api", { ...common, PORT: String(apiPort) });
    await waitUntilReady(`http://127.0.0.1:${metricsPort}`, projector);
    await waitUntilReady(`http://127.0.0.1:${apiPort}`, api);

    const nc = await connectNats(nats.url, "build-test");
    for (const envelope of exampleEvents()) await publishEvent(nc.jetstream(), envelope);
    await nc.close();
    const token = await tokenFor({ userId: DEMO_OWNER_ID });
    const body = await eventually(async () => {
      const res = await httpGet(`http://127.0.0.1:${apiPort}/dashboard`, { headers: bearer(token) });
      return JSON.stringify(res.body) === JSON.stringify(expected) ? res.body : undefined;
    });
    expect(body).toEqual(expected);
  });

  it("import the MongoDB driver only from the MongoDB adapter's chunk, loaded when MONGODB_URL is set", () => {
    const files = readdirSync(outdir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".mjs"));
    const importers = files.filter((f) =>
      /from "mongodb"|import\("mongodb"\)/.test(readFileSync(path.join(outdir, f), "utf8")),
    );
    expect(importers).toHaveLength(1);
    expect(importers[0]).toMatch(/^chunks\/mongoReadModel-/); // the MongoDB read model, with its adapter
  });
});
