// Row 9: revalidations. GET /dashboard with If-None-Match set to the ETag the API gave, answered
// 304 with no body, under autocannon: the query API (as configured by default) against the bare
// node:http server answering 304 to the same If-None-Match, round by round (API, bare, …). The
// API decides from one point read of the stored version, whatever the dashboard's size, so the
// seed example and the large tenant should cost it the same.
import { range, type Bench, type Measured } from "../context.ts";
import { bearer, get, load, scrapeMetricSeries, type LoadResult } from "../http.ts";
import type { Running } from "../services.ts";
import { formatNumber, type Figure } from "../stats.ts";
import type { Body, Seeded } from "./seed.ts";

interface Target {
  label: string;
  body: Body;
}

const TARGET_RATIO = "≥ 0.8";

export async function measureRevalidation(bench: Bench, seeded: Seeded, bare: Running): Promise<Measured> {
  const { rounds, httpSeconds, warmupSeconds, connections } = bench.options;
  const targets: Target[] = [
    { label: "seed example", body: seeded.bodies.seed },
    { label: "large tenant", body: seeded.bodies.large },
  ];
  const servers = {
    api: { name: "query API (revalidations)", url: (t: Target) => `${seeded.api.baseUrl}${t.body.apiPath}` },
    bare: { name: "bare node:http (304)", url: (t: Target) => `${bare.baseUrl}/${t.body.name}` },
  };
  const headersOf = (target: Target) => ({
    ...bearer(seeded.tokens.get(target.body.ownerId)!),
    "if-none-match": target.body.etag,
  });
  // Both must really answer 304 to this header before anything is measured.
  for (const target of targets)
    for (const server of Object.values(servers)) {
      const answer = await get(server.url(target), { headers: headersOf(target), timeoutMs: 30_000 });
      if (answer.status !== 304 || answer.body.length !== 0 || answer.headers.etag !== target.body.etag)
        throw new Error(
          `${server.name}: If-None-Match ${target.body.etag} on ${target.label} answered ${answer.status} ` +
            `with ${answer.body.length} bytes and ETag ${answer.headers.etag}, not an empty 304 with that ETag`,
        );
    }
  const run = (server: (typeof servers)["api"], target: Target, seconds: number) =>
    load(server.name, { url: server.url(target), headers: headersOf(target), seconds, connections, status: 304 });

  bench.progress(`row 9: warming up both servers on revalidations (${warmupSeconds} s each)`);
  for (const target of targets) for (const server of Object.values(servers)) await run(server, target, warmupSeconds);
  const results = new Map(targets.map((t) => [t, { api: [] as LoadResult[], bare: [] as LoadResult[] }]));
  const before = await scrapeMetricSeries(seeded.api.baseUrl, "keybox_query_dashboard_reads_total");
  for (const round of range(rounds)) {
    bench.progress(`row 9, round ${round + 1}/${rounds}: ${connections} connections, ${httpSeconds} s per run`);
    for (const target of targets) {
      const r = results.get(target)!;
      r.api.push(await run(servers.api, target, httpSeconds));
      r.bare.push(await run(servers.bare, target, httpSeconds));
    }
  }
  const after = await scrapeMetricSeries(seeded.api.baseUrl, "keybox_query_dashboard_reads_total");
  const counted = [...after]
    .map(([labels, n]) => [labels, n - (before.get(labels) ?? 0)] as const)
    .filter(([, n]) => n > 0)
    .map(([labels, n]) => `${formatNumber(n)} ${labels}`);

  const figures: Figure[] = targets.flatMap((target) => {
    const { api, bare: baseline } = results.get(target)!;
    const baselineName = "bare node:http answering 304 to the same If-None-Match";
    const size = `${formatNumber(target.body.bytes.length)} B when sent`;
    return [
      {
        row: "9",
        what: `304 revalidations of GET /dashboard, ${target.label} (${size}), ${connections} connections`,
        unit: "req/s",
        measured: api.map((r) => r.requestsPerSecond),
        baseline: baseline.map((r) => r.requestsPerSecond),
        baselineName,
        ratioMeans:
          `API 304s per second ÷ bare node:http 304s per second for the same If-None-Match (target ` +
          `${TARGET_RATIO})`,
      },
      {
        row: "9",
        what: `304 revalidations, ${target.label}: p99 latency`,
        unit: "ms",
        measured: api.map((r) => r.p99),
        baseline: baseline.map((r) => r.p99),
        baselineName,
        ratioMeans: "API p99 ÷ bare p99 under the same load",
      },
    ];
  });
  return {
    figures,
    notes: [
      `Row 9: autocannon ${connections} connections, ${httpSeconds} s per run after a ${warmupSeconds} s warm-up of ` +
        `each server, every request with \`If-None-Match\` set to the ETag the API gave the body when seeding, every ` +
        `answer an empty 304 (checked before the runs; any other status is reported below as a problem). The bare ` +
        `server answers 304 with the same Cache-Control and ETag headers when the header equals that ETag. The query ` +
        `API answered the measured runs ${counted.length ? counted.join(", ") : "with nothing counted"} ` +
        `(keybox_query_dashboard_reads_total: \`revalidated\` is a 304 from the version alone).`,
    ],
  };
}
