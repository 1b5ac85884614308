// Row 4: the large tenant read whole and its big client read alone, one request at a time, by a
// query API process started for this (so its idle memory is its own) and by the bare server; the
// API's memory and event-loop lag while it does. That API runs with its response cache off: the
// row is about the read itself (a busy tenant changes all the time, and every change invalidates).
// Its layout cache (LAYOUT_CACHE_MB) keeps each client's layout while the client is unchanged, so
// the row reads a tenant that changed before each read (one license update, the projector's commit
// awaited outside the timing): in one of its 80-license clients, or in its big client (a fifth of
// the tenant laid out again). Beside them, the same read with nothing changed (every layout kept),
// and by a second API with no layout cache (every client laid out on every read, as before it).
// Each update renews a license not renewed before in the row, so the body keeps its length.
import http from "node:http";
import { range, type Bench, type Measured } from "../context.ts";
import { bearer, scrapeMetric, timedRead } from "../http.ts";
import { acknowledged, publishAll } from "../jetstream.ts";
import { memoryBytes } from "../processes.ts";
import { NO_RESPONSE_CACHE, startQueryApi, type Running } from "../services.ts";
import { formatNumber, median, type Figure } from "../stats.ts";
import { licenseUpdates, type LicenseRecord } from "../workloads.ts";
import { MAIN_DURABLE, type Body, type Seeded } from "./seed.ts";

const MIB = 1024 * 1024;

/** The licenses of `licenses` one after another, each once, spread over them (7,919 is prime). */
function changes(licenses: LicenseRecord[]): () => LicenseRecord {
  let next = 0;
  return () => licenses[(next++ * 7919) % licenses.length]!;
}

export async function measureLargeTenant(bench: Bench, seeded: Seeded, bare: Running): Promise<Measured> {
  const { rounds, sequentialReads, largeTenant, quick } = bench.options;
  const api = await startQueryApi(bench.setup, {
    name: "query API (large tenant)",
    dataDir: seeded.dataDir,
    env: NO_RESPONSE_CACHE,
  });
  const apiWithoutLayouts = await startQueryApi(bench.setup, {
    name: "query API (large tenant, no layout cache)",
    dataDir: seeded.dataDir,
    env: { ...NO_RESPONSE_CACHE, LAYOUT_CACHE_MB: "0" },
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const idle = memoryBytes(api.pid);
    const headers = bearer(seeded.tokens.get(seeded.bodies.large.ownerId)!);
    const { licenses, bigClientId } = seeded.tenants.large;
    const inSmallClients = changes(licenses.filter((l) => l.clientId !== bigClientId));
    const inBigClient = changes(licenses.filter((l) => l.clientId === bigClientId));
    /**
     * One figure per round: the median of `sequentialReads` reads in a row, each after the next
     * license of `changing` was renewed and that renewal committed, when given.
     */
    const readMedian = async (baseUrl: string, urlPath: string, body: Body, changing?: () => LicenseRecord) => {
      const times: number[] = [];
      for (const _ of range(sequentialReads)) {
        if (changing) {
          const seq = await publishAll(
            bench.nats,
            licenseUpdates([changing()], 1, () => 0),
          );
          await acknowledged(bench.nats, MAIN_DURABLE, seq);
        }
        times.push(await timedRead(`${baseUrl}${urlPath}`, { headers, agent, expectedBytes: body.bytes.length }));
      }
      return median(times);
    };
    const { large, bigClient } = seeded.bodies;
    const results = {
      apiFull: [] as number[],
      apiFullBigChange: [] as number[],
      apiClient: [] as number[],
      apiFullUnchanged: [] as number[],
      apiFullNoLayouts: [] as number[],
      bareFull: [] as number[],
      bareClient: [] as number[],
    };
    // Warm-up, as rows 1-3 warm up each server: a fresh process's first reads of a large tenant
    // fault its stored pages in and run cold code, which says nothing about serving it.
    bench.progress(`row 4: warm-up, ${sequentialReads} reads of each`);
    for (const [baseUrl, paths] of [
      [api.baseUrl, [large.apiPath, bigClient.apiPath]],
      [apiWithoutLayouts.baseUrl, [large.apiPath]],
      [bare.baseUrl, [`/${large.name}`, `/${bigClient.name}`]],
    ] as const)
      for (const [n, urlPath] of paths.entries()) await readMedian(baseUrl, urlPath, n === 0 ? large : bigClient);
    const lagMs: number[] = [];
    for (const round of range(rounds)) {
      bench.progress(`row 4, round ${round + 1}/${rounds}: ${sequentialReads} sequential reads of each, API then bare`);
      // prom-client resets its event-loop histogram at each scrape: this one starts the window.
      await scrapeMetric(api.baseUrl, "nodejs_eventloop_lag_max_seconds");
      results.apiFull.push(await readMedian(api.baseUrl, large.apiPath, large, inSmallClients));
      results.apiFullBigChange.push(await readMedian(api.baseUrl, large.apiPath, large, inBigClient));
      results.apiClient.push(await readMedian(api.baseUrl, bigClient.apiPath, bigClient, inBigClient));
      results.apiFullUnchanged.push(await readMedian(api.baseUrl, large.apiPath, large));
      lagMs.push(((await scrapeMetric(api.baseUrl, "nodejs_eventloop_lag_max_seconds")) ?? Number.NaN) * 1000);
      results.apiFullNoLayouts.push(await readMedian(apiWithoutLayouts.baseUrl, large.apiPath, large));
      results.bareFull.push(await readMedian(bare.baseUrl, `/${large.name}`, large));
      results.bareClient.push(await readMedian(bare.baseUrl, `/${bigClient.name}`, bigClient));
    }
    const after = memoryBytes(api.pid);

    const scale = quick ? " (quick run: the 1/10 tenant)" : "";
    const tenant =
      `${formatNumber(largeTenant.licenses)} licenses, ${formatNumber(largeTenant.clients)} ` + `clients${scale}`;
    const baselineName = "bare node:http, the body as seeded (same length)";
    const figures: Figure[] = [
      {
        row: "4",
        what:
          `large tenant (${tenant}), full GET /dashboard of ${formatNumber(large.bytes.length / MIB)} MiB, a license ` +
          `of a small client changed before each read: one request`,
        unit: "ms",
        measured: results.apiFull,
        baseline: results.bareFull,
        baselineName,
        ratioMeans: "API time ÷ bare time for the whole large dashboard, one small client changed (target ≤ 2)",
      },
      {
        row: "4",
        what: "the same, a license of its big client changed before each read (a fifth of the tenant laid out again)",
        unit: "ms",
        measured: results.apiFullBigChange,
        baseline: results.bareFull,
        baselineName,
        ratioMeans: "API time ÷ bare time for the whole large dashboard, its big client changed (target ≤ 2)",
      },
      {
        row: "4",
        what:
          `its big client (${formatNumber(largeTenant.bigClientLicenses)} licenses, ` +
          `${formatNumber(bigClient.bytes.length / MIB)} MiB) via ?clientId=, a license of it changed before each ` +
          `read: one request`,
        unit: "ms",
        measured: results.apiClient,
        baseline: results.bareClient,
        baselineName,
        ratioMeans: "API time ÷ bare time for the big client's dashboard, changed (target ≤ 2)",
      },
      {
        row: "4",
        what: "the large tenant's full GET read again with nothing changed (every client's layout kept)",
        unit: "ms",
        measured: results.apiFullUnchanged,
        baseline: results.bareFull,
        baselineName,
        ratioMeans: "API time ÷ bare time, the tenant unchanged since the last read",
      },
      {
        row: "4",
        what: "the large tenant's full GET by a query API without layout cache (every client laid out on every read)",
        unit: "ms",
        measured: results.apiFullNoLayouts,
        baseline: results.bareFull,
        baselineName,
        ratioMeans: "API time ÷ bare time with LAYOUT_CACHE_MB=0 (as every read was before the cache)",
      },
      {
        row: "4",
        what: "query API event-loop lag, max during the large reads (nodejs_eventloop_lag_max_seconds)",
        unit: "ms",
        measured: lagMs,
      },
      {
        row: "4",
        what:
          `query API memory: peak VmHWM ${formatNumber(after.peak / MIB)} MiB over idle VmRSS ` +
          `${formatNumber(idle.rss / MIB)} MiB, growth`,
        unit: "MiB",
        measured: [(after.peak - idle.rss) / MIB],
        baseline: [large.bytes.length / MIB],
        baselineName: "the full dashboard's body",
        ratioMeans:
          "(peak RSS − idle RSS) ÷ the full body's size: how many bodies the API holds at its peak (target ≤ 3)",
      },
      {
        row: "4",
        what:
          `seeding: one projector applying ${formatNumber(seeded.seedDrain.events)} events (every tenant, mostly ` +
          `the large one), one run`,
        unit: "events/s",
        measured: [seeded.seedDrain.eventsPerSecond],
      },
    ];
    return {
      figures,
      notes: [
        `Row 4: the query API of this row runs with RESPONSE_CACHE_MB=0 (no response cache), so every read is read ` +
          `and rendered; after a warm-up of ${sequentialReads} unmeasured GETs of each body on each server, each ` +
          `round's figure is the median of ${sequentialReads} sequential GETs on one keep-alive connection, timed to ` +
          `the last byte and checked for status and length (a "changed" read follows one license update published ` +
          `and acknowledged by the projector, outside the timing); memory is from /proc/<pid>/status of a query API started ` +
          `for this row (idle after start, peak at the end of all rounds); of VmRSS's growth at the end of the rounds ` +
          `(${formatNumber((after.rss - idle.rss) / MIB)} MiB), anonymous memory (heap, body pieces) made ` +
          `${formatNumber((after.anon - idle.anon) / MIB)} MiB and mapped files' pages (RssFile: mostly LMDB's map, as ` +
          `far as the reads touched it) ${formatNumber((after.file - idle.file) / MIB)} MiB; the seeding drain used ` +
          `${formatNumber(seeded.seedDrain.cpuMicrosPerEvent)} µs of CPU per event.`,
      ],
    };
  } finally {
    agent.destroy();
    await api.stop();
    await apiWithoutLayouts.stop();
  }
}
