// The read model the read rows measure: every tenant published while no projector runs, then one
// projector started on it and timed until it has applied them all (a drain figure for row 4), then
// a query API, and the bodies it serves (handed to the bare server, byte for byte).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { makeWorkSubdir, type Bench } from "../context.ts";
import { bearer, get, tokenFor } from "../http.ts";
import { publishAll, timeDrain } from "../jetstream.ts";
import { startProjector, startQueryApi, waitUntilReady, type Running } from "../services.ts";
import {
  freshnessTenants,
  largeTenant,
  mediumTenant,
  seedExampleTenant,
  smallTenant,
  type Tenant,
} from "../workloads.ts";

/** The durable of the read model's projector (the services' default). */
export const MAIN_DURABLE = "dashboard-projector";

export interface Body {
  /** Served by the bare server at `/<name>`. */
  name: string;
  /** The query API's path (with its query string). */
  apiPath: string;
  ownerId: string;
  bytes: Buffer;
  contentType: string;
  /** The ETag the API gave it (served by the bare server too, and answered with 304 there). */
  etag: string;
}

export interface Seeded {
  dataDir: string;
  projector: Running;
  api: Running;
  tenants: { seed: Tenant; medium: Tenant; large: Tenant; small: Tenant; fresh: Tenant[] };
  tokens: Map<string, string>;
  bodies: { seed: Body; medium: Body; large: Body; bigClient: Body };
  bodiesDir: string;
  contentType: string;
  /** The projector's drain of everything published here. */
  seedDrain: { events: number; eventsPerSecond: number; cpuMicrosPerEvent: number };
}

export async function seedReadModel(bench: Bench): Promise<Seeded> {
  const { options } = bench;
  const tenants = {
    seed: seedExampleTenant(),
    medium: mediumTenant("bench-medium"),
    large: largeTenant("bench-large", options.largeTenant),
    small: smallTenant("bench-small", options.smallTenantLicenses),
    fresh: freshnessTenants(options.freshness.owners),
  };
  const events = [tenants.seed, tenants.medium, tenants.large, tenants.small, ...tenants.fresh].flatMap(
    (t) => t.events,
  );
  bench.progress(`seeding the read model: publishing ${events.length.toLocaleString("en-US")} events`);
  const lastSeq = await publishAll(bench.nats, events);

  bench.progress("seeding the read model: one projector applies them");
  const dataDir = makeWorkSubdir(bench, "lmdb-");
  const startedAt = performance.now();
  const projector = await startProjector(bench.setup, { name: "projector", dataDir, durable: MAIN_DURABLE });
  const timing = await timeDrain(bench.nats, {
    durable: MAIN_DURABLE,
    lastSeq,
    deliveredBefore: 0,
    consumers: [projector],
    startedAt,
    timeoutMs: 60_000 + events.length * 5,
  });
  await waitUntilReady(projector);
  const api = await startQueryApi(bench.setup, { name: "query API", dataDir });

  const owners = [tenants.seed, tenants.medium, tenants.large, tenants.small, ...tenants.fresh].map((t) => t.ownerId);
  const tokens = new Map(await Promise.all(owners.map(async (o) => [o, await tokenFor(o)] as const)));
  const fetchBody = async (name: string, ownerId: string, apiPath: string): Promise<Body> => {
    const answer = await get(`${api.baseUrl}${apiPath}`, { headers: bearer(tokens.get(ownerId)!), timeoutMs: 120_000 });
    if (answer.status !== 200) throw new Error(`GET ${apiPath} for ${ownerId} answered ${answer.status}`);
    const etag = answer.headers.etag;
    if (!etag) throw new Error(`GET ${apiPath} for ${ownerId} answered without an ETag`);
    return { name, apiPath, ownerId, bytes: answer.body, contentType: answer.headers["content-type"] ?? "", etag };
  };
  const bodies = {
    seed: await fetchBody("seed", tenants.seed.ownerId, "/dashboard"),
    medium: await fetchBody("medium", tenants.medium.ownerId, "/dashboard"),
    large: await fetchBody("large", tenants.large.ownerId, "/dashboard"),
    bigClient: await fetchBody("big-client", tenants.large.ownerId, `/dashboard?clientId=${tenants.large.bigClientId}`),
  };
  checkLicenseCount(bodies.large, options.largeTenant.licenses);
  checkLicenseCount(bodies.bigClient, options.largeTenant.bigClientLicenses);
  const bodiesDir = makeWorkSubdir(bench, "bodies-");
  for (const body of Object.values(bodies)) {
    writeFileSync(path.join(bodiesDir, `${body.name}.body`), body.bytes);
    writeFileSync(path.join(bodiesDir, `${body.name}.etag`), body.etag);
  }

  const cpu = timing.cpuSeconds[0]!;
  return {
    dataDir,
    projector,
    api,
    tenants,
    tokens,
    bodies,
    bodiesDir,
    contentType: bodies.seed.contentType,
    seedDrain: {
      events: events.length,
      eventsPerSecond: events.length / timing.seconds,
      cpuMicrosPerEvent: (cpu * 1e6) / events.length,
    },
  };
}

/** The projector applied everything: the body holds every license it should. */
function checkLicenseCount(body: Body, expected: number): void {
  const found = body.bytes.toString().split('"key":').length - 1;
  if (found !== expected) throw new Error(`GET ${body.apiPath} served ${found} licenses, not ${expected}`);
}
