// Compressed dashboards through a real query-API process: events go through a real nats-server and
// the projector into LMDB, and a separate query-API process on the same folder answers over HTTP.
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clientCreated, licenseEvent, projectCreated } from "./support/events.ts";
import { bearer, httpGet } from "./support/http.ts";
import { useNats } from "./support/nats.ts";
import { eventually, startPipeline, tokenFor, type Pipeline } from "./support/pipeline.ts";
import { spawnQueryApi, type ServiceProcess } from "./support/process.ts";

const nats = useNats();
let pipeline: Pipeline;
let api: ServiceProcess;
let url: string;

/** A few KB: compressed whole and cached. */
const SMALL = "smallOwner";
/** Under COMPRESSION_MIN_BYTES (1024 by default): one client without projects. */
const TINY = "tinyOwner";
/**
 * About 10 MB that compresses only to about three quarters (random base64 in each license), so a
 * client that stops reading leaves most of it unsent, past what the sockets' buffers hold.
 */
const LARGE = "largeOwner";
const LARGE_LICENSES = 48;
/** How long the API waits for a client that reads nothing of a large body (long enough for the tests' own reads). */
const STALL_MS = 5000;

beforeAll(async () => {
  pipeline = await startPipeline(nats.url);
  ({ url, service: api } = await spawnQueryApi(nats.url, pipeline.config.DATA_DIR, {
    COMPRESSION_MAX_STREAMS: "1",
    STALLED_BODY_TIMEOUT_MS: String(STALL_MS),
  }));

  const owned = (owner: string) => ({ clientId: `${owner}Client`, projectId: `${owner}Project` });
  for (const owner of [SMALL, LARGE]) {
    await pipeline.publish(clientCreated(owner, owned(owner).clientId));
    await pipeline.publish(projectCreated(owner, owned(owner).projectId, { clientId: owned(owner).clientId }));
  }
  await pipeline.publish(clientCreated(TINY, "tinyClient"));
  for (let i = 0; i < 20; i++) await pipeline.publish(licenseEvent(SMALL, `small${i}`, owned(SMALL)));
  await Promise.all(
    Array.from({ length: LARGE_LICENSES }, (_, i) =>
      pipeline.publish(
        licenseEvent(LARGE, `large${i}`, { ...owned(LARGE), services: [randomBytes(150_000).toString("base64")] }),
      ),
    ),
  );
  await eventually(async () => {
    const counts = await Promise.all(
      [SMALL, LARGE].map(async (owner) => (await get(owner)).json().data[0]?.projects[0]?.licenses.length),
    );
    return counts[0] === 20 && counts[1] === LARGE_LICENSES ? true : undefined;
  }, 30_000);
}, 120_000);

afterAll(async () => {
  api?.child.kill("SIGTERM");
  await api?.exited;
  await pipeline?.stop();
});

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body as it came over the wire, not decoded. */
  body: Buffer;
  json(): any;
}

/** GET /dashboard of `owner` with `Accept-Encoding: acceptEncoding` (none when undefined). */
async function get(owner: string, acceptEncoding?: string, ifNoneMatch?: string): Promise<RawResponse> {
  const headers: Record<string, string> = bearer(await tokenFor({ userId: owner }));
  if (acceptEncoding !== undefined) headers["Accept-Encoding"] = acceptEncoding;
  if (ifNoneMatch !== undefined) headers["If-None-Match"] = ifNoneMatch;
  return new Promise((resolve, reject) => {
    http
      .get(`${url}/dashboard`, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString()) });
        });
      })
      .on("error", reject);
  });
}

const decode = (res: RawResponse) =>
  res.headers["content-encoding"] === "br"
    ? zlib.brotliDecompressSync(res.body)
    : res.headers["content-encoding"] === "gzip"
      ? zlib.gunzipSync(res.body)
      : res.body;

/** The query API process's metric `name` with `labels` (0 when it has no such series yet). */
async function metric(name: string, ...labels: string[]): Promise<number> {
  const text: string = (await httpGet(`${url}/metrics`)).body;
  const series = labels.length > 0 ? `${name}{` : `${name} `;
  const line = text.split("\n").find((l) => l.startsWith(series) && labels.every((label) => l.includes(label)));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}
const compressions = (coding: string, body: "whole" | "streamed") =>
  metric("keybox_query_dashboard_compressions_total", `coding="${coding}"`, `body="${body}"`);

function expectUncompressed(res: RawResponse) {
  expect(res.status).toBe(200);
  expect(res.headers["content-encoding"]).toBeUndefined();
  expect(res.headers.vary).toBe("Accept-Encoding");
  expect(res.headers["content-length"]).toBe(String(res.body.length));
}

describe.each([
  ["a small dashboard", SMALL],
  ["a dashboard over 1 MiB", LARGE],
])("%s", (_name, owner) => {
  it("is sent uncompressed, with Content-Length, without Accept-Encoding or when it asks for identity", async () => {
    for (const acceptEncoding of [undefined, "identity", "identity;q=0", "gzip;q=0, br;q=0", "gzip;q=abc"]) {
      const res = await get(owner, acceptEncoding);
      expectUncompressed(res);
      expect(res.json()).toMatchObject({ message: "Dashboard fetched successfully", clientsCount: 1 });
    }
  });

  it.each([
    ["gzip", "gzip"],
    ["br", "br"],
    ["gzip, deflate, br", "br"],
    ["br;q=0.5, gzip", "gzip"],
    ["gzip;q=0, *", "br"],
  ])("with Accept-Encoding %j is sent in %s and decodes to exactly the uncompressed body", async (accept, coding) => {
    const plain = await get(owner);
    const res = await get(owner, accept);
    expect(res.status).toBe(200);
    expect(res.headers["content-encoding"]).toBe(coding);
    expect(res.headers.vary).toBe("Accept-Encoding");
    expect(res.body.length).toBeLessThan(plain.body.length);
    expect(decode(res).equals(plain.body)).toBe(true);
    // A strong validator per representation: the coding is part of the tag, and revalidates.
    expect(res.headers.etag).toBe(`${plain.headers.etag!.slice(0, -1)}.${coding}"`);
    const revalidated = await get(owner, accept, res.headers.etag);
    expect([revalidated.status, revalidated.headers.vary]).toEqual([304, "Accept-Encoding"]);
    if (owner === SMALL) {
      expect(res.headers["content-length"]).toBe(String(res.body.length));
    } else {
      // Streamed as it is compressed: its length is not known up front.
      expect(res.headers["content-length"]).toBeUndefined();
      expect(res.headers["transfer-encoding"]).toBe("chunked");
    }
  });
});

describe("compression and the response cache", () => {
  it("compresses a hot small dashboard once per coding, then serves the kept compressed form", async () => {
    // A change, so that the next read renders a new body with no compressed forms yet.
    const license = licenseEvent(SMALL, "smallHot", { clientId: `${SMALL}Client`, projectId: `${SMALL}Project` });
    await pipeline.publish(license);
    await eventually(async () =>
      (await get(SMALL)).json().data[0].projects[0].licenses.length === 21 ? true : undefined,
    );
    const plain = await get(SMALL);
    const [gzipBefore, brBefore] = [await compressions("gzip", "whole"), await compressions("br", "whole")];
    for (let i = 0; i < 3; i++) {
      for (const coding of ["gzip", "br"]) {
        const res = await get(SMALL, coding);
        expect(res.headers["content-encoding"]).toBe(coding);
        expect(decode(res).equals(plain.body)).toBe(true);
      }
    }
    expect(await compressions("gzip", "whole")).toBe(gzipBefore + 1);
    expect(await compressions("br", "whole")).toBe(brBefore + 1);
  });

  it("compresses a large dashboard for each request, as it streams it", async () => {
    const before = await compressions("gzip", "streamed");
    await get(LARGE, "gzip");
    await get(LARGE, "gzip");
    expect(await compressions("gzip", "streamed")).toBe(before + 2);
  });
});

describe("a dashboard under COMPRESSION_MIN_BYTES", () => {
  it("is sent uncompressed even when the client accepts gzip and br", async () => {
    const res = await get(TINY, "gzip, br");
    expectUncompressed(res);
    expect(res.body.length).toBeLessThan(1024);
    expect(res.json()).toMatchObject({ clientsCount: 1, projectsCount: 0 });
  });
});

describe("a client that stops reading a large compressed dashboard", () => {
  it("holds the only stream (COMPRESSION_MAX_STREAMS=1): another large body goes uncompressed meanwhile", async () => {
    await withStalledStream(async () => {
      const res = await get(LARGE, "br");
      expectUncompressed(res);
      expect(res.json().data[0].projects[0].licenses).toHaveLength(LARGE_LICENSES);
    });
  });

  it("is abandoned when connected but reading nothing for STALLED_BODY_TIMEOUT_MS, freeing the stream", async () => {
    const started = Date.now();
    await withStalledStream(async () => {
      await eventually(async () => ((await openStreams()) === 0 ? true : undefined), STALL_MS * 3);
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(STALL_MS - 500);
  });

  it("frees the compressor when it leaves, and the next request is streamed compressed in full", async () => {
    await withStalledStream(async () => {});
    const plain = await get(LARGE);
    const res = await get(LARGE, "br");
    expect(res.headers["content-encoding"]).toBe("br");
    expect(decode(res).equals(plain.body)).toBe(true);
  });
});

const openStreams = () => metric("keybox_query_dashboard_compressed_streams");

/**
 * Runs `during` while a client that asked for the large dashboard in br reads none of it, then
 * makes it leave and waits until the server has closed the stream.
 */
async function withStalledStream(during: () => Promise<void>): Promise<void> {
  expect(await openStreams()).toBe(0);
  const { port } = new URL(url);
  const token = await tokenFor({ userId: LARGE });
  const socket = net.connect(Number(port), "127.0.0.1");
  try {
    socket.pause(); // reads nothing: the server is held up by backpressure
    socket.write(
      `GET /dashboard HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\nAccept-Encoding: br\r\n\r\n`,
    );
    // Stalled mid-body, far from the end: the compressed stream stays open.
    await eventually(async () => ((await openStreams()) === 1 ? true : undefined));
    await new Promise((r) => setTimeout(r, 200));
    expect(await openStreams()).toBe(1);
    await during();
  } finally {
    socket.destroy();
  }
  await eventually(async () => ((await openStreams()) === 0 ? true : undefined));
}
