// Paging GET /dashboard over real parts: events through a real nats-server and the projector into
// LMDB, pages over HTTP. A walk over a 1,000-client tenant that changes between pages serves every
// client that exists throughout exactly once, in response order.
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishEvent, type Envelope } from "@keybox/contract";
import { DEMO_OWNER_ID, exampleEvents } from "../scripts/seedExample.ts";
import { clientEvent, projectCreated } from "./support/events.ts";
import { bearer, httpGet } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { eventually, startPipeline, tokenFor, type Pipeline } from "./support/pipeline.ts";

const expected = createRequire(import.meta.url)("./fixtures/seed-example-response.json");

const nats = useNats();
let pipeline: Pipeline;
beforeAll(async () => {
  pipeline = await startPipeline(nats.url);
  for (const e of exampleEvents()) await pipeline.publish(e);
});
afterAll(async () => pipeline?.stop());

/** Publishes events and returns the stream sequence of the last (JetStream's publish acknowledgement). */
async function publishAll(events: Envelope[]): Promise<number> {
  const js = pipeline.nc.jetstream();
  let seq = 0;
  for (const e of events) seq = (await publishEvent(js, e)).seq;
  return seq;
}

async function dashboard(ownerId: string, query = "") {
  return httpGet(`${pipeline.api.url}/dashboard${query}`, { headers: bearer(await tokenFor({ userId: ownerId })) });
}

describe("paging the API document's example", () => {
  it("serves pages whose clients, counted per page, join up to the whole dashboard", async () => {
    await eventually(async () => ((await dashboard(DEMO_OWNER_ID)).body.projectsCount === 3 ? true : undefined));
    const whole = await dashboard(DEMO_OWNER_ID);
    expect(whole.body).toEqual(expected);
    expect(whole.body).not.toHaveProperty("nextCursor");

    const first = await dashboard(DEMO_OWNER_ID, "?limit=1");
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      message: "Dashboard fetched successfully",
      clientsCount: 1,
      projectsCount: 2,
      nextCursor: expect.any(String),
      data: [expected.data[0]],
    });
    const last = await dashboard(DEMO_OWNER_ID, `?limit=1&cursor=${first.body.nextCursor}`);
    expect(last.body).toEqual({
      message: "Dashboard fetched successfully",
      clientsCount: 1,
      projectsCount: 1,
      nextCursor: null,
      data: [expected.data[1]],
    });
    // A page that holds the last client says so, even when it is not full.
    const all = await dashboard(DEMO_OWNER_ID, "?limit=2");
    expect(all.body).toEqual({ ...expected, nextCursor: null });
    // A cursor without a limit: pages of the configured maximum.
    expect((await dashboard(DEMO_OWNER_ID, `?cursor=${first.body.nextCursor}`)).body.data).toEqual([expected.data[1]]);
  });

  it("pages the clientId filter's one client like any other set", async () => {
    const techStart = expected.data[1];
    const res = await dashboard(DEMO_OWNER_ID, `?clientId=${techStart._id}&limit=5`);
    expect(res.body).toEqual({ ...expected, clientsCount: 1, projectsCount: 1, nextCursor: null, data: [techStart] });
    const first = await dashboard(DEMO_OWNER_ID, "?limit=1");
    const beyond = await dashboard(DEMO_OWNER_ID, `?clientId=${expected.data[0]._id}&cursor=${first.body.nextCursor}`);
    expect(beyond.body).toEqual({ ...expected, clientsCount: 0, projectsCount: 0, nextCursor: null, data: [] });
  });
});

describe("limit and cursor validation", () => {
  const cursor = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  // Exactly the position of Acme Corporation, the first client: the page starts after it.
  const good = cursor(["2023-12-01T00:00:00.000Z", "60f7b3b3e6b3a72e8c8e4a1a"]);

  it.each([
    ["0", "?limit=0"],
    ["negative", "?limit=-1"],
    ["above the maximum", "?limit=1001"],
    ["not a number", "?limit=ten"],
    ["a fraction", "?limit=1.5"],
    ["a leading zero", "?limit=010"],
    ["empty", "?limit="],
    ["given twice", "?limit=1&limit=2"],
  ])("answers 400 to a limit that is %s", async (_name, query) => {
    const res = await dashboard(DEMO_OWNER_ID, query);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ message: "Invalid limit: must be a whole number from 1 to 1000" });
  });

  it.each([
    ["not base64url", "?cursor=not%20a%20cursor!"],
    ["empty", "?cursor="],
    ["base64url of something else", `?cursor=${Buffer.from("hello").toString("base64url")}`],
    ["padded", `?cursor=${good}%3D`],
    ["a time not in ISO form", `?cursor=${cursor(["2024-01-01", "60f7b3b3e6b3a72e8c8e4a1a"])}`],
    ["an invalid id", `?cursor=${cursor(["2024-01-01T00:00:00.000Z", "no id!"])}`],
    ["too many parts", `?cursor=${cursor(["2024-01-01T00:00:00.000Z", "a", "b"])}`],
    ["a huge string", `?cursor=${"A".repeat(2000)}`],
    ["given twice", `?cursor=${good}&cursor=${good}`],
  ])("answers 400 to a cursor that is %s", async (_name, query) => {
    const res = await dashboard(DEMO_OWNER_ID, `${query}&limit=1`);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ message: "Invalid cursor: pass nextCursor from the previous page as it is" });
  });

  it("accepts a well-formed cursor it did not issue, as a position", async () => {
    const res = await dashboard(DEMO_OWNER_ID, `?limit=5&cursor=${good}`);
    expect(res.body.data.map((c: any) => c._id)).toEqual([expected.data[1]._id]);
  });
});

describe("a walk over a 1,000-client tenant that changes meanwhile", () => {
  const owner = "pagedTenant";
  const CLIENTS = 1000;
  const LIMIT = 37;
  // Three clients per minute, so many share a time and are ordered by id.
  const timeOf = (n: number) => new Date(Date.UTC(2024, 0, 1) + Math.floor(n / 3) * 60_000).toISOString();
  const id = (n: number) => `client-${String(n).padStart(4, "0")}`;
  const createdAt = new Map<string, string>();
  const created = (clientId: string, time: string) => {
    createdAt.set(clientId, time);
    return clientEvent(owner, clientId, { createdAt: time });
  };

  it("serves every client that existed throughout exactly once, in response order", async () => {
    // Created in a shuffled order: the response order is by time and id, not by arrival.
    const numbers = Array.from({ length: CLIENTS }, (_, n) => (n * 389) % CLIENTS);
    const events = numbers.map((n) => created(id(n), timeOf(n)));
    for (let n = 0; n < CLIENTS; n += 10)
      events.push(projectCreated(owner, `project-${n}`, { clientId: id(n), createdAt: timeOf(n) }));
    let seq = await publishAll(events);
    await eventually(async () => ((await dashboard(owner)).body.projectsCount === CLIENTS / 10 ? true : undefined));

    // Every 25th client is deleted during the walk, two per page, wherever they are in the order.
    const doomed = numbers.filter((n) => n % 25 === 0).map(id);
    const survivors = new Set([...createdAt.keys()].filter((c) => !doomed.includes(c)));
    const lateClients: string[] = [];
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let page = 0; ; page++) {
      const res = await dashboard(owner, `?limit=${LIMIT}&minSeq=${seq}${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      expect(res.headers["keybox-fresh"]).toBe("true"); // the changes below landed before this page
      const { clientsCount, projectsCount, data, nextCursor } = res.body;
      expect(data.length).toBeLessThanOrEqual(LIMIT);
      expect(clientsCount).toBe(data.length);
      expect(projectsCount).toBe(data.reduce((sum: number, c: any) => sum + c.projects.length, 0));
      seen.push(...data.map((c: any) => c._id));
      if (nextCursor === null) break;
      expect(data).toHaveLength(LIMIT);
      cursor = nextCursor;

      // Meanwhile: a client is created before everything and one after; two doomed clients go;
      // three clients are renamed (their place in the order stays).
      const changes: Envelope[] = [
        created(`early-${page}`, "2023-06-01T00:00:00.000Z"),
        created(`late-${page}`, `2025-01-01T00:00:${String(page % 60).padStart(2, "0")}.000Z`),
      ];
      lateClients.push(`late-${page}`);
      for (const gone of doomed.splice(0, 2))
        changes.push(clientEvent(owner, gone, { createdAt: createdAt.get(gone)! }, { version: 2, action: "deleted" }));
      for (const k of [3, 500, 997]) {
        const n = (page * 7 + k) % CLIENTS;
        if (n % 25 === 0) continue; // a doomed client stays deleted
        const renamed = id(n);
        changes.push(
          clientEvent(
            owner,
            renamed,
            { name: `renamed ${page}`, createdAt: createdAt.get(renamed)! },
            { version: 2 + page },
          ),
        );
      }
      seq = await publishAll(changes);
    }

    expect(doomed).toEqual([]); // every deletion happened during the walk
    expect(new Set(seen).size).toBe(seen.length); // nothing twice
    const order = seen.map((c) => [createdAt.get(c)!, c] as const);
    const sorted = [...order].sort((a, b) => (a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] < b[1] ? -1 : 1));
    expect(order).toEqual(sorted);
    const missing = [...survivors].filter((c) => !seen.includes(c));
    expect(missing).toEqual([]);
    // Clients created ahead of the walk's position are reached too; those created behind it are not.
    expect(seen.filter((c) => c.startsWith("late-"))).toEqual(lateClients);
    expect(seen.filter((c) => c.startsWith("early-"))).toEqual([]);
  }, 120_000);
});
