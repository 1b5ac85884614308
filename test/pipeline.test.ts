// The whole pipeline on real parts: events published to NATS JetStream, the projector, the LMDB
// read model, and GET /dashboard over HTTP.
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startQueryApi } from "@keybox/query-api";
import {
  buildEnvelope,
  dashboardChangedSchema,
  dashboardChangedSubject,
  publishEvent,
  type DashboardChanged,
  type Envelope,
} from "@keybox/contract";
import { createLogger } from "@keybox/runtime";
import { DEMO_OWNER_ID, exampleEvents } from "../scripts/seedExample.ts";
import { clientCreated, clientEvent, licenseEvent, projectCreated } from "./support/events.ts";
import { bearer, httpGet } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { eventually, startPipeline, tokenFor, type Pipeline } from "./support/pipeline.ts";

const expected = createRequire(import.meta.url)("./fixtures/seed-example-response.json");

const nats = useNats();
let pipeline: Pipeline;
beforeAll(async () => {
  pipeline = await startPipeline(nats.url);
});
afterAll(async () => pipeline?.stop());

async function dashboard(ownerId: string, query = "", body?: string) {
  return httpGet(`${pipeline.api.url}/dashboard${query}`, {
    headers: bearer(await tokenFor({ userId: ownerId })),
    body,
  });
}

/** Waits until the owner's dashboard satisfies `done`, and returns it. */
async function dashboardWhen(ownerId: string, done: (body: any) => boolean) {
  return eventually(async () => {
    const res = await dashboard(ownerId);
    return res.status === 200 && done(res.body) ? res.body : undefined;
  });
}

function withOwner(body: any, ownerId: string) {
  return { ...body, data: body.data.map((c: any) => ({ ...c, owner: ownerId })) };
}

function shuffle<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe("the API document's example", () => {
  it("is served exactly, with ACTIVE licenses past their expiry served as EXPIRED", async () => {
    for (const e of exampleEvents()) await pipeline.publish(e);
    const body = await dashboardWhen(
      DEMO_OWNER_ID,
      (b) =>
        b.projectsCount === 3 &&
        b.data[1]?.projects[0]?.licenses.length === 1 &&
        b.data[0].projects[1]?.licenses.length === 1 &&
        b.data[0].projects[0]?.licenses.length === 1,
    );
    expect(body).toEqual(expected);
  });

  it("is the same with events shuffled and duplicated (new message ids, so the projector de-duplicates)", async () => {
    const owner = "shuffledOwner01";
    const events = exampleEvents(owner);
    const redelivered = events.map((e) => ({ ...e, id: `${e.id}-again` }));
    for (const e of shuffle([...events, ...redelivered], 7)) await pipeline.publish(e);
    const body = await dashboardWhen(owner, (b) => JSON.stringify(b) === JSON.stringify(withOwner(expected, owner)));
    expect(body).toEqual(withOwner(expected, owner));
  });

  it("filters by clientId from the query string or from a GET body", async () => {
    const techStart = { ...expected, clientsCount: 1, projectsCount: 1, data: [expected.data[1]] };
    const viaQuery = await dashboard(DEMO_OWNER_ID, "?clientId=60f7b3b3e6b3a72e8c8e4a1f");
    expect(viaQuery.status).toBe(200);
    expect(viaQuery.body).toEqual(techStart);
    const viaBody = await dashboard(DEMO_OWNER_ID, "", JSON.stringify({ clientId: "60f7b3b3e6b3a72e8c8e4a1f" }));
    expect(viaBody.body).toEqual(techStart);
  });
});

describe("the original KeyBox behaviours", () => {
  it("gives an owner with no data 200, zero counts and no data", async () => {
    const res = await dashboard("ownerWithNothing");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      message: "Dashboard fetched successfully",
      clientsCount: 0,
      projectsCount: 0,
      data: [],
    });
  });

  it("shows a client without projects and a project without licenses with empty arrays", async () => {
    const owner = "emptyArraysOwner";
    const t = "2024-03-01T00:00:00.000Z";
    await pipeline.publish(clientCreated(owner, "lonelyClient", { name: "Lonely", email: "l@x.io", createdAt: t }));
    await pipeline.publish(
      clientCreated(owner, "busyClient", { name: "Busy", email: "b@x.io", createdAt: "2024-03-02T00:00:00.000Z" }),
    );
    await pipeline.publish(
      projectCreated(owner, "bareProject", { clientId: "busyClient", name: "Bare", createdAt: t }),
    );
    const body = await dashboardWhen(owner, (b) => b.projectsCount === 1);
    expect(body.data).toEqual([
      { _id: "lonelyClient", name: "Lonely", email: "l@x.io", owner, projects: [] },
      {
        _id: "busyClient",
        name: "Busy",
        email: "b@x.io",
        owner,
        projects: [{ _id: "bareProject", name: "Bare", client: "busyClient", licenses: [] }],
      },
    ]);
  });

  it("never shows another owner's data, also when asked for another owner's clientId", async () => {
    const res = await dashboard("someoneElse", "?clientId=60f7b3b3e6b3a72e8c8e4a1a");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      message: "Dashboard fetched successfully",
      clientsCount: 0,
      projectsCount: 0,
      data: [],
    });
    const unknown = await dashboard(DEMO_OWNER_ID, "?clientId=doesNotExist");
    expect(unknown.body).toMatchObject({ clientsCount: 0, projectsCount: 0, data: [] });
  });
});

describe("authentication", () => {
  const unauthorized = { message: "Unauthorized" };
  // RFC 6750: a request without a bearer token is told the scheme; a refused token is named.
  const noToken = 'Bearer realm="keybox"';
  const badToken = 'Bearer realm="keybox", error="invalid_token"';
  const cases: [string, () => Promise<Record<string, string>>, string][] = [
    ["no Authorization header", async () => ({}), noToken],
    ["another scheme", async () => ({ Authorization: `Basic ${Buffer.from("a:b").toString("base64")}` }), noToken],
    [
      "a bad signature",
      async () =>
        bearer(await tokenFor({ userId: DEMO_OWNER_ID }, { secret: "another-secret-of-at-least-32-chars!!" })),
      badToken,
    ],
    [
      "a token that expired 5 minutes ago",
      async () => bearer(await tokenFor({ userId: DEMO_OWNER_ID }, { expiresIn: "-5m" })),
      badToken,
    ],
    [
      "a token without exp",
      async () => bearer(await tokenFor({ userId: DEMO_OWNER_ID }, { expiresIn: null })),
      badToken,
    ],
    [
      "an HS384 token (only HS256 is configured)",
      async () => bearer(await tokenFor({ userId: DEMO_OWNER_ID }, { alg: "HS384" })),
      badToken,
    ],
    [
      "an HS512 token (only HS256 is configured)",
      async () => bearer(await tokenFor({ userId: DEMO_OWNER_ID }, { alg: "HS512" })),
      badToken,
    ],
    [
      "alg: none",
      async () => {
        const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
        const header = part({ alg: "none", typ: "JWT" });
        const payload = part({ userId: DEMO_OWNER_ID, exp: Math.floor(Date.now() / 1000) + 3600 });
        return bearer(`${header}.${payload}.`);
      },
      badToken,
    ],
    ["no owner claim", async () => bearer(await tokenFor({ role: "admin" })), badToken],
    ["an owner claim that is not a string", async () => bearer(await tokenFor({ userId: 42 })), badToken],
    ["an owner claim that is not an id", async () => bearer(await tokenFor({ userId: "../../etc" })), badToken],
    ["garbage", async () => bearer("not-a-jwt"), badToken],
  ];
  it.each(cases)("rejects %s with 401 and a WWW-Authenticate challenge", async (_name, headers, challenge) => {
    const res = await httpGet(`${pipeline.api.url}/dashboard`, { headers: await headers() });
    expect(res.status).toBe(401);
    expect(res.body).toEqual(unauthorized);
    expect(res.headers["www-authenticate"]).toBe(challenge);
  });

  it("accepts a token that expired 5 seconds ago (within the 30 s clock tolerance)", async () => {
    const res = await httpGet(`${pipeline.api.url}/dashboard`, {
      headers: bearer(await tokenFor({ userId: DEMO_OWNER_ID }, { expiresIn: "-5s" })),
    });
    expect(res.status).toBe(200);
  });

  it("accepts HS384 and HS512 tokens when JWT_ALGORITHMS lists them", async () => {
    const api = await startQueryApi(
      { ...pipeline.config, JWT_ALGORITHMS: ["HS256", "HS384", "HS512"] },
      pipeline.nc,
      pipeline.store,
      createLogger("test", "silent"),
    );
    try {
      for (const alg of ["HS256", "HS384", "HS512"] as const) {
        const res = await httpGet(`${api.url}/dashboard`, {
          headers: bearer(await tokenFor({ userId: DEMO_OWNER_ID }, { alg })),
        });
        expect([alg, res.status]).toEqual([alg, 200]);
      }
    } finally {
      await api.close();
    }
  });

  it("takes the owner from `sub` when there is no userId claim", async () => {
    const res = await httpGet(`${pipeline.api.url}/dashboard`, {
      headers: bearer(await tokenFor({ sub: DEMO_OWNER_ID })),
    });
    expect(res.status).toBe(200);
    expect(res.body.clientsCount).toBe(2);
  });

  it("takes the owner from `sub` also when the owner claim is named like an inherited property", async () => {
    const api = await startQueryApi(
      { ...pipeline.config, JWT_OWNER_CLAIM: "constructor" },
      pipeline.nc,
      pipeline.store,
      createLogger("test", "silent"),
    );
    try {
      const res = await httpGet(`${api.url}/dashboard`, { headers: bearer(await tokenFor({ sub: DEMO_OWNER_ID })) });
      expect(res.status).toBe(200);
      expect(res.body.clientsCount).toBe(2);
    } finally {
      await api.close();
    }
  });
});

describe("clientId validation", () => {
  const invalid = { message: "Invalid clientId" };
  it.each([
    ["query: bad characters", "?clientId=not%20valid!", undefined],
    ["query: empty", "?clientId=", undefined],
    ["query: too long", `?clientId=${"a".repeat(65)}`, undefined],
    ["query: given twice", "?clientId=a&clientId=b", undefined],
    ["body: operator object", "", JSON.stringify({ clientId: { $ne: null } })],
    ["body: number", "", JSON.stringify({ clientId: 42 })],
    ["body: array", "", JSON.stringify({ clientId: ["60f7b3b3e6b3a72e8c8e4a1a"] })],
    ["body: not JSON", "", "{clientId:"],
    ["body: not an object", "", JSON.stringify("60f7b3b3e6b3a72e8c8e4a1a")],
    [
      "query and body disagree",
      "?clientId=60f7b3b3e6b3a72e8c8e4a1a",
      JSON.stringify({ clientId: "60f7b3b3e6b3a72e8c8e4a1f" }),
    ],
  ])("%s gives 400", async (_name, query, body) => {
    const res = await dashboard(DEMO_OWNER_ID, query, body);
    expect(res.status).toBe(400);
    expect(res.body).toEqual(invalid);
  });
});

describe("invalid events", () => {
  it("go to KEYBOX_DLQ with their reason, and later events are still applied", async () => {
    const owner = "dlqOwner";
    const js = pipeline.nc.jetstream();
    const good = clientCreated(owner, "goodClient", { name: "Good", email: "g@x.io" });
    const bad: [string, string | Uint8Array, RegExp][] = [
      [`keybox.events.${owner}.client.created`, "{not json", /bad JSON/],
      [
        `keybox.events.${owner}.client.created`,
        JSON.stringify({ ...good, data: { ...good.data, email: 7 } }),
        /data: email/,
      ],
      [
        `keybox.events.${owner}.client.created`,
        JSON.stringify({ ...good, ownerid: "intruder" }),
        /ownerid intruder does not match/,
      ],
      [
        `keybox.events.${owner}.client.created`,
        JSON.stringify({ ...good, data: { ...good.data, ownerId: "intruder" } }),
        /data.ownerId intruder/,
      ],
      [`keybox.events.${owner}.client.updated`, JSON.stringify(good), /does not match subject/],
      [`keybox.events.${owner}.client.created`, new Uint8Array(300 * 1024).fill(32), /too large/],
    ];
    for (const [subject, payload] of bad) await js.publish(subject, payload);
    await publishEvent(js, good);

    const body = await dashboardWhen(owner, (b) => b.clientsCount === 1);
    expect(body.data[0]).toMatchObject({ _id: "goodClient", name: "Good", email: "g@x.io" });

    const jsm = await pipeline.nc.jetstreamManager();
    const reasons = await eventually(async () => {
      const found: { subject: string; reason: string }[] = [];
      const info = await jsm.streams.info(pipeline.config.DLQ_STREAM);
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage(pipeline.config.DLQ_STREAM, { seq }).catch(() => undefined);
        if (m?.subject.startsWith(`keybox.dlq.${owner}.`))
          found.push({ subject: m.subject, reason: m.header.get("KeyBox-DLQ-Reason") });
      }
      return found.length === bad.length ? found : undefined;
    });
    for (const [i, [, , pattern]] of bad.entries()) expect(reasons[i]!.reason).toMatch(pattern);
    expect(reasons[0]!.subject).toBe(`keybox.dlq.${owner}.client.created`);
  });
});

// Issue 6: "__proto__" is a legal id; the stored parts must keep it through LMDB's msgpack.
describe('a license whose id is "__proto__"', () => {
  const parents = (ownerId: string) => [
    clientCreated(ownerId, "c1", { name: "C", email: "c@x.io" }),
    projectCreated(ownerId, "p1", { clientId: "c1", name: "P" }),
  ];
  const license = (ownerId: string, id: string, version: number, status: "PENDING" | "ACTIVE") =>
    licenseEvent(ownerId, id, { clientId: "c1", projectId: "p1", status }, { version });
  const licensesOf = (body: any): string[] =>
    body.data.flatMap((c: any) => c.projects.flatMap((p: any) => p.licenses.map((l: any) => `${l._id} ${l.status}`)));

  /** Publishes `events` and waits until they are applied (committed, so later events read them back from the store). */
  async function publishApplied(ownerId: string, events: Envelope[], served: string[]) {
    for (const e of [...parents(ownerId), ...events]) await pipeline.publish(e);
    await dashboardWhen(ownerId, (b) => JSON.stringify(licensesOf(b)) === JSON.stringify(served));
  }
  /** Publishes `events` and then a second client; once that shows, gives the licenses served. */
  async function publishThenRead(ownerId: string, events: Envelope[]) {
    const marker = clientCreated(ownerId, "marker", {
      name: "M",
      email: "m@x.io",
      createdAt: "2024-02-01T00:00:00.000Z",
    });
    for (const e of [...events, marker]) await pipeline.publish(e);
    return licensesOf(await dashboardWhen(ownerId, (b) => b.clientsCount === 2));
  }

  it("serves its update (v2 ACTIVE), not v1 PENDING", async () => {
    const owner = "protoUpdateOwner";
    await publishApplied(owner, [license(owner, "__proto__", 1, "PENDING")], ["__proto__ PENDING"]);
    expect(await publishThenRead(owner, [license(owner, "__proto__", 2, "ACTIVE")])).toEqual(["__proto__ ACTIVE"]);
  });

  it('keeps "__proto_" created before it in the same project', async () => {
    const owner = "protoNeighbourOwner";
    await publishApplied(owner, [license(owner, "__proto_", 1, "PENDING")], ["__proto_ PENDING"]);
    expect(await publishThenRead(owner, [license(owner, "__proto__", 1, "ACTIVE")])).toEqual([
      "__proto_ PENDING",
      "__proto__ ACTIVE",
    ]);
  });

  it("is no longer served once deleted", async () => {
    const owner = "protoDeleteOwner";
    await publishApplied(owner, [license(owner, "__proto__", 1, "PENDING")], ["__proto__ PENDING"]);
    const gone = buildEnvelope({
      entity: "license",
      action: "deleted",
      version: 2,
      data: { id: "__proto__", ownerId: owner, clientId: "c1", projectId: "p1" },
    });
    expect(await publishThenRead(owner, [gone])).toEqual([]);
  });
});

describe("the response cache", () => {
  it("serves repeated reads from the cache, yet shows updates at once and expiry on time", async () => {
    const owner = "cachedOwner";
    const expiresAt = new Date(Date.now() + 2500).toISOString();
    const license = (version: number, key: string) =>
      licenseEvent(
        owner,
        "soonExpired",
        { clientId: "cachedClient", projectId: "cachedProject", key, duration: 1, expiresAt, status: "ACTIVE" },
        { version, action: version === 1 ? "activated" : "updated" },
      );
    await pipeline.publish(clientCreated(owner, "cachedClient", { name: "C", email: "c@x.io" }));
    await pipeline.publish(projectCreated(owner, "cachedProject", { clientId: "cachedClient", name: "P" }));
    await pipeline.publish(license(1, "KEY-1"));
    const licenseOf = (b: any) => b.data[0]?.projects[0]?.licenses[0];
    await dashboardWhen(owner, (b) => licenseOf(b)?.key === "KEY-1");

    const hits = async () =>
      Number(
        /^keybox_query_dashboard_reads_total\{source="cache"\} (\d+)$/m.exec(
          (await httpGet(`${pipeline.api.url}/metrics`)).body,
        )?.[1] ?? 0,
      );
    const before = await hits();
    expect(licenseOf((await dashboard(owner)).body)).toMatchObject({ key: "KEY-1", status: "ACTIVE" });
    expect(licenseOf((await dashboard(owner)).body)).toMatchObject({ key: "KEY-1", status: "ACTIVE" });
    expect(await hits()).toBeGreaterThan(before);

    await pipeline.publish(license(2, "KEY-2"));
    expect(licenseOf(await dashboardWhen(owner, (b) => licenseOf(b)?.key === "KEY-2"))).toMatchObject({
      status: "ACTIVE",
    });
    // No event says so, yet once its end has passed the cached answer is not served again.
    await new Promise((r) => setTimeout(r, Date.parse(expiresAt) - Date.now() + 50));
    expect(licenseOf((await dashboard(owner)).body)).toMatchObject({ key: "KEY-2", status: "EXPIRED" });
  });
});

describe("change notices", () => {
  it("announce each commit on keybox.dashboard.changed.<owner> with the owner's growing version", async () => {
    const owner = "noticeOwner";
    const notices: DashboardChanged[] = [];
    const sub = pipeline.nc.subscribe(dashboardChangedSubject(owner), {
      callback: (_error, msg) => notices.push(dashboardChangedSchema.parse(msg.json())),
    });
    await pipeline.nc.flush();
    const client = (version: number) =>
      clientEvent(owner, "noticed", { name: `v${version}`, email: "n@x.io" }, { version });
    await pipeline.publish(client(1));
    await eventually(async () => (notices.length === 1 ? true : undefined));
    await pipeline.publish(client(2));
    await eventually(async () => (notices.length === 2 ? true : undefined));
    sub.unsubscribe();
    expect(notices.map((n) => n.ownerId)).toEqual([owner, owner]);
    expect(notices.map((n) => n.clients)).toEqual([["noticed"], ["noticed"]]);
    expect(notices[1]!.version).toBeGreaterThan(notices[0]!.version);
  });
});

describe("freshness and health", () => {
  it("shows a published event in GET /dashboard well within a second", async () => {
    const owner = "freshOwner";
    const started = Date.now();
    await pipeline.publish(clientCreated(owner, "fresh", { name: "Fresh", email: "f@x.io" }));
    await dashboardWhen(owner, (b) => b.clientsCount === 1);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("answers /healthz and /readyz", async () => {
    expect((await httpGet(`${pipeline.api.url}/healthz`)).status).toBe(200);
    const ready = await httpGet(`${pipeline.api.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: "ready", store: "ok", nats: "open" });
  });

  it("answers unknown paths with a JSON 404", async () => {
    const res = await httpGet(`${pipeline.api.url}/nope`);
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ message: "Not Found" });
  });
});
