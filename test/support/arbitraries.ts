// Random event histories for the property tests (fast-check): a few owners with the same ids,
// entities changing, moving, deleted and re-created, parents that never arrive, and deliveries of a
// history in any order with duplicates.
import fc from "fast-check";
import { DEFAULT_PROJECTION, type ProjectionOptions } from "@keybox/projector";
import {
  buildEnvelope,
  LICENSE_STATUSES,
  type Action,
  type Entity,
  type EventData,
  type KeyboxEvent,
  type LicenseState,
} from "@keybox/contract";
import { toEvent } from "./inMemory.ts";

export const NOW = new Date("2024-06-01T00:00:00.000Z");
export const OWNERS = ["ownerA", "ownerB"];
// Ids that a plain object keyed by id gets wrong (inherited names, the prototype setter; msgpack
// renames "__proto__" to "__proto_"), and ids one character away from them. The same ids under both
// owners and for every entity: isolation must come from the owner and the entity, not unique ids.
const TRICKY_IDS = [
  "__proto__",
  "__proto_",
  "__proto__1",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
];
export const CLIENT_IDS = ["c1", ...TRICKY_IDS];
const PROJECT_IDS = ["p1", ...TRICKY_IDS];
const LICENSE_IDS = ["l1", ...TRICKY_IDS];
// Few distinct instants, so ties (broken by id) are common; some written with an offset.
const CREATED_TIMES = [
  "2024-01-01T00:00:00.000Z",
  "2024-01-01T02:00:00+02:00",
  "2024-01-02T00:00:00Z",
  "2023-12-31T23:30:00.5Z",
];
// Around NOW, including exactly NOW, for read-time expiry.
const EXPIRY_TIMES = [
  "2024-05-01T00:00:00.000Z",
  NOW.toISOString(),
  "2024-06-01T01:00:00+01:00",
  "2024-07-01T00:00:00.000Z",
];
/**
 * Options to run the rules with: the default chunk target, and tiny ones so every chunking path runs,
 * each reading ahead and reading as needed (through applyBatch, LMDB always reads as needed).
 */
export const CHUNKINGS: ProjectionOptions[] = [
  DEFAULT_PROJECTION,
  { chunkTargetBytes: 1, readAhead: true },
  { chunkTargetBytes: 700, readAhead: true },
  { ...DEFAULT_PROJECTION, readAhead: false },
  { chunkTargetBytes: 1, readAhead: false },
  { chunkTargetBytes: 700, readAhead: false },
];
const LICENSE_ACTIONS: Action[] = ["updated", "activated", "revoked", "reinstated", "expired", "renewed"];

/** One change of an entity: a new live state (the data that varies) or a delete. */
type Step<T> = { deleted: true } | { deleted: false; action: Action; data: T };

/** 1–4 changes with strictly increasing versions, starting and stepping by 1–3. */
function changes<T>(live: fc.Arbitrary<T>, liveActions: Action[]) {
  const step: fc.Arbitrary<Step<T>> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        deleted: fc.constant(false as const),
        action: fc.constantFrom(...liveActions),
        data: live,
      }),
    },
    { weight: 1, arbitrary: fc.constant({ deleted: true as const }) },
  );
  return fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), step), { minLength: 1, maxLength: 4 }).map((list) => {
    let version = 0;
    return list.map(([gap, s]) => {
      version += gap;
      return { version, step: s };
    });
  });
}

const clientHistory = fc.record({
  createdAt: fc.constantFrom(...CREATED_TIMES),
  changes: changes(
    fc.record({ name: fc.constantFrom("Acme", "Globex", "Initech"), email: fc.constantFrom("a@x.io", "b@y.io") }),
    ["updated"],
  ),
});

const projectHistory = fc.record({
  createdAt: fc.constantFrom(...CREATED_TIMES),
  changes: changes(
    fc.record({ clientId: fc.constantFrom(...CLIENT_IDS), name: fc.constantFrom("Web", "App", "API") }),
    ["updated"],
  ),
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
  fc
    .subarray(ids, { minLength: Math.ceil(ids.length / 2) })
    .chain((chosen) => fc.tuple(...chosen.map((id) => history.map((h) => ({ id, ...h })))));

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
      const parentIds =
        entity === "client"
          ? {}
          : { clientId: last.clientId ?? "c1", ...(entity === "license" && { projectId: last.projectId ?? "p1" }) };
      return buildEnvelope({ entity, action: "deleted", version, data: { ...ids, ...parentIds } as EventData<Entity> });
    }
    last = step.data;
    const action = existed ? step.action : "created";
    existed = true;
    return buildEnvelope({ entity, action, version, data: { ...ids, ...constant, ...step.data } as EventData<Entity> });
  });
}

/** A whole history, in publication order per entity (entities interleaved as generated). */
export const historyArb = fc
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

/** `events` under owners of their own (`suffix` appended): a store keeps what earlier runs wrote. */
export const withOwnerSuffix = (events: readonly KeyboxEvent[], suffix: string) =>
  events.map(
    (e) => ({ ...e, ownerId: e.ownerId + suffix, data: { ...e.data, ownerId: e.ownerId + suffix } }) as KeyboxEvent,
  );

/** A delivery of `history`: a permutation with some events delivered again at random places. */
export const deliveryOf = (history: KeyboxEvent[]) =>
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
