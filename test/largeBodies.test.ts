// Large dashboards through a real query-API process: their bodies are filled, piece by piece as the
// socket takes them, from one snapshot of the store, into memory that is reused once a piece has
// been sent (bodyPieces.ts). A body must never be overwritten by another while a client is still
// being sent it, however slowly that client reads; it is the dashboard as it was when asked for,
// whatever the projector commits meanwhile; a client that leaves ends the snapshot it held; and no
// more bodies hold a snapshot at once than STREAMED_BODIES_MAX allows.
import { randomBytes } from "node:crypto";
import net from "node:net";
import path from "node:path";
import { open } from "lmdb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientCreated, licenseEvent, projectCreated } from "./support/events.ts";
import { bearer, httpGet, rawRequest, type HttpResult } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { eventually, startPipeline, tokenFor, type Pipeline } from "./support/pipeline.ts";
import { spawnQueryApi, type ServiceProcess } from "./support/process.ts";

const nats = useNats();
let pipeline: Pipeline;
let api: ServiceProcess;
let url: string;

/**
 * Two owners of about 10 MB each (random base64 in every license), different byte for byte: more
 * than the sockets' buffers hold, so a client that stops reading leaves most of its body queued in
 * the server, in the pieces it was assembled in.
 */
const OWNERS = ["slowReadOwner", "otherLargeOwner"] as const;
const LICENSES = 48;

beforeAll(async () => {
  pipeline = await startPipeline(nats.url);
  ({ url, service: api } = await spawnQueryApi(nats.url, pipeline.config.DATA_DIR, {
    RESPONSE_CACHE_MB: "0",
    STREAMED_BODIES_MAX: "1",
  }));
  for (const owner of OWNERS) {
    const place = { clientId: `${owner}Client`, projectId: `${owner}Project` };
    await pipeline.publish(clientCreated(owner, place.clientId));
    await pipeline.publish(projectCreated(owner, place.projectId, { clientId: place.clientId }));
    await Promise.all(
      Array.from({ length: LICENSES }, (_, i) =>
        pipeline.publish(
          licenseEvent(owner, `${owner}${i}`, { ...place, services: [randomBytes(150_000).toString("base64")] }),
        ),
      ),
    );
  }
  await eventually(async () => {
    const counts = await Promise.all(
      OWNERS.map(async (owner) => (await dashboard(owner)).data[0]?.projects[0]?.licenses.length),
    );
    return counts.every((count) => count === LICENSES) ? true : undefined;
  }, 60_000);
}, 180_000);

afterAll(async () => {
  api?.child.kill("SIGTERM");
  await api?.exited;
  await pipeline?.stop();
});

async function dashboard(owner: string): Promise<any> {
  return (await httpGet(`${url}/dashboard`, { headers: bearer(await tokenFor({ userId: owner })) })).body;
}

/** A sample's value on the query API's /metrics (`series`: its name and labels as shown); 0 if absent. */
async function metric(series: string): Promise<number> {
  const text: string = (await httpGet(`${url}/metrics`)).body;
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return Number(line?.split(" ")[1] ?? 0);
}

/** Large bodies the query API is filling from a snapshot they hold now (its gauge). */
const streamedBodies = () => metric("keybox_query_dashboard_streamed_bodies");
/** Bytes of large bodies assembled whole that the query API holds now (its gauge). */
const assembledBytes = () => metric("keybox_query_dashboard_assembled_body_bytes");

/** Whether the query-API process holds an LMDB read transaction (a snapshot) open now. */
function apiHoldsSnapshot(): boolean {
  // LMDB's reader table: a line per reader slot, with its process, thread and transaction ("-" when
  // the slot is kept for reuse with no transaction open).
  const env = open({ path: path.join(pipeline.config.DATA_DIR, "lmdb"), maxDbs: 256, readOnly: true });
  return env
    .readerList()
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .some(([pid, , txn]) => pid === String(api.child.pid) && txn !== undefined && txn !== "-");
}

/** GET /dashboard of `owner` on a raw socket that reads nothing until `resume()`; resolves with the body. */
async function slowRead(
  owner: string,
  apiUrl = url,
): Promise<{ resume: () => void; leave: () => void; body: Promise<Buffer> }> {
  const { port } = new URL(apiUrl);
  const token = await tokenFor({ userId: owner });
  const socket = net.connect(Number(port), "127.0.0.1");
  socket.pause();
  socket.write(
    `GET /dashboard HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
  );
  const chunks: Buffer[] = [];
  const body = new Promise<Buffer>((resolve, reject) => {
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("end", () => {
      const response = Buffer.concat(chunks);
      const headEnd = response.indexOf("\r\n\r\n");
      const head = response.subarray(0, headEnd).toString("latin1");
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1]);
      const rest = response.subarray(headEnd + 4);
      if (!head.startsWith("HTTP/1.1 200") || rest.length !== length)
        reject(new Error(`${head.split("\r\n")[0]} with ${rest.length} of ${length} bytes`));
      else resolve(rest);
    });
  });
  return { resume: () => socket.resume(), leave: () => socket.destroy(), body };
}

describe("a large dashboard read slowly", () => {
  it("arrives as it was when asked for, while other large dashboards are sent in full meanwhile", async () => {
    const [slowOwner, otherOwner] = OWNERS;
    const expected = JSON.stringify(await dashboard(slowOwner));
    const slow = await slowRead(slowOwner);
    // The slow body's first pieces are queued: the server waits on the socket, its snapshot open.
    await eventually(async () => apiHoldsSnapshot() || undefined);
    // Sent in full one after the other, their memory reused from one to the next.
    for (let i = 0; i < 4; i++)
      expect((await dashboard(otherOwner)).data[0].projects[0].licenses).toHaveLength(LICENSES);
    // The projector changes the slow owner's dashboard meanwhile: its new version is served...
    const place = { clientId: `${slowOwner}Client`, projectId: `${slowOwner}Project` };
    await pipeline.publish(
      licenseEvent(slowOwner, `${slowOwner}0`, { ...place, services: ["changed"] }, { version: 2 }),
    );
    await eventually(async () => {
      const licenses = (await dashboard(slowOwner)).data[0].projects[0].licenses;
      return licenses.some((license: { services: string[] }) => license.services[0] === "changed") || undefined;
    });
    // ...while the slow client still gets, to the last byte, the one it asked for.
    slow.resume();
    const body = await slow.body;
    // Where it first differs (-1: nowhere), not the 10 MB themselves, when it does.
    const differsAt = body.findIndex((byte, i) => byte !== expected.charCodeAt(i));
    expect({ length: body.length, differsAt }).toEqual({ length: expected.length, differsAt: -1 });
  });

  it("is streamed for at most STREAMED_BODIES_MAX clients at once (here 1), assembled whole for the others", async () => {
    const [first, second] = [await slowRead(OWNERS[0]), await slowRead(OWNERS[1])];
    await eventually(async () => apiHoldsSnapshot() || undefined);
    await new Promise((r) => setTimeout(r, 300)); // both asked and answered as far as they go
    expect(await streamedBodies()).toBe(1);
    first.resume();
    second.resume();
    const bodies = await Promise.all([first.body, second.body]);
    for (const [i, body] of bodies.entries()) expect(body.toString()).toBe(JSON.stringify(await dashboard(OWNERS[i]!)));
    expect(await streamedBodies()).toBe(0);
  });

  it("holds no snapshot for a request pipelined behind a response that never ends", async () => {
    const { port } = new URL(url);
    const token = await tokenFor({ userId: OWNERS[0] });
    const request = (path: string) =>
      `GET ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    const socket = net.connect(Number(port), "127.0.0.1");
    socket.on("error", () => {}); // cut short on purpose
    // A live stream, then the large dashboard: its response waits behind the stream for good (and
    // node:http never closes such a queued response when the client leaves).
    socket.write(request("/dashboard/events") + request("/dashboard"));
    await new Promise((r) => setTimeout(r, 1000));
    expect({ holds: apiHoldsSnapshot(), streamed: await streamedBodies() }).toEqual({ holds: false, streamed: 0 });
    // Its body waits, copied whole, for its turn: counted as memory a large body holds until then.
    expect(await assembledBytes()).toBeGreaterThan(1024 * 1024);
    socket.destroy();
    await eventually(async () => ((await assembledBytes()) === 0 ? true : undefined));
  });

  it("answers HEAD with the headers GET sends, without reading or compressing the body", async () => {
    const owner = OWNERS[1];
    const token = await tokenFor({ userId: owner });
    const ask = (method: string, acceptEncoding?: string) =>
      rawRequest(
        url,
        `${method} /dashboard HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n` +
          (acceptEncoding ? `Accept-Encoding: ${acceptEncoding}\r\n` : "") +
          "Connection: close\r\n\r\n",
      );
    const sameHead = (head: HttpResult, get: HttpResult) => {
      expect({ status: head.status, body: head.body }).toEqual({ status: 200, body: "" });
      for (const name of ["content-length", "content-encoding", "etag", "vary", "cache-control", "content-type"])
        expect([name, head.headers[name]]).toEqual([name, get.headers[name]]);
    };
    const get = await ask("GET");
    expect(get.status).toBe(200);
    expect(Number(get.headers["content-length"])).toBeGreaterThan(1024 * 1024); // streamed from its snapshot
    sameHead(await ask("HEAD"), get);

    const gzipStreams = 'keybox_query_dashboard_compressions_total{coding="gzip",body="streamed"}';
    const compressedBefore = await metric(gzipStreams);
    const getGzip = await ask("GET", "gzip"); // compressed as it is streamed: the counter counts
    expect(await metric(gzipStreams)).toBe(compressedBefore + 1);
    // As GET's compressed answer: the coding, no length (a streamed compressed body is chunked).
    expect([getGzip.headers["content-encoding"], getGzip.headers["content-length"]]).toEqual(["gzip", undefined]);
    sameHead(await ask("HEAD", "gzip"), getGzip);
    expect(await metric(gzipStreams)).toBe(compressedBefore + 1);
    expect({ holds: apiHoldsSnapshot(), streamed: await streamedBodies() }).toEqual({ holds: false, streamed: 0 });
  });

  it("is assembled whole within ASSEMBLED_BODIES_MAX_MB at once, past it answered 503, and one is always admitted", async () => {
    // Every large body assembled whole (none streamed), and 1 MiB for them: less than one body.
    const { url: tightUrl, service } = await spawnQueryApi(nats.url, pipeline.config.DATA_DIR, {
      RESPONSE_CACHE_MB: "0",
      STREAMED_BODIES_MAX: "0",
      ASSEMBLED_BODIES_MAX_MB: "1",
    });
    let held: Awaited<ReturnType<typeof slowRead>> | undefined;
    try {
      const tightMetric = async (series: string) => {
        const text: string = (await httpGet(`${tightUrl}/metrics`)).body;
        return Number(
          text
            .split("\n")
            .find((line) => line.startsWith(`${series} `))
            ?.split(" ")[1] ?? 0,
        );
      };
      const assembledBytes = () => tightMetric("keybox_query_dashboard_assembled_body_bytes");
      const get = async (owner: string) =>
        httpGet(`${tightUrl}/dashboard`, { headers: bearer(await tokenFor({ userId: owner })) });
      const [heldOwner, otherOwner] = OWNERS;
      held = await slowRead(heldOwner, tightUrl); // admitted: nothing else held
      await eventually(async () => ((await assembledBytes()) > 1024 * 1024 ? true : undefined));
      const refused = await get(otherOwner);
      expect([refused.status, refused.headers["retry-after"], refused.body]).toEqual([
        503,
        "1",
        { message: "Too many large dashboards are being sent; try again shortly" },
      ]);
      expect(await tightMetric("keybox_query_dashboard_large_bodies_refused_total")).toBe(1);
      held.resume();
      expect((await held.body).toString()).toBe(JSON.stringify(await dashboard(heldOwner)));
      await eventually(async () => ((await assembledBytes()) === 0 ? true : undefined));
      const served = await get(otherOwner);
      expect(served.status).toBe(200);
      expect(served.body.data[0].projects[0].licenses).toHaveLength(LICENSES);
      await eventually(async () => ((await assembledBytes()) === 0 ? true : undefined));
    } finally {
      held?.leave(); // a paused client would hold the process's shutdown
      service.child.kill("SIGTERM");
      await service.exited;
    }
  });

  it("ends the snapshot it was filled from once its client leaves halfway", async () => {
    const slow = await slowRead(OWNERS[1]);
    slow.body.catch(() => {}); // cut short on purpose
    await eventually(async () => apiHoldsSnapshot() || undefined);
    slow.leave();
    await eventually(async () => !apiHoldsSnapshot() || undefined);
    // And it goes on serving large bodies whole.
    expect((await dashboard(OWNERS[1])).data[0].projects[0].licenses).toHaveLength(LICENSES);
  });
});
