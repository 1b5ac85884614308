// The projection rules through the pure functions: events → applyEvent → slice → renderDashboard,
// with no store and no NATS. Each test states one rule of DESIGN.md as a user would see it.
import { describe, it, expect } from "vitest";
import { applyEvent, missingRecords, MissingRecordsError, withRecords, type Slice } from "@keybox/projector";
import type { DashboardBody } from "@keybox/query-api";
import {
  buildEnvelope,
  type Action,
  type ClientState,
  type Entity,
  type Envelope,
  type EventData,
  type LicenseState,
  type ProjectState,
} from "@keybox/contract";
import {
  keyId,
  partKey,
  recordKeyOf,
  registerKey,
  type LicenseChunk,
  type LicenseRegister,
  type RecordKey,
} from "@keybox/read-model";
import { dashboardOf, ownerFragments, project, renderBody, toEvent } from "./support/inMemory.ts";

const OWNER = "ownerA";
const NOW = new Date("2024-06-01T00:00:00.000Z");
const FAR_FUTURE = "2030-01-01T00:00:00.000Z";
const day = (n: number) => `2024-01-${String(n).padStart(2, "0")}T00:00:00.000Z`;

/** Version, action (created at v1, else updated) and owner of one change. */
interface Change {
  v?: number;
  action?: Action;
  owner?: string;
}
const actionOf = ({ v = 1, action }: Change) => action ?? (v === 1 ? "created" : "updated");

function client(id: string, data: Partial<ClientState> = {}, change: Change = {}): Envelope {
  const { v = 1, owner = OWNER } = change;
  const state = { id, ownerId: owner, name: `Client ${id}`, email: `${id}@example.com`, createdAt: day(1), ...data };
  return buildEnvelope({ entity: "client", action: actionOf(change), version: v, data: state });
}

function projectOf(id: string, clientId: string, data: Partial<ProjectState> = {}, change: Change = {}): Envelope {
  const { v = 1, owner = OWNER } = change;
  const state = { id, ownerId: owner, clientId, name: `Project ${id}`, createdAt: day(2), ...data };
  return buildEnvelope({ entity: "project", action: actionOf(change), version: v, data: state });
}

function license(id: string, projectId: string, data: Partial<LicenseState> = {}, change: Change = {}): Envelope {
  const { v = 1, owner = OWNER } = change;
  const state: LicenseState = {
    id,
    ownerId: owner,
    clientId: "c1",
    projectId,
    key: `KEY-${id}`,
    duration: 12,
    issuedAt: day(3),
    expiresAt: FAR_FUTURE,
    status: "ACTIVE",
    services: ["Hosting"],
    machineId: undefined,
    createdAt: undefined,
    ...data,
  };
  return buildEnvelope({ entity: "license", action: actionOf(change), version: v, data: state });
}

function tombstone(
  entity: Entity,
  v: number,
  ids: { id: string; clientId?: string; projectId?: string },
  owner = OWNER,
): Envelope {
  return buildEnvelope({
    entity,
    action: "deleted",
    version: v,
    data: { ownerId: owner, ...ids } as EventData<Entity>,
  });
}

const dashboard = (events: Envelope[], owner = OWNER, now = NOW) => dashboardOf(events, owner, now);
const dashboardForClient = (events: Envelope[], clientId: string, owner = OWNER) =>
  renderBody(ownerFragments(project(events.map(toEvent)), owner, clientId), NOW);

/** The dashboard's structure and order: [clientId, [projectId, licenseIds][]][]. */
const tree = (body: DashboardBody) =>
  body.data.map((c) => [c._id, c.projects.map((p) => [p._id, p.licenses.map((l) => l._id)])]);
const licensesOf = (body: DashboardBody) => body.data.flatMap((c) => c.projects.flatMap((p) => p.licenses));

/** One client c1 with project p1: the parents a license needs. */
const parents = [client("c1"), projectOf("p1", "c1")];

describe("create and update", () => {
  it("renders a created client, project and license with the documented fields", () => {
    const body = dashboard([...parents, license("l1", "p1", { machineId: "hash-1", services: ["Hosting", "Domain"] })]);
    expect(body).toEqual({
      message: "Dashboard fetched successfully",
      clientsCount: 1,
      projectsCount: 1,
      data: [
        {
          _id: "c1",
          name: "Client c1",
          email: "c1@example.com",
          owner: OWNER,
          projects: [
            {
              _id: "p1",
              name: "Project p1",
              client: "c1",
              licenses: [
                {
                  _id: "l1",
                  key: "KEY-l1",
                  duration: 12,
                  issuedAt: day(3),
                  expiresAt: FAR_FUTURE,
                  status: "ACTIVE",
                  services: ["Hosting", "Domain"],
                  machineId: "hash-1",
                },
              ],
            },
          ],
        },
      ],
    });
  });

  it("gives an empty dashboard for an owner with no events", () => {
    expect(dashboard([])).toEqual({
      message: "Dashboard fetched successfully",
      clientsCount: 0,
      projectsCount: 0,
      data: [],
    });
  });

  it("shows a client without projects with projects: [] and a project without licenses with licenses: []", () => {
    const body = dashboard([client("c1"), client("c2", { createdAt: day(2) }), projectOf("p1", "c2")]);
    expect(body.data).toEqual([
      { _id: "c1", name: "Client c1", email: "c1@example.com", owner: OWNER, projects: [] },
      {
        _id: "c2",
        name: "Client c2",
        email: "c2@example.com",
        owner: OWNER,
        projects: [{ _id: "p1", name: "Project p1", client: "c2", licenses: [] }],
      },
    ]);
  });

  it("counts clients and projects over the whole dashboard", () => {
    const body = dashboard([
      client("c1"),
      client("c2"),
      client("c3"),
      projectOf("p1", "c1"),
      projectOf("p2", "c1"),
      projectOf("p3", "c3"),
    ]);
    expect(body.clientsCount).toBe(3);
    expect(body.projectsCount).toBe(3);
  });

  it("replaces each entity's state with its update", () => {
    const body = dashboard([
      ...parents,
      license("l1", "p1", { status: "PENDING" }),
      client("c1", { name: "Renamed client", email: "new@example.com" }, { v: 2 }),
      projectOf("p1", "c1", { name: "Renamed project" }, { v: 2 }),
      license("l1", "p1", { status: "ACTIVE", machineId: "hash-2" }, { v: 2, action: "activated" }),
    ]);
    expect(body.data[0]).toMatchObject({ name: "Renamed client", email: "new@example.com" });
    expect(body.data[0]!.projects[0]!.name).toBe("Renamed project");
    expect(licensesOf(body)).toEqual([expect.objectContaining({ _id: "l1", status: "ACTIVE", machineId: "hash-2" })]);
  });
});

/**
 * Each entity with the events it needs first, a live state labelled `label`, a tombstone,
 * and how to read the label back.
 */
const lifecycles = [
  {
    entity: "client",
    setup: [],
    live: (v: number, label: string) => client("c1", { name: label }, { v }),
    gone: (v: number) => tombstone("client", v, { id: "c1" }),
    labels: (b: DashboardBody) => b.data.map((c) => c.name),
  },
  {
    entity: "project",
    setup: [client("c1")],
    live: (v: number, label: string) => projectOf("p1", "c1", { name: label }, { v }),
    gone: (v: number) => tombstone("project", v, { id: "p1", clientId: "c1" }),
    labels: (b: DashboardBody) => b.data.flatMap((c) => c.projects.map((p) => p.name)),
  },
  {
    entity: "license",
    setup: parents,
    live: (v: number, label: string) => license("l1", "p1", { key: label }, { v }),
    gone: (v: number) => tombstone("license", v, { id: "l1", clientId: "c1", projectId: "p1" }),
    labels: (b: DashboardBody) => licensesOf(b).map((l) => l.key),
  },
];

describe.each(lifecycles)("versions of a $entity", ({ setup, live, gone, labels }) => {
  it("keeps the highest entityversion: an older update arriving after a newer one is ignored", () => {
    expect(labels(dashboard([...setup, live(1, "v1"), live(3, "v3"), live(2, "v2")]))).toEqual(["v3"]);
    expect(labels(dashboard([...setup, live(3, "v3"), live(1, "v1")]))).toEqual(["v3"]);
  });

  it("ignores a second event with the same entityversion", () => {
    expect(labels(dashboard([...setup, live(2, "first"), live(2, "second")]))).toEqual(["first"]);
  });

  it("treats a delete as a versioned tombstone: an older update arriving after it is ignored", () => {
    expect(labels(dashboard([...setup, live(1, "v1"), gone(3), live(2, "v2")]))).toEqual([]);
    expect(labels(dashboard([...setup, gone(3), live(1, "v1")]))).toEqual([]);
  });

  it("shows the entity again when a newer create follows the delete", () => {
    expect(labels(dashboard([...setup, live(1, "v1"), gone(2), live(3, "again")]))).toEqual(["again"]);
    expect(labels(dashboard([...setup, live(3, "again"), gone(2), live(1, "v1")]))).toEqual(["again"]);
  });
});

describe("applyEvent", () => {
  const slice = project([...parents, license("l1", "p1"), client("c1", { name: "v2" }, { v: 2 })].map(toEvent));

  it("returns the very same slice for a stale or duplicate event", () => {
    expect(applyEvent(slice, toEvent(client("c1", { name: "stale" }, { v: 1 })))).toBe(slice);
    expect(applyEvent(slice, toEvent(client("c1", { name: "v2" }, { v: 2 })))).toBe(slice);
    expect(applyEvent(slice, toEvent(projectOf("p1", "c1")))).toBe(slice);
    expect(applyEvent(slice, toEvent(license("l1", "p1")))).toBe(slice);
  });

  it("returns a new slice for a newer event and leaves the given one unchanged", () => {
    const before = renderBody(ownerFragments(slice, OWNER), NOW);
    const next = applyEvent(slice, toEvent(license("l1", "p1", { status: "REVOKED" }, { v: 2, action: "revoked" })));
    expect(next).not.toBe(slice);
    expect(licensesOf(renderBody(ownerFragments(next, OWNER), NOW))[0]!.status).toBe("REVOKED");
    expect(renderBody(ownerFragments(slice, OWNER), NOW)).toEqual(before);
  });

  it("throws MissingRecordsError naming the records the slice lacks, and applies once they are loaded", () => {
    const event = toEvent(client("c1"));
    let error: unknown;
    try {
      applyEvent(new Map() as Slice, event);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(MissingRecordsError);
    expect((error as MissingRecordsError).keys).toEqual([partKey(OWNER, "c1")]);

    const loaded = withRecords(new Map() as Slice, [{ key: partKey(OWNER, "c1"), value: null }]);
    expect(renderBody(ownerFragments(applyEvent(loaded, event), OWNER), NOW).clientsCount).toBe(1);
  });

  describe("an update of a license in a project of many chunks", () => {
    // 40 licenses, created an hour apart, a few to a chunk.
    const options = { chunkTargetBytes: 700, readAhead: true };
    const asNeeded = { ...options, readAhead: false };
    const hour = (n: number) => new Date(Date.UTC(2024, 0, 1) + n * 3_600_000).toISOString();
    const created = Array.from({ length: 40 }, (_, n) => license(`l${n}`, "p1", { createdAt: hour(n) }));
    const full = project([...parents, ...created].map(toEvent), new Map(), options);
    const chunks = [...full.values()].filter(({ key }) => key.type === "part" && key.chunk > 1);
    const update = toEvent(
      license("l20", "p1", { createdAt: hour(20), status: "REVOKED" }, { v: 2, action: "revoked" }),
    );
    const holding = chunks.find(({ value }) => (value as LicenseChunk).licenses.some((l) => l.id === "l20"))!;

    /** What the projection asks for, round by round, each round loaded from the full slice. */
    function roundsFrom(start: Slice, event = update, projection = options) {
      const rounds: string[][] = [];
      let slice = start;
      for (let missing = missingRecords(slice, event, projection); missing.length; ) {
        rounds.push(missing.map((key) => keyId(key)).sort());
        slice = withRecords(
          slice,
          missing.map((key) => full.get(keyId(key)) ?? { key, value: null }),
        );
        missing = missingRecords(slice, event, projection);
      }
      return { rounds, slice };
    }

    /** The dashboard once the update is applied to what was loaded. */
    const served = (slice: Slice, event = update, projection = options) =>
      licensesOf(
        renderBody(ownerFragments(withRecords(full, applyEvent(slice, event, projection).values()), OWNER), NOW),
      );
    const ids = (...keys: RecordKey[]) => keys.map(keyId).sort();

    it("is loaded in two rounds: registers, head and the first chunk, then the chunk that holds it", () => {
      expect(chunks.length).toBeGreaterThan(8);
      const { rounds, slice } = roundsFrom(new Map());
      expect(rounds).toEqual([
        ids(
          registerKey(OWNER, "license", "l20"),
          registerKey(OWNER, "project", "p1"),
          partKey(OWNER, "c1", "p1"),
          partKey(OWNER, "c1", "p1", 1),
        ),
        ids(holding.key),
      ]);
      expect(served(slice)).toHaveLength(40);
      expect(served(slice)).toContainEqual(expect.objectContaining({ _id: "l20", status: "REVOKED" }));
    });

    it("asks only for its register when the rest is loaded (as earlier events of a batch leave it)", () => {
      // Filing it before its register is known would add it to the full chunk it is already in,
      // split that chunk, and ask for the registers of the licenses moved.
      const { rounds, slice } = roundsFrom(
        withRecords(
          new Map(),
          [registerKey(OWNER, "project", "p1"), partKey(OWNER, "c1", "p1"), holding.key].map(
            (key) => full.get(keyId(key))!,
          ),
        ),
      );
      expect(rounds).toEqual([[keyId(registerKey(OWNER, "license", "l20"))]]);
      expect(served(slice)).toContainEqual(expect.objectContaining({ _id: "l20", status: "REVOKED" }));
    });

    describe("read as needed (readAhead: false, as in LMDB's write transaction)", () => {
      it("asks for its project's register and head, then the chunk its place is in, never its register", () => {
        const { rounds, slice } = roundsFrom(new Map(), update, asNeeded);
        expect(rounds).toEqual([
          ids(registerKey(OWNER, "project", "p1"), partKey(OWNER, "c1", "p1")),
          ids(holding.key),
        ]);
        expect(served(slice, update, asNeeded)).toHaveLength(40);
        expect(served(slice, update, asNeeded)).toContainEqual(
          expect.objectContaining({ _id: "l20", status: "REVOKED" }),
        );
      });

      it("reads the register of a license its place does not hold (a new one), then files it", () => {
        const added = toEvent(license("l40", "p1", { createdAt: hour(20.5) }));
        const { rounds, slice } = roundsFrom(new Map(), added, asNeeded);
        // Then what filing it into that full chunk reads: the split's new chunk, the moved licenses' registers.
        expect(rounds.slice(0, 3)).toEqual([
          ids(registerKey(OWNER, "project", "p1"), partKey(OWNER, "c1", "p1")),
          ids(holding.key),
          ids(registerKey(OWNER, "license", "l40")),
        ]);
        const licenses = served(slice, added, asNeeded);
        expect(licenses.map((l: { _id: string }) => l._id).indexOf("l40")).toBe(21); // after l20, before l21
      });

      it("reads the register of a license found in its place once it leaves it (its place in the order changed)", () => {
        // Still within its chunk's range, so found there; its place changed, so it is filed again.
        const shifted = toEvent(license("l20", "p1", { createdAt: hour(20.5) }, { v: 2, action: "renewed" }));
        const { rounds, slice } = roundsFrom(new Map(), shifted, asNeeded);
        expect(rounds.slice(0, 3)).toEqual([
          ids(registerKey(OWNER, "project", "p1"), partKey(OWNER, "c1", "p1")),
          ids(holding.key),
          ids(registerKey(OWNER, "license", "l20")),
        ]);
        const licenses = served(slice, shifted, asNeeded);
        expect(licenses).toHaveLength(40);
        expect(licenses.findIndex((l: { _id: string }) => l._id === "l20")).toBe(20);
      });

      it("reads the register of a license that moves in the order before moving it", () => {
        const moved = toEvent(license("l20", "p1", { createdAt: hour(45) }, { v: 2, action: "renewed" }));
        const { rounds, slice } = roundsFrom(new Map(), moved, asNeeded);
        expect(rounds.flat()).toContain(keyId(registerKey(OWNER, "license", "l20")));
        const licenses = served(slice, moved, asNeeded);
        expect(licenses).toHaveLength(40);
        expect(licenses.at(-1)).toMatchObject({ _id: "l20" });
        // Where it went: its register names the chunk that now holds it.
        const written = applyEvent(slice, moved, asNeeded);
        const register = written.get(keyId(registerKey(OWNER, "license", "l20")))!.value as LicenseRegister;
        const chunk = written.get(keyId(partKey(OWNER, "c1", "p1", register.chunk)))!.value as LicenseChunk;
        expect(chunk.licenses.some((l) => l.id === "l20" && l.state !== null)).toBe(true);
      });
    });
  });

  it("names a license's register among the missing records", () => {
    expect(() => applyEvent(new Map() as Slice, toEvent(license("l1", "p1")))).toThrow(MissingRecordsError);
    expect(missingRecords(new Map() as Slice, toEvent(license("l1", "p1")))).toContainEqual(
      registerKey(OWNER, "license", "l1"),
    );
  });
});

// Legal ids that a plain object keyed by id gets wrong: "__proto__" (msgpack decodes that key as
// "__proto_"; assigning it sets the prototype) and names that every object inherits.
describe.each(["__proto__", "constructor", "prototype", "toString"])("the id %s", (id) => {
  const neighbour = id.slice(0, -1); // one character shorter: "__proto_", "constructo", …
  const gone = tombstone("license", 2, { id, clientId: "c1", projectId: "p1" });

  it("serves a license's update, not its first version", () => {
    const body = dashboard([
      ...parents,
      license(id, "p1", { status: "PENDING" }),
      license(id, "p1", { status: "ACTIVE" }, { v: 2, action: "activated" }),
    ]);
    expect(licensesOf(body)).toEqual([expect.objectContaining({ _id: id, key: `KEY-${id}`, status: "ACTIVE" })]);
  });

  it("keeps a license whose id differs by one character, in either order", () => {
    for (const order of [
      [neighbour, id],
      [id, neighbour],
    ]) {
      const body = dashboard([...parents, ...order.map((l) => license(l, "p1"))]);
      expect(licensesOf(body).map((l) => [l._id, l.key])).toEqual([
        [neighbour, `KEY-${neighbour}`],
        [id, `KEY-${id}`],
      ]);
    }
  });

  it("hides a deleted license", () => {
    expect(licensesOf(dashboard([...parents, license(id, "p1"), gone]))).toEqual([]);
    expect(
      licensesOf(dashboard([...parents, license(neighbour, "p1"), license(id, "p1"), gone])).map((l) => l._id),
    ).toEqual([neighbour]);
  });

  it("serves a client, a project and a license that all have it", () => {
    const events = [client(id), projectOf(id, id), license(id, id, { clientId: id })];
    expect(tree(dashboard(events))).toEqual([[id, [[id, [id]]]]]);
    expect(tree(dashboardForClient(events, id))).toEqual([[id, [[id, [id]]]]]);
  });

  it("names records whose keys give back those keys (LMDB reads a record the rules ask for by it)", () => {
    const keys: RecordKey[] = [
      partKey(id, id),
      partKey(id, id, id),
      partKey(id, id, id, 7),
      registerKey(id, "project", id),
      registerKey(id, "license", id),
    ];
    for (const key of keys) expect(recordKeyOf(keyId(key))).toEqual(key);
  });
});

describe("children before parents", () => {
  it("keeps a license arriving before its project, and a project before its client, until the parents arrive", () => {
    const events = [license("l1", "p1"), projectOf("p1", "c1"), client("c1")];
    expect(dashboard(events.slice(0, 1)).data).toEqual([]);
    expect(dashboard(events.slice(0, 2))).toMatchObject({ clientsCount: 0, projectsCount: 0, data: [] });
    expect(tree(dashboard(events))).toEqual([["c1", [["p1", ["l1"]]]]]);
    expect(tree(dashboardForClient(events, "c1"))).toEqual([["c1", [["p1", ["l1"]]]]]);
  });

  it("files an early license under its project's client even when the license names another client", () => {
    const events = [license("l1", "p1", { clientId: "c9" }), client("c1"), client("c9"), projectOf("p1", "c1")];
    expect(tree(dashboard(events))).toEqual([
      ["c1", [["p1", ["l1"]]]],
      ["c9", []],
    ]);
    expect(tree(dashboardForClient(events, "c1"))).toEqual([["c1", [["p1", ["l1"]]]]]);
  });
});

describe("deletes", () => {
  const family = [
    client("c1"),
    client("c2", { createdAt: day(2) }),
    projectOf("p1", "c1"),
    projectOf("p2", "c1", { createdAt: day(3) }),
    projectOf("p3", "c2"),
    license("l1", "p1"),
    license("l2", "p2"),
    license("l3", "p3", { clientId: "c2" }),
  ];

  it("hides a deleted client's projects and licenses", () => {
    const body = dashboard([...family, tombstone("client", 2, { id: "c1" })]);
    expect(tree(body)).toEqual([["c2", [["p3", ["l3"]]]]]);
    expect(body).toMatchObject({ clientsCount: 1, projectsCount: 1 });
    expect(dashboardForClient([...family, tombstone("client", 2, { id: "c1" })], "c1")).toMatchObject({
      clientsCount: 0,
      projectsCount: 0,
      data: [],
    });
  });

  it("hides a deleted project's licenses and keeps its siblings", () => {
    const body = dashboard([...family, tombstone("project", 2, { id: "p1", clientId: "c1" })]);
    expect(tree(body)).toEqual([
      ["c1", [["p2", ["l2"]]]],
      ["c2", [["p3", ["l3"]]]],
    ]);
    expect(body.projectsCount).toBe(2);
  });

  it("hides only the deleted license", () => {
    expect(
      tree(dashboard([...family, tombstone("license", 2, { id: "l2", clientId: "c1", projectId: "p2" })])),
    ).toEqual([
      [
        "c1",
        [
          ["p1", ["l1"]],
          ["p2", []],
        ],
      ],
      ["c2", [["p3", ["l3"]]]],
    ]);
  });

  it("shows the children again when a deleted client is re-created", () => {
    const events = [...family, tombstone("client", 2, { id: "c1" }), client("c1", {}, { v: 3, action: "created" })];
    expect(tree(dashboard(events))[0]).toEqual([
      "c1",
      [
        ["p1", ["l1"]],
        ["p2", ["l2"]],
      ],
    ]);
  });
});

describe("moves", () => {
  const before = [
    client("c1"),
    client("c2", { createdAt: day(2) }),
    projectOf("p1", "c1"),
    license("l1", "p1", { clientId: "c1" }),
    license("l2", "p1", { clientId: "c1", issuedAt: day(4) }),
  ];
  const move = projectOf("p1", "c2", {}, { v: 2 });

  it("moves a project whose clientId changes, with its licenses, also in clientId-filtered reads", () => {
    const events = [...before, move];
    const body = dashboard(events);
    expect(tree(body)).toEqual([
      ["c1", []],
      ["c2", [["p1", ["l1", "l2"]]]],
    ]);
    expect(body.data[1]!.projects[0]!.client).toBe("c2");
    expect(tree(dashboardForClient(events, "c2"))).toEqual([["c2", [["p1", ["l1", "l2"]]]]]);
    expect(dashboardForClient(events, "c1")).toMatchObject({
      clientsCount: 1,
      projectsCount: 0,
      data: [{ _id: "c1", projects: [] }],
    });
  });

  it("keeps licenses under the moved project when their own data still names the old client", () => {
    const events = [
      ...before,
      move,
      license("l1", "p1", { clientId: "c1", status: "REVOKED" }, { v: 2, action: "revoked" }),
    ];
    expect(tree(dashboard(events))).toEqual([
      ["c1", []],
      ["c2", [["p1", ["l1", "l2"]]]],
    ]);
    expect(licensesOf(dashboardForClient(events, "c2")).map((l) => l.status)).toEqual(["REVOKED", "ACTIVE"]);
  });

  it("ends in the same place when the move arrives before the project's creation", () => {
    const events = [move, ...before];
    expect(tree(dashboard(events))).toEqual([
      ["c1", []],
      ["c2", [["p1", ["l1", "l2"]]]],
    ]);
    expect(tree(dashboardForClient(events, "c2"))).toEqual([["c2", [["p1", ["l1", "l2"]]]]]);
  });

  it("moves a license whose projectId changes, and then ignores its older event for the old project", () => {
    const moved = [...before, projectOf("p2", "c2"), license("l1", "p2", { clientId: "c2" }, { v: 2 })];
    const expected = [
      ["c1", [["p1", ["l2"]]]],
      ["c2", [["p2", ["l1"]]]],
    ];
    expect(tree(dashboard(moved))).toEqual(expected);
    expect(tree(dashboard([...moved, license("l1", "p1", { clientId: "c1" }, { v: 1 })]))).toEqual(expected);

    const slice = project(moved.map(toEvent));
    expect(applyEvent(slice, toEvent(license("l1", "p1", { clientId: "c1" }, { v: 1 })))).toBe(slice);
  });
});

describe("owner isolation", () => {
  const tenant = (owner: string) => [
    client("c1", { name: `${owner} client` }, { owner }),
    projectOf("p1", "c1", { name: `${owner} project` }, { owner }),
    license("l1", "p1", { key: `${owner}-key` }, { owner }),
  ];

  it("never mixes two owners with the same structure and ids", () => {
    const events = [
      ...tenant("ownerA"),
      ...tenant("ownerB"),
      tombstone("license", 2, { id: "l1", clientId: "c1", projectId: "p1" }, "ownerB"),
    ];
    const slice = project(events.map(toEvent));
    const a = renderBody(ownerFragments(slice, "ownerA"), NOW);
    const b = renderBody(ownerFragments(slice, "ownerB", "c1"), NOW);
    expect(a.data).toEqual([expect.objectContaining({ name: "ownerA client", owner: "ownerA" })]);
    expect(a.data[0]!.projects).toEqual([
      expect.objectContaining({ name: "ownerA project", licenses: [expect.objectContaining({ key: "ownerA-key" })] }),
    ]);
    expect(b.data).toEqual([expect.objectContaining({ name: "ownerB client", owner: "ownerB" })]);
    expect(b.data[0]!.projects).toEqual([expect.objectContaining({ name: "ownerB project", licenses: [] })]);
  });

  it("gives an empty dashboard for an owner who only shares ids with another", () => {
    expect(dashboard(tenant("ownerA"), "ownerC")).toMatchObject({ clientsCount: 0, projectsCount: 0, data: [] });
  });
});

describe("ordering", () => {
  it("orders clients by createdAt instant, then id", () => {
    const body = dashboard([
      client("cA", { createdAt: day(3) }),
      client("cC", { createdAt: day(2) }),
      // 2024-01-02T23:00Z: before cA although its text sorts after cA's
      client("cD", { createdAt: "2024-01-03T01:00:00+02:00" }),
      client("cB", { createdAt: day(2) }),
      client("cZ", { createdAt: day(1) }),
    ]);
    expect(body.data.map((c) => c._id)).toEqual(["cZ", "cB", "cC", "cD", "cA"]);
  });

  it("orders projects by createdAt, then id", () => {
    const body = dashboard([
      client("c1"),
      projectOf("pB", "c1", { createdAt: day(5) }),
      projectOf("pA", "c1", { createdAt: day(6) }),
      projectOf("pC", "c1", { createdAt: day(5) }),
      projectOf("pD", "c1", { createdAt: day(4) }),
    ]);
    expect(tree(body)).toEqual([
      [
        "c1",
        [
          ["pD", []],
          ["pB", []],
          ["pC", []],
          ["pA", []],
        ],
      ],
    ]);
  });

  it("orders licenses by createdAt, else issuedAt, then id", () => {
    const body = dashboard([
      ...parents,
      license("lE", "p1", { createdAt: day(9), issuedAt: day(1) }),
      license("lD", "p1", { issuedAt: day(6) }),
      license("lB", "p1", { createdAt: day(5), issuedAt: day(20) }),
      license("lC", "p1", { issuedAt: day(5) }),
      license("lA", "p1", { createdAt: day(7), issuedAt: day(2) }),
    ]);
    expect(licensesOf(body).map((l) => l._id)).toEqual(["lB", "lC", "lD", "lA", "lE"]);
  });
});

describe("read-time expiry", () => {
  const justBefore = "2024-05-31T23:59:59.999Z";
  const justAfter = "2024-06-01T00:00:00.001Z";
  const statusOf = (data: Partial<LicenseState>, now = NOW) =>
    licensesOf(dashboard([...parents, license("l1", "p1", data)], OWNER, now))[0]!.status;

  it("serves an ACTIVE license whose expiresAt is at or before now as EXPIRED", () => {
    expect(statusOf({ status: "ACTIVE", expiresAt: NOW.toISOString() })).toBe("EXPIRED");
    expect(statusOf({ status: "ACTIVE", expiresAt: "2024-06-01T02:00:00+02:00" })).toBe("EXPIRED");
    expect(statusOf({ status: "ACTIVE", expiresAt: justBefore })).toBe("EXPIRED");
  });

  it("keeps an ACTIVE license ACTIVE while expiresAt is in the future", () => {
    expect(statusOf({ status: "ACTIVE", expiresAt: justAfter })).toBe("ACTIVE");
    expect(statusOf({ status: "ACTIVE", expiresAt: NOW.toISOString() }, new Date(justBefore))).toBe("ACTIVE");
  });

  it.each(["PENDING", "REVOKED", "EXPIRED"] as const)("never changes a %s license", (status) => {
    expect(statusOf({ status, expiresAt: justBefore })).toBe(status);
    expect(statusOf({ status, expiresAt: justAfter })).toBe(status);
  });

  it("leaves the stored expiresAt as it is", () => {
    const [view] = licensesOf(dashboard([...parents, license("l1", "p1", { expiresAt: justBefore })]));
    expect(view).toMatchObject({ status: "EXPIRED", expiresAt: justBefore });
  });
});

describe("machineId", () => {
  it.each([
    ["absent", {}],
    ["null", { machineId: null as unknown as string }],
  ])("is left out of the license when %s", (_name, data) => {
    const [view] = licensesOf(dashboard([...parents, license("l1", "p1", data)]));
    expect(view).toBeDefined();
    expect(view).not.toHaveProperty("machineId");
  });

  it("is shown when the license has one", () => {
    expect(licensesOf(dashboard([...parents, license("l1", "p1", { machineId: "hash" })]))[0]).toHaveProperty(
      "machineId",
      "hash",
    );
  });
});
