// Revalidation of GET /dashboard (ETag, Cache-Control, If-None-Match → 304) through a real
// query-API process on the read model a real projector keeps from a real nats-server.
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startQueryApi } from "@keybox/query-api";
import type { Envelope } from "@keybox/contract";
import type { DashboardStore } from "@keybox/read-model";
import { createLogger } from "@keybox/runtime";
import {
  dashboardScope,
  dashboardTag,
  parseIfNoneMatch,
  stillCurrent,
} from "../services/query-api/src/domain/revalidation.ts";
import { DashboardCache } from "../services/query-api/src/domain/dashboardCache.ts";
import type { OwnerVerifier } from "../services/query-api/src/auth.ts";
import {
  createDashboardFastPath,
  type FastPathFindingsByRequest,
} from "../services/query-api/src/dashboardFastPath.ts";
import { clientEvent, licenseEvent, projectCreated } from "./support/events.ts";
import { bearer, httpGet, rawRequest, type HttpResult } from "./support/http.ts";
import { wholeDashboard } from "./support/inMemory.ts";
import { useNats } from "./support/nats.ts";
import { eventually, startPipeline, tokenFor, type Pipeline } from "./support/pipeline.ts";
import { spawnQueryApi, type ServiceProcess } from "./support/process.ts";

const nats = useNats();
let pipeline: Pipeline;
let api: ServiceProcess;
let apiUrl: string;
beforeAll(async () => {
  // The projector (and its store) in this process; the query API as a process of its own on the
  // same LMDB folder, as deployed.
  pipeline = await startPipeline(nats.url);
  ({ url: apiUrl, service: api } = await spawnQueryApi(nats.url, pipeline.config.DATA_DIR, { LOG_LEVEL: "warn" }));
});
afterAll(async () => {
  if (api && api.child.exitCode === null) {
    api.child.kill("SIGTERM");
    await api.exited;
  }
  await pipeline?.stop();
});

interface Ask {
  ownerId: string;
  query?: string;
  body?: string;
  ifNoneMatch?: string;
}

async function ask({ ownerId, query = "", body, ifNoneMatch }: Ask, url = apiUrl): Promise<HttpResult> {
  const headers: Record<string, string> = bearer(await tokenFor({ userId: ownerId }));
  if (ifNoneMatch !== undefined) headers["If-None-Match"] = ifNoneMatch;
  return httpGet(`${url}/dashboard${query}`, { headers, body });
}

/** A 200 with its ETag and Cache-Control; gives the ETag. */
function expectFull(res: HttpResult): string {
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ message: "Dashboard fetched successfully" });
  expect(res.headers["cache-control"]).toBe("private, no-cache");
  const etag = res.headers.etag!;
  expect(etag).toMatch(/^"[^"]+"$/); // strong
  return etag;
}

/** A 304: no body, the ETag given back, the same Cache-Control. */
function expectNotModified(res: HttpResult, etag: string): void {
  expect(res.status).toBe(304);
  expect(res.body).toBe("");
  expect(res.headers.etag).toBe(etag);
  expect(res.headers["cache-control"]).toBe("private, no-cache");
}

async function publishAll(...events: Envelope[]) {
  for (const e of events) await pipeline.publish(e);
}

/** Waits until the owner's dashboard (or one client's) satisfies `done`; gives that answer. */
async function when(request: Ask, done: (body: any) => boolean): Promise<HttpResult> {
  return eventually(async () => {
    const res = await ask(request);
    return res.status === 200 && done(res.body) ? res : undefined;
  });
}

/** The value of one series (`name{labels}`) on the query API's /metrics, 0 when absent. */
const series = async (name: string) => {
  const line = ((await httpGet(`${apiUrl}/metrics`)).body as string).split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.slice(name.length + 1) ?? 0);
};
const metric = (source: string) => series(`keybox_query_dashboard_reads_total{source="${source}"}`);

const clientNamed = (owner: string, id: string, name: string, version: number) =>
  clientEvent(owner, id, { name, email: `${id}@x.io` }, { version });
const nameOf = (body: any, id: string) => body.data.find((c: any) => c._id === id)?.name;

describe("ETag and Cache-Control", () => {
  const owner = "etagOwner";

  beforeAll(async () => {
    await publishAll(clientNamed(owner, "c1", "one", 1), clientNamed(owner, "c2", "two", 1));
    await when({ ownerId: owner }, (b) => b.clientsCount === 2);
  });

  it("answers 304 with no body to the ETag it gave, from the version alone", async () => {
    const etag = expectFull(await ask({ ownerId: owner }));
    const [revalidated, cache, store] = [await metric("revalidated"), await metric("cache"), await metric("store")];
    expectNotModified(await ask({ ownerId: owner, ifNoneMatch: etag }), etag);
    // Weak comparison (RFC 9110 for If-None-Match), in a list, with whitespace and empty elements.
    expectNotModified(await ask({ ownerId: owner, ifNoneMatch: `W/${etag}` }), etag);
    expectNotModified(await ask({ ownerId: owner, ifNoneMatch: `"other", ,${etag} ,W/"x"` }), etag);
    // Neither the cache nor the store was asked for a body.
    expect(await metric("revalidated")).toBe(revalidated + 3);
    expect([await metric("cache"), await metric("store")]).toEqual([cache, store]);
    // `*` matches any current body.
    expectNotModified(await ask({ ownerId: owner, ifNoneMatch: "*" }), etag);
  });

  it("gives a new ETag after a change, and the old one no longer matches", async () => {
    const before = expectFull(await ask({ ownerId: owner }));
    await publishAll(clientNamed(owner, "c1", "one v2", 2));
    const after = await when({ ownerId: owner }, (b) => nameOf(b, "c1") === "one v2");
    const etag = expectFull(after);
    expect(etag).not.toBe(before);
    const stale = await ask({ ownerId: owner, ifNoneMatch: before });
    expect(expectFull(stale)).toBe(etag);
    expect(stale.body).toEqual(after.body);
    expectNotModified(await ask({ ownerId: owner, ifNoneMatch: etag }), etag);
  });

  it("gives one client's view an ETag that a change to another client leaves alone and one to it moves", async () => {
    const c1 = { ownerId: owner, query: "?clientId=c1" };
    const c1Tag = expectFull(await ask(c1));
    const wholeTag = expectFull(await ask({ ownerId: owner }));
    expect(c1Tag).not.toBe(wholeTag);

    await publishAll(clientNamed(owner, "c2", "two v2", 2));
    const whole = await when({ ownerId: owner }, (b) => nameOf(b, "c2") === "two v2");
    expect(expectFull(whole)).not.toBe(wholeTag);
    // c2 changed, not c1: c1's tag still holds.
    expectNotModified(await ask({ ...c1, ifNoneMatch: c1Tag }), c1Tag);

    await publishAll(clientNamed(owner, "c1", "one v3", 3));
    const changed = await when(c1, (b) => nameOf(b, "c1") === "one v3");
    const newTag = expectFull(changed);
    expect(newTag).not.toBe(c1Tag);
    expect(expectFull(await ask({ ...c1, ifNoneMatch: c1Tag }))).toBe(newTag);
    expectNotModified(await ask({ ...c1, ifNoneMatch: newTag }), newTag);
  });

  it("never shares an ETag between the whole dashboard and a JSON body's clientId, nor between owners", async () => {
    const whole = expectFull(await ask({ ownerId: owner }));
    const viaBody = { ownerId: owner, body: JSON.stringify({ clientId: "c1" }) };
    const bodyTag = expectFull(await ask(viaBody));
    expect(bodyTag).not.toBe(whole);
    // The same URL: the body decides, and the unfiltered tag does not vouch for the filtered view.
    const res = await ask({ ...viaBody, ifNoneMatch: whole });
    expect(expectFull(res)).toBe(bodyTag);
    expect(res.body.clientsCount).toBe(1);
    expectNotModified(await ask({ ...viaBody, ifNoneMatch: bodyTag }), bodyTag);
    // The query string and the body name the same view.
    expect(expectFull(await ask({ ownerId: owner, query: "?clientId=c1" }))).toBe(bodyTag);
    // Two owners with nothing both read version 0 with no expiry; their tags still differ.
    const nobody = expectFull(await ask({ ownerId: "etagNobody1" }));
    expect(expectFull(await ask({ ownerId: "etagNobody2" }))).not.toBe(nobody);
    expect((await ask({ ownerId: "etagNobody2", ifNoneMatch: nobody })).status).toBe(200);
  });

  it.each([
    ["garbage", "garbage"],
    ["an unterminated tag", '"1.-.abc'],
    ["a bare W/", "W/"],
    ["a lowercase weak prefix", 'w/"1.-.abc"'],
    ["two tags without a comma", '"a" "b"'],
    ["* in a list", '*, "a"'],
    ["an empty tag", '""'],
    ["only commas", " , ,"],
    ["an empty value", ""],
    ["a tag with a quote inside", '"1.-".abc"'],
    ["a tag of this owner's form with a forged validity", '"1.abc.x"'],
    ["a very long list of other tags", Array.from({ length: 500 }, (_, i) => `"t${i}"`).join(", ")],
  ])("answers %s in If-None-Match with 200 as if there were none", async (_name, ifNoneMatch) => {
    const plain = await ask({ ownerId: owner });
    const res = await ask({ ownerId: owner, ifNoneMatch });
    expect(expectFull(res)).toBe(plain.headers.etag);
    expect(res.body).toEqual(plain.body);
  });
});

describe("an ETag and time", () => {
  it("stops matching once an ACTIVE license in the body reaches its end, with no event", async () => {
    const owner = "etagExpiryOwner";
    const expiresAt = new Date(Date.now() + 3000).toISOString();
    await publishAll(
      clientNamed(owner, "ec", "C", 1),
      projectCreated(owner, "ep", { clientId: "ec", name: "P" }),
      licenseEvent(owner, "soon", { clientId: "ec", projectId: "ep", expiresAt, status: "ACTIVE" }),
      licenseEvent(owner, "later", { clientId: "ec", projectId: "ep", status: "ACTIVE" }),
    );
    const statuses = (b: any) => b.data[0]?.projects[0]?.licenses.map((l: any) => `${l._id} ${l.status}`);
    const first = await when({ ownerId: owner }, (b) => statuses(b)?.length === 2);
    expect(statuses(first.body)).toEqual(["later ACTIVE", "soon ACTIVE"].sort());
    const etag = expectFull(first);
    expect(etag).toContain(`.${Date.parse(expiresAt)}.`);
    expectNotModified(await ask({ ownerId: owner, ifNoneMatch: etag }), etag);

    await new Promise((r) => setTimeout(r, Date.parse(expiresAt) - Date.now() + 50));
    const expired = await ask({ ownerId: owner, ifNoneMatch: etag });
    const next = expectFull(expired);
    expect(next).not.toBe(etag);
    expect(statuses(expired.body)).toEqual(["later ACTIVE", "soon EXPIRED"].sort());
    // The same stored version: only the validity moved ("later" expires in 2099).
    expect(next.split(".")[0]).toBe(etag.split(".")[0]);
    expect(next).toContain(`.${Date.parse("2099-01-01T00:00:00.000Z")}.`);
    expectNotModified(await ask({ ownerId: owner, ifNoneMatch: next }), next);
  });
});

describe("a 304 in the query API", () => {
  const owner = "etagCountedOwner";
  const log = createLogger("test", "silent");
  beforeAll(async () => {
    await publishAll(clientNamed(owner, "k1", "K", 1));
    await when({ ownerId: owner }, (b) => b.clientsCount === 1);
  });

  /** The pipeline's store, counting what is asked of it. */
  function countedStore(calls: string[]): DashboardStore {
    const inner = pipeline.store;
    return {
      version: (ownerId: string, clientId?: string) => {
        calls.push(`version ${ownerId} ${clientId ?? ""}`);
        return inner.version(ownerId, clientId);
      },
      openDashboard: (ownerId: string, clientId?: string) => {
        calls.push(`openDashboard ${ownerId} ${clientId ?? ""}`);
        return inner.openDashboard(ownerId, clientId);
      },
      // Held in memory (LMDB reads it from its environment's map): not a store round trip.
      identity: () => inner.identity(),
    } as DashboardStore;
  }

  it("costs one point read of the version: no fragment read, no render", async () => {
    const calls: string[] = [];
    const api = await startQueryApi(pipeline.config, pipeline.nc, countedStore(calls), log);
    try {
      // Answered before Hono (no body), and by the app (a clientId in a JSON body; a query it leaves to the app).
      for (const request of [
        { query: "" },
        { query: "?clientId=k1" },
        { body: JSON.stringify({ clientId: "k1" }) },
        { query: "?clientId=k%31" }, // percent-encoded: left to the app
      ]) {
        const etag = expectFull(await ask({ ownerId: owner, ...request }, api.url));
        calls.length = 0;
        expectNotModified(await ask({ ownerId: owner, ...request, ifNoneMatch: etag }, api.url), etag);
        expect([request, calls]).toEqual([request, [`version ${owner} ${request.query === "" ? "" : "k1"}`]]);
      }
    } finally {
      await api.close();
    }
  });

  it("reads the version once for a request the fast path leaves to the app", async () => {
    const calls: string[] = [];
    const api = await startQueryApi(pipeline.config, pipeline.nc, countedStore(calls), log);
    try {
      const etag = expectFull(await ask({ ownerId: owner }, api.url));
      // Not cached yet (the fast path reads the version, the app the body); then a tag of another
      // version (the app answers 200 from the cache); then the cached body, from the fast path.
      for (const [request, expected] of [
        [{ query: "?clientId=k1" }, [`version ${owner} k1`, `openDashboard ${owner} k1`]],
        [{ ifNoneMatch: etag.replace(/^"\d+/, '"999') }, [`version ${owner} `]],
        [{}, [`version ${owner} `]],
      ] as const) {
        calls.length = 0;
        expectFull(await ask({ ownerId: owner, ...request }, api.url));
        expect([request, calls]).toEqual([request, expected]);
      }
    } finally {
      await api.close();
    }
  });

  it("leaves to the app what it cannot answer 304: a refused token, a bad clientId, a store failure", async () => {
    const etag = expectFull(await ask({ ownerId: owner }));
    const badToken = await httpGet(`${apiUrl}/dashboard`, {
      headers: {
        ...bearer(await tokenFor({ userId: owner }, { secret: "another-secret-of-at-least-32-chars!!" })),
        "If-None-Match": etag,
      },
    });
    expect(badToken.status).toBe(401);
    expect((await ask({ ownerId: owner, query: "?clientId=not%20valid", ifNoneMatch: etag })).status).toBe(400);
    const failing = { version: () => Promise.reject(new Error("store is down")) } as unknown as DashboardStore;
    const api = await startQueryApi(pipeline.config, pipeline.nc, failing, log);
    try {
      const res = await ask({ ownerId: owner, ifNoneMatch: etag }, api.url);
      expect(res.status).toBe(500);
      expect(res.body).toMatchObject({ message: "Failed to fetch dashboard" });
    } finally {
      await api.close();
    }
  });
});

describe("the dashboard fast path and the app, on one request", () => {
  const owner = "fastAndAppOwner";
  beforeAll(async () => {
    await publishAll(clientNamed(owner, "f1", "F", 1));
    await when({ ownerId: owner }, (b) => b.clientsCount === 1);
  });

  const verifications = (result: "accepted" | "refused") =>
    series(`keybox_query_token_verifications_total{result="${result}"}`);

  it("checks a token's signature once, whichever path answers", async () => {
    const etag = expectFull(await ask({ ownerId: owner }));
    const refusedToken = await tokenFor({ userId: owner }, { secret: "another-secret-of-at-least-32-chars!!" });
    const refusedBefore = await verifications("refused");
    for (const ifNoneMatch of [undefined, etag]) {
      const headers: Record<string, string> = bearer(refusedToken);
      if (ifNoneMatch) headers["If-None-Match"] = ifNoneMatch;
      const res = await httpGet(`${apiUrl}/dashboard`, { headers });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ message: "Unauthorized" });
    }
    expect(await verifications("refused")).toBe(refusedBefore + 2);
    // A new good token: checked once, then remembered (the fast path and the app share the cache).
    const acceptedBefore = await verifications("accepted");
    const fresh = { ...bearer(await tokenFor({ userId: owner, n: "fresh" })), "If-None-Match": etag };
    for (let i = 0; i < 3; i++) expect((await httpGet(`${apiUrl}/dashboard`, { headers: fresh })).status).toBe(304);
    expect(await verifications("accepted")).toBe(acceptedBefore + 1);
  });

  it("counts each answer once in the request counter and histogram, from either path", async () => {
    const counts = async () => {
      const result: number[] = [];
      for (const status of ["200", "304"])
        for (const name of ["keybox_query_http_requests_total", "keybox_query_http_request_duration_seconds_count"])
          result.push(await series(`${name}{route="/dashboard",status="${status}"}`));
      return result;
    };
    const etag = expectFull(await ask({ ownerId: owner })); // the body cached, the token remembered
    const before = await counts();
    // 200s: cached (the fast path), and a JSON body's clientId (the app); 304s: both paths too.
    for (const request of [{}, {}, { body: JSON.stringify({ clientId: "f1" }) }])
      expectFull(await ask({ ownerId: owner, ...request }));
    for (const request of [{}, { body: "{}" }])
      expectNotModified(await ask({ ownerId: owner, ...request, ifNoneMatch: etag }), etag);
    const [ok, okTimed, notModified, notModifiedTimed] = before;
    expect(await counts()).toEqual([ok! + 3, okTimed! + 3, notModified! + 2, notModifiedTimed! + 2]);
  });

  it("answers a request with two Authorization headers as the app does: 401, never 200 or 304", async () => {
    const good = await tokenFor({ userId: owner });
    const asked = (authorizations: string[], more = "") =>
      rawRequest(
        apiUrl,
        "GET /dashboard HTTP/1.1\r\nHost: x\r\n" +
          authorizations.map((token) => `Authorization: Bearer ${token}\r\n`).join("") +
          `${more}Connection: close\r\n\r\n`,
      );
    await asked([good]);
    // The body cached, the token remembered: alone, it is answered from memory.
    const etag = expectFull(await asked([good]));
    const other = await tokenFor({ userId: "fastAndAppOther" });
    for (const second of [good, other])
      for (const conditional of ["", `If-None-Match: ${etag}\r\n`]) {
        const res = await asked([good, second], conditional);
        expect([second === good, conditional, res.status, res.body]).toEqual([
          second === good,
          conditional,
          401,
          { message: "Unauthorized" },
        ]);
      }
  });
});

describe("If-None-Match and tags, on their own", () => {
  it("parses lists, weak tags and *, and refuses what is not the grammar", () => {
    expect(parseIfNoneMatch(undefined)).toBeUndefined();
    expect(parseIfNoneMatch(" * ")).toEqual({ any: true });
    expect(parseIfNoneMatch('"a"')).toEqual({ any: false, tags: ["a"] });
    expect(parseIfNoneMatch(' W/"a" ,, "b",')).toEqual({ any: false, tags: ["a", "b"] });
    for (const bad of ["a", '"a', '"a"b', '"a" "b"', "*,*", 'W/ "a"', '"a\u0001"', ""])
      expect([bad, parseIfNoneMatch(bad)]).toEqual([bad, undefined]);
  });

  it("takes a tag as current for its version and scope until its validity ends", () => {
    const scope = dashboardScope("1", "o", "c");
    expect(scope).not.toBe(dashboardScope("1", "o", undefined));
    expect(scope).not.toBe(dashboardScope("1", "oc", undefined));
    // A rebuilt store counts versions from 0 again: its tags never match the old store's.
    expect(scope).not.toBe(dashboardScope("2", "o", "c"));
    const until = "2030-01-01T00:00:00.000Z";
    const tag = dashboardTag(scope, 7, until);
    expect(tag).toBe(`7.${Date.parse(until)}.${scope}`);
    expect(stillCurrent([tag], scope, 7, Date.parse(until) - 1, "identity")).toBe(tag);
    expect(stillCurrent([tag], scope, 7, Date.parse(until), "identity")).toBeUndefined();
    expect(stillCurrent([tag], scope, 8, 0, "identity")).toBeUndefined();
    expect(stillCurrent([tag], dashboardScope("1", "o", undefined), 7, 0, "identity")).toBeUndefined();
    const forever = dashboardTag(scope, 7, undefined);
    expect(forever).toBe(`7.-.${scope}`);
    expect(stillCurrent(["x", forever], scope, 7, Number.MAX_SAFE_INTEGER, "identity")).toBe(forever);
    // The 7 of "17" is not version 7.
    expect(stillCurrent([`17.-.${scope}`], scope, 7, 0, "identity")).toBeUndefined();
    // A coded tag is current only for a request that would get that coding.
    expect(stillCurrent([`${forever}.br`], scope, 7, 0, "br")).toBe(`${forever}.br`);
    expect(stillCurrent([`${forever}.br`], scope, 7, 0, "gzip")).toBeUndefined();
    expect(stillCurrent([`${forever}.gzip`], scope, 7, 0, "identity")).toBeUndefined();
    expect(stillCurrent([forever], scope, 7, 0, "br")).toBe(forever);
  });
});

// Answering later: a verifier and a store that only answer with promises (MongoDB, a token not seen
// yet); at once: a remembered token and a store that reads at once (LMDB).
describe.each([
  ["answering later", false],
  ["answering at once", true],
])("the dashboard fast path, on its own, %s", (_, atOnce) => {
  const scope = dashboardScope("1", "o1", undefined);
  const tag = dashboardTag(scope, 5, undefined);
  const current = `"${tag}"`;
  const cachedBody = Buffer.from(`{"data":"${"x".repeat(2000)}"}`);
  const gzipped = Buffer.from("pretend gzip");
  /** A cache holding o1's whole dashboard at version 5, and (once `keepGzip`) its gzip form. */
  function cacheAtVersion(version: number, keepGzip = false): DashboardCache {
    const cache = new DashboardCache({ maxEntries: 10, maxBytes: 1024 * 1024 });
    const dashboard = wholeDashboard(cachedBody);
    cache.set("o1/", { version, dashboard });
    if (keepGzip) cache.keepEncodedForm("o1/", dashboard, "gzip", gzipped);
    return cache;
  }
  /** How many times the fast path asked who the token's owner is. */
  let looked = 0;
  /** o1's version in the store (its clients' stay 0). */
  let storeVersion = 5;
  const versionNow = (ownerId: string, clientId?: string) => (ownerId === "o1" && !clientId ? storeVersion : 0);
  const ownerOf = (authorization: string | undefined) => {
    looked++;
    return authorization === "Bearer good" ? { ownerId: "o1", expiresAtMs: Number.POSITIVE_INFINITY } : undefined;
  };
  /** What the fast path left for the app, by request. */
  let findings: FastPathFindingsByRequest;
  /** The store's identity, as the fast path finds it on each request ("2": a rebuilt store). */
  let storeIdentity = "1";
  const fastPath = (cache?: DashboardCache) => {
    // At once: the good token is remembered; any other has its signature checked, as by the real verifier.
    const verifyOwner: OwnerVerifier = (authorization) =>
      atOnce && authorization === "Bearer good" ? ownerOf(authorization) : Promise.resolve(ownerOf(authorization));
    findings = new WeakMap();
    return createDashboardFastPath({
      store: {
        version: async (ownerId: string, clientId?: string) => versionNow(ownerId, clientId),
        ...(atOnce && { versionNow }),
        identity: () => storeIdentity,
      },
      verifyOwner,
      ...(cache && { cache }),
      compressionMinBytes: 1024,
      findings,
    });
  };
  /**
   * What the fast path does with a request: "<status> <etag> <coding> <body bytes>", "left" (to the
   * app without looking) or "declined: <what it tells the app>" (after looking).
   */
  async function outcome(
    request: { method?: string; url?: string; headers?: Record<string, string | undefined>; rawHeaders?: string[] },
    answering = fastPath(),
  ) {
    const headers = { authorization: "Bearer good", "if-none-match": current, ...request.headers };
    const written: string[] = [];
    const res = {
      writeHead: (status: number, h: Record<string, string>) => ({
        end: (body?: Uint8Array) => {
          // A body goes with its own length; a 304 has neither.
          expect(h["Content-Length"]).toBe(body === undefined ? undefined : String(body.byteLength));
          written.push(`${status} ${h.ETag} ${h["Content-Encoding"] ?? "-"} ${body?.byteLength ?? 0}`);
        },
      }),
    };
    looked = 0;
    const req = { method: "GET", url: "/dashboard", rawHeaders: [], ...request, headers };
    const answered = answering(req as never, res as never);
    // At once (a boolean, not a promise) exactly when it can be: a remembered token, or no looking.
    expect(typeof answered === "boolean").toBe(looked === 0 || (atOnce && headers.authorization === "Bearer good"));
    if (await answered) return written.join();
    const found = findings.get(req as never);
    if (looked === 0) return found ? "left, with findings" : "left";
    return `declined: ${found?.owner ? `${found.owner.ownerId} at ${found.version}` : "no owner"}`;
  }

  it("answers 304 only to a plain conditional GET /dashboard whose tag is current", async () => {
    expect(await outcome({})).toBe(`304 ${current} - 0`);
    expect(await outcome({ headers: { "if-none-match": `W/${current}, "x"` } })).toBe(`304 ${current} - 0`);
    expect(await outcome({ headers: { "if-none-match": '"5.-.other"' } })).toBe("declined: o1 at 5");
    expect(await outcome({ headers: { authorization: "Bearer bad" } })).toBe("declined: no owner");
    expect(await outcome({ url: "/dashboard?clientId=c1" })).toBe("declined: o1 at 0"); // c1 is at 0
    expect(await outcome({ method: "HEAD" })).toBe("left");
    expect(await outcome({ url: "/dashboard/" })).toBe("left");
    expect(await outcome({ url: "/dashboards" })).toBe("left");
    expect(await outcome({ url: "/dashboard?clientId=c1&x=1" })).toBe("left");
    expect(await outcome({ headers: { "content-length": "20" } })).toBe("left");
    expect(await outcome({ headers: { "transfer-encoding": "chunked" } })).toBe("left");
    expect(await outcome({ headers: { "if-none-match": "*" } })).toBe("left");
    expect(await outcome({ headers: { "if-none-match": "garbage" } })).toBe("left");
    expect(await outcome({ headers: { "keybox-min-seq": "3" } })).toBe("left");
    // node:http keeps the first of two Authorization headers; the app sees both (and refuses them).
    const twice = ["Authorization", "Bearer good", "If-None-Match", current, "authorization", "Bearer good"];
    expect(await outcome({ rawHeaders: twice })).toBe("left");
    expect(await outcome({ rawHeaders: twice.slice(0, 4) })).toBe(`304 ${current} - 0`);
  });

  it("answers 200 from the response cache only with a body of the current version, in a coding it keeps", async () => {
    const plain = { headers: { "if-none-match": undefined } };
    const gzip = { headers: { "if-none-match": undefined, "accept-encoding": "gzip" } };
    expect(await outcome(plain)).toBe("left"); // no cache: nothing to answer from
    expect(await outcome(plain, fastPath(cacheAtVersion(5)))).toBe(`200 ${current} - ${cachedBody.byteLength}`);
    expect(await outcome(plain, fastPath(cacheAtVersion(4)))).toBe("declined: o1 at 5"); // the store moved on
    expect(
      await outcome(
        { ...plain, headers: { ...plain.headers, authorization: "Bearer bad" } },
        fastPath(cacheAtVersion(5)),
      ),
    ).toBe("declined: no owner");
    // Compressed only once the app has compressed it and kept the result.
    expect(await outcome(gzip, fastPath(cacheAtVersion(5)))).toBe("declined: o1 at 5");
    expect(await outcome(gzip, fastPath(cacheAtVersion(5, true)))).toBe(`200 "${tag}.gzip" gzip ${gzipped.byteLength}`);
  });

  it("sends a cached body with the tag of the store it is served from, every time", async () => {
    const plain = { headers: { "if-none-match": undefined } };
    const answering = fastPath(cacheAtVersion(5));
    const sent = `200 ${current} - ${cachedBody.byteLength}`;
    expect([await outcome(plain, answering), await outcome(plain, answering)]).toEqual([sent, sent]);
    // A rebuilt store that happens to be at the same version: the same body, under its own scope.
    storeIdentity = "2";
    try {
      const rebuilt = `200 "${dashboardTag(dashboardScope("2", "o1", undefined), 5, undefined)}" - ${cachedBody.byteLength}`;
      expect(await outcome(plain, answering)).toBe(rebuilt);
    } finally {
      storeIdentity = "1";
    }
    expect(await outcome(plain, answering)).toBe(sent);
  });

  it("sends each body the cache holds with that body's own tag and length", async () => {
    const plain = { headers: { "if-none-match": undefined } };
    const gzip = { headers: { "if-none-match": undefined, "accept-encoding": "gzip" } };
    const cache = cacheAtVersion(5, true);
    const answering = fastPath(cache);
    expect(await outcome(plain, answering)).toBe(`200 ${current} - ${cachedBody.byteLength}`);
    expect(await outcome(gzip, answering)).toBe(`200 "${tag}.gzip" gzip ${gzipped.byteLength}`);
    // The store moves on and the app caches the new body: the same fast path sends it as it is now.
    const newer = Buffer.from(`{"data":"${"y".repeat(3000)}"}`);
    const dashboard = wholeDashboard(newer);
    storeVersion = 6;
    try {
      cache.set("o1/", { version: 6, dashboard });
      const tag6 = dashboardTag(scope, 6, undefined);
      expect(await outcome(plain, answering)).toBe(`200 "${tag6}" - ${newer.byteLength}`);
      // A compressed form kept, then kept again (other bytes): each is sent with its own length.
      for (const form of [Buffer.from("pretend gzip, longer"), Buffer.from("shorter")]) {
        cache.keepEncodedForm("o1/", dashboard, "gzip", form);
        expect(await outcome(gzip, answering)).toBe(`200 "${tag6}.gzip" gzip ${form.byteLength}`);
      }
    } finally {
      storeVersion = 5;
    }
  });
});

describe("a dashboard served from the response cache", () => {
  const owner = "cachedAnswersOwner";
  beforeAll(async () => {
    // Above the compression threshold (1 KiB), so that gzip and br are sent compressed.
    for (let i = 0; i < 12; i++)
      await pipeline.publish(clientNamed(owner, `c${i}`, `Client ${i} ${"n".repeat(60)}`, 1));
    await when({ ownerId: owner }, (b) => b.clientsCount === 12);
  });

  /** The raw answer: status, headers but Date, body bytes. */
  async function raw(query: string, acceptEncoding?: string) {
    const headers: Record<string, string> = bearer(await tokenFor({ userId: owner }));
    if (acceptEncoding) headers["Accept-Encoding"] = acceptEncoding;
    return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      http
        .get(`${apiUrl}/dashboard${query}`, { headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const { date: _date, ...rest } = res.headers;
            resolve({ status: res.statusCode ?? 0, headers: rest, body: Buffer.concat(chunks) });
          });
        })
        .on("error", reject);
    });
  }

  it("is the very answer the app gives (status, headers, bytes), plain and compressed", async () => {
    for (const coding of [undefined, "gzip", "br"]) {
      // The second request of each is answered from the cache; `?clientId=c%31`, which the fast path
      // leaves to the app (percent-encoded), asks the app for the same client's view.
      for (const [fast, app] of [
        ["", "?"],
        ["?clientId=c1", "?clientId=c%31"],
      ] as const) {
        await raw(fast, coding);
        const cached = await raw(fast, coding);
        const fromApp = await raw(app, coding);
        expect(cached.status).toBe(200);
        // One client's view is below the threshold: sent as it is, whatever is accepted.
        expect(cached.headers["content-encoding"]).toBe(fast === "" ? coding : undefined);
        expect([coding, fast, cached]).toEqual([coding, fast, fromApp]);
      }
    }
  });
});
