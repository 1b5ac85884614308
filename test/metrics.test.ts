// /metrics of both services, as separate processes: every metric the README's table lists is
// served by the service it names, with the type it gives, and moves with the work done.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "nats";
import { ensureStreams, publishEvent } from "@keybox/contract";
import { connectNats } from "@keybox/runtime";
import { freePort } from "../scripts/natsServer.ts";
import { clientCreated } from "./support/events.ts";
import { bearer, httpGet } from "./support/http.ts";
import { TEST_STREAMS, useNats } from "./support/nats.ts";
import { eventually, TEST_JWT_SECRET, tokenFor } from "./support/pipeline.ts";
import { REPO_ROOT, spawnService, waitUntilReady, type ServiceProcess } from "./support/process.ts";

const nats = useNats();
const dataDir = mkdtempSync(path.join(os.tmpdir(), "keybox-metrics-"));
let nc: NatsConnection;
const services: ServiceProcess[] = [];
const urls = { projector: "", "query API": "" };

beforeAll(async () => {
  nc = await connectNats(nats.url, "metrics-test");
  await ensureStreams(nc, TEST_STREAMS);
  const env = { NATS_URL: nats.url, DATA_DIR: dataDir, LOG_LEVEL: "warn" };
  const [metricsPort, apiPort] = [await freePort(), await freePort()];
  const projector = spawnService("services/projector/src/main.ts", { ...env, METRICS_PORT: String(metricsPort) });
  const api = spawnService("services/query-api/src/main.ts", {
    ...env,
    PORT: String(apiPort),
    HOST: "127.0.0.1",
    JWT_SECRET: TEST_JWT_SECRET,
  });
  services.push(projector, api);
  urls.projector = `http://127.0.0.1:${metricsPort}`;
  urls["query API"] = `http://127.0.0.1:${apiPort}`;
  await waitUntilReady(urls.projector, projector);
  await waitUntilReady(urls["query API"], api);
});
afterAll(async () => {
  for (const service of services) {
    service.child.kill("SIGTERM");
    await service.exited;
  }
  await nc?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The README's metrics table: name, type and service of each row. */
function documentedMetrics(): { name: string; type: string; service: keyof typeof urls }[] {
  const readme = readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
  return [
    ...readme.matchAll(/^\s*\| `(keybox_[a-z_]+)` \| (counter|gauge|histogram) \| (projector|query API) \|/gm),
  ].map(([, name, type, service]) => ({ name: name!, type: type!, service: service as keyof typeof urls }));
}

const scrape = async (service: keyof typeof urls) => (await httpGet(`${urls[service]}/metrics`)).body as string;

/** The value of one sample line (`name{labels} value`), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("/metrics", () => {
  it("serves every metric the README lists, on the service it names", async () => {
    const documented = documentedMetrics();
    expect(documented.length).toBeGreaterThanOrEqual(17);
    for (const service of ["projector", "query API"] as const) {
      const text = await scrape(service);
      for (const { name, type } of documented.filter((m) => m.service === service))
        expect(text, `${service} lacks ${name}`).toContain(`# TYPE ${name} ${type}\n`);
      for (const standard of [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "nodejs_eventloop_lag_seconds",
      ])
        expect(text, `${service} lacks ${standard}`).toContain(`# TYPE ${standard} `);
    }
  });

  it("counts what the services did", async () => {
    const owner = "metricsOwner";
    await publishEvent(nc.jetstream(), clientCreated(owner, "counted", { name: "C", email: "c@x.io" }));
    await nc.jetstream().publish(`keybox.events.${owner}.client.created`, "not json");
    const projector = await eventually(async () => {
      const text = await scrape("projector");
      const settled =
        sample(text, 'keybox_projector_events_dead_lettered_total{reason="invalid"}') === 1 &&
        sample(text, "keybox_projector_events_applied_total") === 1;
      return settled ? text : undefined;
    });
    expect(sample(projector, "keybox_projector_event_age_seconds_count")).toBe(2);
    expect(sample(projector, "keybox_projector_batch_events_sum")).toBe(1);
    expect(sample(projector, "keybox_projector_apply_seconds_count")).toBe(1);

    const token = await tokenFor({ sub: owner });
    await eventually(async () => {
      const res = await httpGet(`${urls["query API"]}/dashboard`, { headers: bearer(token) });
      return res.body.clientsCount === 1 ? true : undefined;
    });
    const fresh = await httpGet(`${urls["query API"]}/dashboard`, { headers: bearer(token) });
    const conditional = { ...bearer(token), "If-None-Match": String(fresh.headers.etag) };
    expect((await httpGet(`${urls["query API"]}/dashboard`, { headers: conditional })).status).toBe(304);
    await httpGet(`${urls["query API"]}/dashboard`);
    await httpGet(`${urls["query API"]}/no/such/path`);
    const api = await scrape("query API");
    expect(sample(api, 'keybox_query_http_requests_total{route="/dashboard",status="200"}')).toBeGreaterThanOrEqual(1);
    expect(sample(api, 'keybox_query_http_requests_total{route="/dashboard",status="401"}')).toBe(1);
    expect(sample(api, 'keybox_query_http_requests_total{route="unmatched",status="404"}')).toBe(1);
    expect(sample(api, 'keybox_query_http_requests_total{route="/dashboard",status="304"}')).toBe(1);
    expect(sample(api, 'keybox_query_http_request_duration_seconds_count{route="unmatched",status="404"}')).toBe(1);
  });
});
