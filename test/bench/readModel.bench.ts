// `npm run bench`: what a read and a write cost on the embedded store, for a typical tenant and
// for a large one (100,000 licenses across 1,000 clients, one of them with 20,000).
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { bench, describe } from "vitest";
import { applyBatch } from "@keybox/projector";
import { renderSnapshot } from "@keybox/query-api";
import { buildEnvelope, type Envelope } from "@keybox/contract";
import { LmdbDashboardStore } from "@keybox/read-model/lmdb";
import { licenseEvent } from "../support/events.ts";
import { toEvent } from "../support/inMemory.ts";

const store = LmdbDashboardStore.open(mkdtempSync(path.join(os.tmpdir(), "keybox-bench-")));
const t = (n: number) => new Date(Date.UTC(2024, 0, 1) + n * 1000).toISOString();

function tenant(ownerId: string, clients: number, licensesPerClient: (c: number) => number): Envelope[] {
  const out: Envelope[] = [];
  for (let c = 0; c < clients; c++) {
    const clientId = `${ownerId}c${c}`;
    const projectId = `${clientId}p`;
    out.push(
      buildEnvelope({
        entity: "client",
        action: "created",
        version: 1,
        data: { id: clientId, ownerId, name: `Client ${c}`, email: "c@x.io", createdAt: t(c) },
      }),
    );
    out.push(
      buildEnvelope({
        entity: "project",
        action: "created",
        version: 1,
        data: { id: projectId, ownerId, clientId, name: "Project", createdAt: t(c) },
      }),
    );
    for (let l = 0; l < licensesPerClient(c); l++)
      out.push(license(ownerId, clientId, projectId, `${projectId}l${l}`, 1));
  }
  return out;
}

/** A license of the tenant at `version`: created at 1, renewed after. */
const license = (ownerId: string, clientId: string, projectId: string, id: string, version: number): Envelope =>
  licenseEvent(
    ownerId,
    id,
    {
      clientId,
      projectId,
      key: `KB-${id}`,
      issuedAt: t(1),
      services: ["Hosting", "Domain"],
      machineId: "a1b2c3d4e5f6",
    },
    { version, action: version === 1 ? "created" : "renewed" },
  );

let seq = 0;
async function load(events: Envelope[]) {
  const parsed = events.map(toEvent);
  for (let i = 0; i < parsed.length; i += 2000) await applyBatch(store, parsed.slice(i, i + 2000), ++seq);
}

await load(tenant("small", 2, () => 5));
await load(tenant("large", 1000, (c) => (c === 0 ? 20_000 : 80)));

/** What GET /dashboard does with the store, without HTTP: a snapshot rendered, its pieces given back once "sent". */
async function readAndRender(ownerId: string, clientId?: string) {
  const snapshot = await store.openDashboard(ownerId, clientId);
  try {
    (await renderSnapshot(snapshot, new Date())).release();
  } finally {
    snapshot.close();
  }
}

describe("GET /dashboard work (read + render + serialise)", () => {
  bench("small tenant: 2 clients, 10 licenses", async () => void (await readAndRender("small")));
  bench("large tenant: 100,000 licenses, 1,000 clients", async () => void (await readAndRender("large")), {
    iterations: 10,
    time: 0,
  });
  bench("large tenant, one client with 20,000 licenses", async () => void (await readAndRender("large", "largec0")), {
    iterations: 20,
    time: 0,
  });
});

let version = 1;
describe("projector: one event applied and committed (fsync) on a large tenant", () => {
  bench("license renewed in the 20,000-license client", async () => {
    version++;
    await applyBatch(store, [toEvent(license("large", "largec0", "largec0p", "largec0pl777", version))], ++seq);
  });
  bench("batch of 256 license events across the tenant", async () => {
    version++;
    const events = Array.from({ length: 256 }, (_, i) =>
      license("large", `largec${i * 3}`, `largec${i * 3}p`, `largec${i * 3}pl1`, version),
    );
    await applyBatch(store, events.map(toEvent), ++seq);
  });
});
