// Rows 10 and 11: live streams (GET /dashboard/events).
// Row 10: license updates published at the freshness rate over the freshness owners, each of whom
// has a stream open on the query API; every n-th event after the first second goes instead to one
// of a set of probe owners (each with one event in flight at most, a second apart), so the first
// `changed` on that probe's stream after the publish call is that event's: the figure is publish
// call → `changed` received. Baseline: the same events read by a bare consumer, as in row 8.
// Row 11: a query API process of its own holds 10,000 idle streams (1,000 owners × 10): its RSS
// growth, and its CPU while they idle (heartbeats included), beside the same process idle before.
import { range, type Bench, type Measured } from "../context.ts";
import { bearer, tokenFor } from "../http.ts";
import { publishAll } from "../jetstream.ts";
import { observe } from "../observations.ts";
import { cpuSeconds, memoryBytes, sleep } from "../processes.ts";
import { startQueryApi } from "../services.ts";
import { formatNumber, percentile, type Figure } from "../stats.ts";
import { seededRandom } from "../../test/support/history.ts";
import { openSse, type SseStream } from "../../test/support/sse.ts";
import { licenseEvent, licenseUpdates, liveProbeTenants, type LicenseRecord } from "../workloads.ts";
import { addBareStream, publishAtRate, settle, throughABareConsumer, type RoundResult } from "./freshness.ts";
import type { Seeded } from "./seed.ts";
import { publishEvent, type Envelope } from "@keybox/contract";

const IDLE_OWNERS = 1000;
const OPEN_AT_ONCE = 500;

export async function measureLive(bench: Bench, seeded: Seeded): Promise<Measured> {
  const delivery = await measureDelivery(bench, seeded);
  const idle = await measureIdleStreams(bench, seeded);
  return { figures: [...delivery.figures, ...idle.figures], notes: [...delivery.notes, ...idle.notes] };
}

async function openAll(urls: { url: string; token: string }[], onEvent?: (ownerIndex: number) => void) {
  const streams: SseStream[] = [];
  for (let i = 0; i < urls.length; i += OPEN_AT_ONCE) {
    const batch = urls.slice(i, i + OPEN_AT_ONCE);
    streams.push(
      ...(await Promise.all(
        batch.map(({ url, token }, j) => openSse(url, bearer(token), (e) => e.event === "changed" && onEvent?.(i + j))),
      )),
    );
  }
  const refused = streams.filter((s) => s.status !== 200).length;
  if (refused) observe("query API", `${refused} of ${streams.length} live streams were refused`);
  return streams;
}

async function measureDelivery(bench: Bench, seeded: Seeded): Promise<Measured> {
  const { freshness, live } = bench.options;
  const probes = liveProbeTenants(live.probes);
  const probeLicenses = probes.map((t) => t.licenses[0]!);
  const url = `${seeded.api.baseUrl}/dashboard/events`;
  const probeTokens = await Promise.all(probes.map((t) => tokenFor(t.ownerId)));
  /** Per probe: when its latest `changed` arrived, and the sample waiting for one. */
  const arrivals = new Map<number, number>();
  const waiting = new Map<number, { sentAt: number; latencyMs?: number }>();
  let loadChanges = 0;
  const probeStreams = await openAll(
    probeTokens.map((token) => ({ url, token })),
    (probe) => {
      const at = performance.now();
      arrivals.set(probe, at);
      const sample = waiting.get(probe);
      if (sample) {
        sample.latencyMs = at - sample.sentAt;
        waiting.delete(probe);
      }
    },
  );
  const loadStreams = await openAll(
    seeded.tenants.fresh.map((t) => ({ url, token: seeded.tokens.get(t.ownerId)! })),
    () => loadChanges++,
  );
  await publishAll(
    bench.nats,
    probes.flatMap((t) => t.events),
  );
  await settle(() => arrivals.size === probes.length, 30_000);
  await addBareStream(bench);

  const random = seededRandom(9);
  const loadLicenses = seeded.tenants.fresh.flatMap((t) => t.licenses);
  const eventsPerRound = freshness.seconds * freshness.eventsPerSecond;
  /** The load, with every n-th event after the first second going to the next probe instead. */
  const roundEvents = (): { events: Envelope[]; probeOf: Map<number, number> } => {
    const events = licenseUpdates(loadLicenses, eventsPerRound, random);
    const probeOf = new Map<number, number>();
    for (let index = freshness.eventsPerSecond; index < events.length; index += freshness.sampleEvery) {
      const probe = probeOf.size % probeLicenses.length;
      const license: LicenseRecord = probeLicenses[probe]!;
      license.version++;
      events[index] = licenseEvent(license);
      probeOf.set(index, probe);
    }
    return { events, probeOf };
  };

  const api: RoundResult[] = [];
  const bare: RoundResult[] = [];
  try {
    for (const round of range(freshness.rounds)) {
      const streams = loadStreams.length + probeStreams.length;
      const what = `${formatNumber(freshness.eventsPerSecond)} events/s, ${streams} streams open`;
      bench.progress(`row 10, round ${round + 1}/${freshness.rounds}: ${what}, projector + query API → SSE`);
      const { events, probeOf } = roundEvents();
      const samples: { sentAt: number; latencyMs?: number }[] = [];
      const publishedPerSecond = await publishAtRate(
        bench,
        events,
        (event) => publishEvent(bench.nats.js, event),
        (index, _ack, sentAt) => {
          const probe = probeOf.get(index);
          if (probe === undefined) return;
          const sample: { sentAt: number; latencyMs?: number } = { sentAt };
          samples.push(sample);
          const arrived = arrivals.get(probe) ?? 0;
          if (arrived >= sentAt) sample.latencyMs = arrived - sentAt;
          else waiting.set(probe, sample);
        },
      );
      await settle(() => waiting.size === 0, 30_000);
      waiting.clear();
      const latencies = samples.flatMap((s) => (s.latencyMs === undefined ? [] : [s.latencyMs]));
      if (latencies.length < samples.length)
        observe("query API", `${samples.length - latencies.length} of ${samples.length} SSE samples never arrived`);
      api.push({ latencies, ackLatencies: [], samples: samples.length, maxLag: 0, publishedPerSecond });
      bench.progress(`row 10, round ${round + 1}/${freshness.rounds}: bare consumer`);
      bare.push(await throughABareConsumer(bench, round, roundEvents().events));
    }
  } finally {
    for (const stream of [...probeStreams, ...loadStreams]) stream.close();
  }

  const figure = (p: number): Figure => ({
    row: "10",
    what:
      p === 50
        ? `live push at ${formatNumber(freshness.eventsPerSecond)} events/s over ${formatNumber(loadStreams.length)} ` +
          `owners with a stream open: publish → \`changed\` on the owner's SSE stream, p50`
        : `live push, p${p}`,
    unit: "ms",
    measured: api.map((r) => percentile(r.latencies, p)),
    baseline: bare.map((r) => percentile(r.latencies, p)),
    baselineName: "publish → a bare consumer got it",
    ratioMeans: `p${p} publish → SSE ÷ p${p} of a bare consumer${p === 99 ? " (target: p99 ≤ 100 ms)" : ""}`,
  });
  return {
    figures: [figure(50), figure(95), figure(99)],
    notes: [
      `Row 10: ${formatNumber(loadStreams.length)} load owners and ${live.probes} probe owners each have one stream ` +
        `open on the query API; every ${freshness.sampleEvery}th event after the first second goes to the next probe ` +
        `(one event in flight per probe, about ` +
        `${formatNumber(live.probes / (freshness.eventsPerSecond / freshness.sampleEvery))} s apart), timed from its ` +
        `publish call to the first \`changed\` on that probe's stream. Samples: ` +
        `${api.map((r) => `${r.latencies.length}/${r.samples}`).join(", ")}; publish rate held ` +
        `${api.map((r) => formatNumber(r.publishedPerSecond)).join(", ")} events/s; the load streams received ` +
        `${formatNumber(loadChanges)} \`changed\` events in all.`,
    ],
  };
}

async function measureIdleStreams(bench: Bench, seeded: Seeded): Promise<Measured> {
  const { idleStreams, idleSeconds, heartbeatSeconds } = bench.options.live;
  bench.progress(`row 11: ${formatNumber(idleStreams)} idle SSE streams on one query API, ${idleSeconds} s idle`);
  const api = await startQueryApi(bench.setup, {
    name: "query API (idle streams)",
    dataDir: seeded.dataDir,
    env: { LIVE_HEARTBEAT_SECONDS: String(heartbeatSeconds) },
  });
  const streams: SseStream[] = [];
  try {
    const tokens = await Promise.all(range(IDLE_OWNERS).map((o) => tokenFor(`bench-idle-${o}`)));
    await sleep(1000);
    const quietCpu = await cpuOver(api.pid, idleSeconds);
    const before = memoryBytes(api.pid).rss;
    const url = `${api.baseUrl}/dashboard/events`;
    streams.push(...(await openAll(range(idleStreams).map((i) => ({ url, token: tokens[i % IDLE_OWNERS]! })))));
    await sleep(2000);
    const after = memoryBytes(api.pid).rss;
    const comments = () => streams.reduce((sum, s) => sum + s.comments.length, 0);
    const commentsBefore = comments();
    const idleCpu = await cpuOver(api.pid, idleSeconds);
    const heartbeats = comments() - commentsBefore; // those of the idle window only
    const growthPerStream = (after - before) / idleStreams;
    return {
      figures: [
        {
          row: "11",
          what:
            `${formatNumber(idleStreams)} idle SSE streams (${IDLE_OWNERS} owners × ` +
            `${idleStreams / IDLE_OWNERS}) on one query API: RSS growth`,
          unit: "MiB",
          measured: [(after - before) / 1024 / 1024],
        },
        { row: "11", what: "idle SSE streams: RSS growth per stream", unit: "KiB", measured: [growthPerStream / 1024] },
        {
          row: "11",
          what:
            `idle SSE streams: CPU of the query API over ${idleSeconds} s idle (heartbeats every ` +
            `${heartbeatSeconds} s included)`,
          unit: "% of a core",
          measured: [idleCpu * 100],
          baseline: [quietCpu * 100],
          baselineName: "the same process idle before the streams opened",
          ratioMeans: `CPU with ${formatNumber(idleStreams)} idle streams ÷ CPU without`,
        },
      ],
      notes: [
        `Row 11: RSS from /proc before the streams and 2 s after the last opened ` +
          `(${formatNumber(before / 1024 / 1024)} → ${formatNumber(after / 1024 / 1024)} MiB); CPU (utime + stime) ` +
          `over ${idleSeconds} s, during which the streams received ${formatNumber(heartbeats)} keep-alive comments ` +
          `in all.`,
      ],
    };
  } finally {
    for (const stream of streams) stream.close();
    await api.stop();
  }
}

/** The share of one core `pid` used over the next `seconds`. */
async function cpuOver(pid: number, seconds: number): Promise<number> {
  const start = cpuSeconds(pid);
  await sleep(seconds * 1000);
  return (cpuSeconds(pid) - start) / seconds;
}
