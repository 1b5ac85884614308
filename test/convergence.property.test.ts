// Guarantee 1 of DESIGN.md as a property: any arrival order of a history, with duplicates, gives
// the same dashboards as the history in order, and that result is what an independent reference
// model (latest version per entity, joined by the ids in the data) renders.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import type { DashboardBody } from "@keybox/query-api";
import {
  buildEnvelope,
  LICENSE_STATUSES,
  type Action,
  type Entity,
  type EventData,
  type KeyboxEvent,
  type LicenseState,
} from "@keybox/shared";
import { DEFAULT_PROJECTION, type ProjectionOptions } from "@keybox/projector";
import { ownerParts, project, renderBody, toEvent } from "./support/inMemory.ts";
import { referenceDashboard } from "./support/reference.ts";

const NOW = new Date("2024-06-01T00:00:00.000Z");
const OWNERS = ["ownerA", "ownerB"];
// The same ids under both owners: isolation must come from the owner, not from unique ids.
const CLIENT_IDS = ["c1", "c2", "c3"];
const PROJECT_IDS = ["p1", "p2", "p3", "p4"];
const LICENSE_IDS = ["l1", "l2", "l3", "l4", "l5"];
// Few distinct instants, so ties (broken by id) are common; some written with an offset.
const CREATED_TIMES = ["2024-01-01T00:00:00.000Z", "2024-01-01T02:00:00+02:00", "2024-01-02T00:00:00Z", "2023-12-31T23:30:00.5Z"];
// Around NOW, including exactly NOW, for read-time expiry.
const EXPIRY_TIMES = ["2024-05-01T00:00:00.000Z", NOW.toISOString(), "2024-06-01T01:00:00+01:00", "2024-07-01T00:00:00.000Z"];
const LICENSE_ACTIONS: Action[] = ["updated", "activated", "revoked", "reinstated", "expired", "renewed"];

// ---- generating histories --------------------------------------------------------------------

/** One change of an entity: a new live state (the data that varies) or a delete. */
type Step<T> = { deleted: true } | { deleted: false; action: Action; data: T };

/** 1–4 changes with strictly increasing versions, starting and stepping by 1–3. */
function changes<T>(live: fc.Arbitrary<T>, liveActions: Action[]) {
  const step: fc.Arbitrary<Step<T>> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ deleted: fc.constant(false as const), action: fc.constantFrom(...liveActions), data: live }) },
    { weight: 1, arbitrary: fc.constant({ deleted: true as const }) },
  );
  return fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), step), { minLength: 1, maxLength: 4 }).map((list) => {
    let version = 0;
    return list.map(([gap, s]) => ({ version: (version += gap), step: s }));
  });
}

const clientHistory = fc.record({
  createdAt: fc.constantFrom(...CREATED_TIMES),
  changes: changes(fc.record({ name: fc.constantFrom("Acme", "Globex", "Initech"), email: fc.constantFrom("a@x.io", "b@y.io") }), ["updated"]),
});

const projectHistory = fc.record({
  createdAt: fc.constantFrom(...CREATED_TIMES),
  changes: changes(fc.record({ clientId: fc.constantFrom(...CLIENT_IDS), name: fc.constantFrom("Web", "App", "API") }), ["updated"]),
});

const licenseHistory = fc.record({
  key: fc.stringMatching(/^KB-[A-Z0-9]{4}$/),
  issuedAt: fc.constantFrom(...CREATED_TIMES),
  createdAt: fc.option(fc.constantFrom(...CREATED_TIMES), { nil: undefined }),
  changes: changes(
    fc.record({
      projectId: fc.constantFrom(...PROJECT_IDS),
      // Usually the project's client at some point; any client, as licenses are not moved with it.
      clientId: fc.constantFrom(...CLIENT_IDS),
      status: fc.constantFrom(...LICENSE_STATUSES),
      expiresAt: fc.constantFrom(...EXPIRY_TIMES),
      duration: fc.integer({ min: 0, max: 36 }),
      services: fc.subarray(["Hosting", "Domain", "Email"]),
      machineId: fc.constantFrom(undefined, null, "9f86d081884c7d65", "2c26b46b68ffc68f"),
    }),
    LICENSE_ACTIONS,
  ),
});

/** At least half of the ids, each with its history (the others are parents that never arrive). */
const histories = <T>(ids: string[], history: fc.Arbitrary<T>) =>
  fc.subarray(ids, { minLength: Math.ceil(ids.length / 2) }).chain((chosen) => fc.tuple(...chosen.map((id) => history.map((h) => ({ id, ...h })))));

const ownerHistory = fc.record({
  clients: histories(CLIENT_IDS, clientHistory),
  projects: histories(PROJECT_IDS, projectHistory),
  licenses: histories(LICENSE_IDS, licenseHistory),
});

/** An entity's envelopes: the first live change and a re-create after a delete are "created". */
function envelopes<T extends object>(
  entity: Entity,
  ids: { id: string; ownerId: string },
  constant: object,
  list: { version: number; step: Step<T> }[],
) {
  let last: Partial<LicenseState> = {};
  let existed = false;
  return list.map(({ version, step }) => {
    if (step.deleted) {
      existed = false;
      const parentIds = entity === "client" ? {} : { clientId: last.clientId ?? "c1", ...(entity === "license" && { projectId: last.projectId ?? "p1" }) };
      return buildEnvelope({ entity, action: "deleted", version, data: { ...ids, ...parentIds } as EventData<Entity> });
    }
    last = step.data;
    const action = existed ? step.action : "created";
    existed = true;
    return buildEnvelope({ entity, action, version, data: { ...ids, ...constant, ...step.data } as EventData<Entity> });
  });
}

/** A whole history, in publication order per entity (entities interleaved as generated). */
const historyArb = fc
  .subarray(OWNERS, { minLength: 1 })
  .chain((owners) => fc.tuple(...owners.map((ownerId) => ownerHistory.map((h) => ({ ownerId, ...h })))))
  .map((owners) =>
    owners.flatMap(({ ownerId, clients, projects, licenses }) => [
      ...clients.flatMap(({ id, changes, ...constant }) => envelopes("client", { id, ownerId }, constant, changes)),
      ...projects.flatMap(({ id, changes, ...constant }) => envelopes("project", { id, ownerId }, constant, changes)),
      ...licenses.flatMap(({ id, changes, ...constant }) => envelopes("license", { id, ownerId }, constant, changes)),
    ]),
  )
  .map((history) => history.map(toEvent));

/** A delivery of `history`: a permutation with some events delivered again at random places. */
const deliveryOf = (history: KeyboxEvent[]) =>
  fc
    .tuple(
      fc.shuffledSubarray(history, { minLength: history.length, maxLength: history.length }),
      fc.array(fc.tuple(fc.constantFrom(...history), fc.nat()), { maxLength: 10 }),
    )
    .map(([order, again]) => {
      const delivered = [...order];
      for (const [event, at] of again) delivered.splice(at % (delivered.length + 1), 0, event);
      return delivered;
    });

const scenario = historyArb.chain((history) =>
  fc.record({ history: fc.constant(history), deliveries: fc.array(deliveryOf(history), { minLength: 1, maxLength: 3 }) }),
);

// ---- the reference model ---------------------------------------------------------------------

/** Everything a user can read: each owner's dashboard, whole and for each clientId. */
type Reads = Record<string, DashboardBody>;
const readKeys = OWNERS.flatMap((owner) => [owner, ...CLIENT_IDS.map((c) => `${owner}/${c}`)]);

/** Chunk targets to run the rules with: the default, and tiny ones so every chunking path runs. */
const CHUNKINGS: ProjectionOptions[] = [DEFAULT_PROJECTION, { chunkTargetBytes: 1 }, { chunkTargetBytes: 700 }];

function projectedReads(events: readonly KeyboxEvent[], options = DEFAULT_PROJECTION): Reads {
  const slice = project(events, new Map(), options);
  return Object.fromEntries(
    readKeys.map((key) => {
      const [owner, clientId] = key.split("/") as [string, string | undefined];
      return [key, renderBody(ownerParts(slice, owner, clientId), NOW)];
    }),
  );
}

const referenceReads = (events: readonly KeyboxEvent[]): Reads =>
  Object.fromEntries(
    readKeys.map((key) => {
      const [owner, clientId] = key.split("/") as [string, string | undefined];
      return [key, referenceDashboard(events, owner, NOW, clientId)];
    }),
  );

// ---- the properties --------------------------------------------------------------------------

describe("convergence", () => {
  it("gives the reference model's dashboards for a history applied in order", () => {
    let withLicenses = 0;
    fc.assert(
      fc.property(historyArb, (history) => {
        const reads = projectedReads(history);
        expect(reads).toEqual(referenceReads(history));
        for (const options of CHUNKINGS) expect(projectedReads(history, options)).toEqual(reads);
        if (Object.values(reads).some((r) => r.data.some((c) => c.projects.some((p) => p.licenses.length > 0)))) withLicenses++;
      }),
      { numRuns: 500 },
    );
    // Not vacuous: most histories show licenses under live projects of live clients.
    expect(withLicenses).toBeGreaterThan(250);
  });

  it("gives the same dashboards for any arrival order with duplicates", () => {
    fc.assert(
      fc.property(scenario, ({ history, deliveries }) => {
        const inOrder = projectedReads(history);
        for (const delivered of deliveries) {
          for (const options of CHUNKINGS) expect(projectedReads(delivered, options)).toEqual(inOrder);
        }
      }),
      { numRuns: 500 },
    );
  });
});
