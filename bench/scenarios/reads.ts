// Rows 1–3: GET /dashboard under autocannon, the query API against a bare node:http server answering
// the same bytes, round by round (API, API without its response cache, bare, …); then the API and
// the bare server at half the API's maximum, the rate row 8 keeps the API busy at too. The query
// API keeps recently served dashboards, so under this load (one owner, nothing changing) its
// default setup answers from that cache; the second API process runs with the cache off, so each
// of its requests reads and renders.
import { range, type Bench, type Measured } from "../context.ts";
import { bearer, load, scrapeMetricSeries, type LoadResult } from "../http.ts";
import { NO_RESPONSE_CACHE, startQueryApi, type Running } from "../services.ts";
import { formatNumber, median, type Figure } from "../stats.ts";
import type { Body, Seeded } from "./seed.ts";

interface Target {
  row: string;
  label: string;
  body: Body;
  /** The lowest API ÷ bare req/s the issue asks for. */
  target: string;
}

interface Server {
  name: string;
  /** The URL of a target on this server. */
  url(target: Target): string;
}

export async function measureReads(
  bench: Bench,
  seeded: Seeded,
  bare: Running,
): Promise<Measured & { halfMaximumRate: number }> {
  const { rounds, httpSeconds, warmupSeconds, connections } = bench.options;
  const targets: Target[] = [
    { row: "1", label: "seed example", body: seeded.bodies.seed, target: "≥ 0.5" },
    { row: "2", label: "12 clients × 5 projects × 2 licenses", body: seeded.bodies.medium, target: "≥ 0.7" },
  ];
  const uncachedApi = await startQueryApi(bench.setup, {
    name: "query API (response cache off)",
    dataDir: seeded.dataDir,
    env: NO_RESPONSE_CACHE,
  });
  try {
    const servers = {
      api: { name: "query API", url: (t: Target) => `${seeded.api.baseUrl}${t.body.apiPath}` },
      uncached: { name: uncachedApi.name, url: (t: Target) => `${uncachedApi.baseUrl}${t.body.apiPath}` },
      bare: { name: "bare node:http", url: (t: Target) => `${bare.baseUrl}/${t.body.name}` },
    };
    const run = (server: Server, target: Target, seconds: number, overallRate?: number) =>
      load(server.name, {
        url: server.url(target),
        headers: bearer(seeded.tokens.get(target.body.ownerId)!),
        seconds,
        connections,
        ...(overallRate ? { overallRate } : {}),
      });

    bench.progress(`rows 1–2: warming up the three servers (${warmupSeconds} s each)`);
    for (const target of targets) for (const server of Object.values(servers)) await run(server, target, warmupSeconds);
    const results = new Map(
      targets.map((t) => [t, { api: [] as LoadResult[], uncached: [] as LoadResult[], bare: [] as LoadResult[] }]),
    );
    for (const round of range(rounds)) {
      bench.progress(`rows 1–2, round ${round + 1}/${rounds}: ${connections} connections, ${httpSeconds} s per run`);
      for (const target of targets) {
        const r = results.get(target)!;
        r.api.push(await run(servers.api, target, httpSeconds));
        r.uncached.push(await run(servers.uncached, target, httpSeconds));
        r.bare.push(await run(servers.bare, target, httpSeconds));
      }
    }
    const cacheUse = await scrapeMetricSeries(seeded.api.baseUrl, "keybox_query_dashboard_reads_total");

    // Row 3: the API (as configured by default) and the bare server at half what the API managed in row 1.
    const seed = targets[0]!;
    const rate = Math.max(1, Math.floor(median(results.get(seed)!.api.map((r) => r.requestsPerSecond)) / 2));
    const apiAtRate: LoadResult[] = [];
    const bareAtRate: LoadResult[] = [];
    for (const round of range(rounds)) {
      bench.progress(`row 3, round ${round + 1}/${rounds}: ${rate} req/s for both`);
      apiAtRate.push(await run(servers.api, seed, httpSeconds, rate));
      bareAtRate.push(await run(servers.bare, seed, httpSeconds, rate));
    }

    const figures: Figure[] = targets.flatMap((target) => {
      const r = results.get(target)!;
      return [
        ...loadFigures(target, r.api, r.bare, { connections, variant: "" }),
        ...loadFigures(target, r.uncached, r.bare, { connections, variant: " — response cache off" }),
      ];
    });
    figures.push({
      row: "3",
      what: `seed example at ${formatNumber(rate)} req/s (half the API's row-1 median), p99 latency`,
      unit: "ms",
      measured: apiAtRate.map((r) => r.p99),
      baseline: bareAtRate.map((r) => r.p99),
      baselineName: "bare node:http at the same rate",
      ratioMeans: "API p99 ÷ bare p99 at the same request rate (target: API p99 ≤ 5 ms)",
    });
    const achieved = (results: LoadResult[]) => formatNumber(median(results.map((r) => r.requestsPerSecond)));
    const cacheNote = cacheUse.size
      ? `the default query API answered rows 1–2 (warm-up included) ` +
        `${[...cacheUse].map(([labels, n]) => `${formatNumber(n)} times ${labels}`).join(", ")}`
      : "the query API reports no response-cache metric (keybox_query_dashboard_reads_total)";
    return {
      halfMaximumRate: rate,
      figures,
      notes: [
        `Rows 1–3: autocannon ${connections} connections, ${httpSeconds} s per run after a ${warmupSeconds} s ` +
          `warm-up of each server; bodies ${formatNumber(seed.body.bytes.length)} B and ` +
          `${formatNumber(targets[1]!.body.bytes.length)} B, the bare server sends them with the API's Content-Type ` +
          `(${seeded.contentType}) and Content-Length. Latencies are autocannon's, in whole milliseconds.`,
        `Rows 1–2 ran on two query API processes on the same read model: one as configured by default and one with ` +
          `RESPONSE_CACHE_MB=0 (its response cache off, so every request reads and renders); ${cacheNote}.`,
        `Row 3: rate held — API ${achieved(apiAtRate)} req/s, bare ${achieved(bareAtRate)} req/s (medians); ` +
          `latencies are each response's own (no coordinated-omission correction).`,
      ],
    };
  } finally {
    await uncachedApi.stop();
  }
}

function loadFigures(
  target: Target,
  api: LoadResult[],
  bare: LoadResult[],
  { connections, variant }: { connections: number; variant: string },
): Figure[] {
  const what =
    `GET /dashboard, ${target.label} (${formatNumber(target.body.bytes.length)} B), ${connections} ` +
    `connections${variant}`;
  const baselineName = "bare node:http, same bytes";
  return [
    {
      row: target.row,
      what,
      unit: "req/s",
      measured: api.map((r) => r.requestsPerSecond),
      baseline: bare.map((r) => r.requestsPerSecond),
      baselineName,
      ratioMeans: `API req/s ÷ bare req/s (target ${target.target})`,
    },
    {
      row: target.row,
      what: `${target.label}${variant}: p50 latency`,
      unit: "ms",
      measured: api.map((r) => r.p50),
      baseline: bare.map((r) => r.p50),
      baselineName,
      ratioMeans: "API p50 ÷ bare p50 under the same load: how many times longer a request waits",
    },
    {
      row: target.row,
      what: `${target.label}${variant}: p99 latency`,
      unit: "ms",
      measured: api.map((r) => r.p99),
      baseline: bare.map((r) => r.p99),
      baselineName,
      ratioMeans: "API p99 ÷ bare p99 under the same load",
    },
  ];
}
