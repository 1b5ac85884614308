// Row 8: freshness. License updates are published at a steady rate over many owners; for every
// n-th event, the time from its publish until GET /dashboard shows it (the owner's dashboard is
// fetched when the projector's change notice for that owner arrives, and otherwise 100 ms after its
// last sample's publish or its last fetch). A sample waits from its publish: its notice may come
// before its ack.
// Meanwhile the query API serves the seed example at half its maximum (row 3's rate), as the issue's
// target asks: freshness on an idle API would say nothing about a replica that is also serving.
// Baseline: the same events on a stream of their own, read by a bare consumer that echoes each
// stream sequence back: the time from the publish until the echo arrives. Both are timed from the
// publish call, not from its ack: a bare consumer's echo often arrives in the same socket read as
// the ack, before the ack's promise settles, which would make the baseline 0.
import http from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { headers, type PubAck } from "nats";
import { publishEvent, type Envelope } from "@keybox/contract";
import { range, type Bench, type Measured } from "../context.ts";
import { bearer, get, load, scrapeMetric, type LoadResult } from "../http.ts";
import { addBareDurable, consumerLag, deleteDurable, type Nats } from "../jetstream.ts";
import { observe } from "../observations.ts";
import { sleep } from "../processes.ts";
import { startBareConsumer, type Running } from "../services.ts";
import { formatNumber, percentile, type Figure } from "../stats.ts";
import { seededRandom } from "../../test/support/history.ts";
import { licenseUpdates } from "../workloads.ts";
import { MAIN_DURABLE, type Seeded } from "./seed.ts";

const BARE_STREAM = "BENCH_BARE";
const ECHO_SUBJECT = "bench.consumed";
const NOTICE_PREFIX = "keybox.dashboard.changed.";
/** Without a change notice, a waiting owner is fetched this long after its last sample's publish or fetch. */
const FALLBACK_CHECK_MS = 100;
const LAG_POLL_MS = 100;
/** How often the probing thread's event-loop delay is sampled. */
const PROBE_DELAY_RESOLUTION_MS = 10;
/** Publishes awaiting their ack, at most: a stalled server must not pile up promises. */
const MAX_IN_FLIGHT = 5000;

interface Sample {
  ownerId: string;
  licenseId: string;
  version: number;
  sentAt: number;
  /** From the publish call to its ack. */
  ackMs?: number;
  latencyMs?: number;
}

export interface RoundResult {
  latencies: number[];
  /** Publish call → ack, of the samples. */
  ackLatencies: number[];
  samples: number;
  maxLag: number;
  publishedPerSecond: number;
}

interface LoadedRoundResult extends RoundResult {
  /** The HTTP load on the query API during the round. */
  load: LoadResult;
  /** This thread's event-loop delay meanwhile (it publishes, takes the notices, reads, times), ms. */
  probeDelay: { p99: number; max: number };
  /** Samples shown by a fallback fetch (their notice lost, late, or come while that fetch was under way). */
  shownByFallback: number;
  /** The projector's batches in the round (batchesBetween). */
  batches: string;
}

interface ProjectorBatches {
  count: number;
  events: number;
  applySeconds: number;
}

/** The projector's batch counters so far (its metrics: batch sizes, apply times); undefined if unreadable. */
async function projectorBatches(projector: Running): Promise<ProjectorBatches | undefined> {
  const names = [
    "keybox_projector_batch_events_count",
    "keybox_projector_batch_events_sum",
    "keybox_projector_apply_seconds_sum",
  ];
  const values = await Promise.all(names.map((name) => scrapeMetric(projector.baseUrl, name))).catch(() => []);
  const [count, events, applySeconds] = values;
  if (count === undefined || events === undefined || applySeconds === undefined) return undefined;
  return { count, events, applySeconds };
}

/** The batches between two readings of the projector's counters, as the report gives them. */
function batchesBetween(before: ProjectorBatches | undefined, after: ProjectorBatches | undefined): string {
  if (!before || !after) return "its metrics could not be read";
  const count = after.count - before.count;
  if (count <= 0) return "no batches counted (none, or the projector restarted)";
  const events = (after.events - before.events) / count;
  const ms = ((after.applySeconds - before.applySeconds) / count) * 1000;
  return `${formatNumber(count)} of ${formatNumber(events)} events, applied and committed in ${formatNumber(ms)} ms`;
}

/** `apiRate`: the query API's load during the projector rounds, in requests per second. */
export async function measureFreshness(bench: Bench, seeded: Seeded, apiRate: number): Promise<Measured> {
  const { freshness, connections } = bench.options;
  const rounds = freshness.rounds;
  await addBareStream(bench);
  const licenses = seeded.tenants.fresh.flatMap((t) => t.licenses);
  const random = seededRandom(8);
  const eventsPerRound = freshness.seconds * freshness.eventsPerSecond;
  const api: LoadedRoundResult[] = [];
  const bare: RoundResult[] = [];
  for (const round of range(rounds)) {
    const what =
      `${formatNumber(freshness.eventsPerSecond)} events/s over ${freshness.owners} owners for ` +
      `${freshness.seconds} s`;
    bench.progress(`row 8, round ${round + 1}/${rounds}: ${what}, projector + query API at ${apiRate} req/s`);
    api.push(await throughTheReadModel(bench, seeded, apiRate, licenseUpdates(licenses, eventsPerRound, random)));
    bench.progress(`row 8, round ${round + 1}/${rounds}: ${what}, bare consumer`);
    bare.push(await throughABareConsumer(bench, round, licenseUpdates(licenses, eventsPerRound, random)));
  }

  const percentileFigure = (p: number): Figure => ({
    row: "8",
    what:
      p === 50
        ? `freshness at ${formatNumber(freshness.eventsPerSecond)} events/s over ${freshness.owners} owners, the ` +
          `query API meanwhile serving the seed example at ${formatNumber(apiRate)} req/s (half its row-1 median): ` +
          `publish → GET /dashboard shows it, p50`
        : `freshness, p${p}`,
    unit: "ms",
    measured: api.map((r) => percentile(r.latencies, p)),
    baseline: bare.map((r) => percentile(r.latencies, p)),
    baselineName: "publish → a bare consumer got it",
    ratioMeans:
      `p${p} through projector and query API ÷ p${p} of a bare ` +
      `consumer${p === 99 ? " (target: p99 ≤ 50 ms with the query API at half its maximum)" : ""}`,
  });
  const lagLimit = freshness.eventsPerSecond; // one second of events
  const ackLatencies = api.flatMap((r) => r.ackLatencies);
  return {
    figures: [
      percentileFigure(50),
      percentileFigure(95),
      percentileFigure(99),
      {
        row: "8",
        what: `freshness: max consumer lag seen (pending + unacknowledged, polled every ${LAG_POLL_MS} ms)`,
        unit: "events",
        measured: api.map((r) => r.maxLag),
        baseline: bare.map((r) => r.maxLag),
        baselineName: "the bare consumer's",
        ratioMeans:
          `projector's max lag ÷ bare consumer's (target: never above 1 s of events, ` +
          `${formatNumber(lagLimit)}, with the query API at half its maximum)`,
      },
      {
        row: "8",
        what: "freshness: requests of that load on the query API not answered 200 (must be 0)",
        unit: "requests",
        measured: api.map((r) => r.load.unexpected),
      },
    ],
    notes: [
      `Row 8: every ${freshness.sampleEvery}th event after the first second (a warm-up) is a sample, timed from its ` +
        `publish call (a bare consumer's echo often arrives in the same socket read as the publish ack, before the ` +
        `ack's promise settles, so timing from the ack would make the baseline 0; the publish → ack time itself was ` +
        `p50 ${ms(ackLatencies, 50)}, p99 ${ms(ackLatencies, 99)} in the projector rounds). The dashboard is fetched ` +
        `when the owner's change notice arrives (or once ${FALLBACK_CHECK_MS} ms passed without a fetch of it or a ` +
        `publish of one of its samples), a sample waiting from its publish call (its notice can come before its ` +
        `ack), and ` +
        `a sample counts as shown ` +
        `when its license has that version or a later one, so the figure includes one GET. From the first publish ` +
        `until every sample has shown, each projector round also loads the same query API with the seed example's ` +
        `GET /dashboard, autocannon ${connections} connections at ${formatNumber(apiRate)} req/s in all: half the ` +
        `API's row-1 median, as in row 3; the probes come on top. autocannon runs in this process, so the ` +
        `samples carry its work: the probing thread's event-loop delay is given below. The bare rounds run ` +
        `without HTTP load.`,
      `Row 8: publish rate held ${rates(api)} events/s (projector rounds), ${rates(bare)} (bare rounds); samples ` +
        `shown ${shown(api)} (projector), ${shown(bare)} (bare); the query API's load held ` +
        `${api.map((r) => formatNumber(r.load.requestsPerSecond)).join(", ")} req/s, p99 ` +
        `${api.map((r) => formatNumber(r.load.p99)).join(", ")} ms; the probing thread's event-loop delay p99 ` +
        `${api.map((r) => formatNumber(r.probeDelay.p99)).join(", ")} ms, max ` +
        `${api.map((r) => formatNumber(r.probeDelay.max)).join(", ")} ms; samples shown by a fallback fetch ` +
        `(${FALLBACK_CHECK_MS} ms after the owner's last sample or fetch): ` +
        `${api.map((r) => r.shownByFallback).join(", ")}; the projector's batches (its metrics, means): ` +
        `${api.map((r) => r.batches).join("; ")}.`,
    ],
  };
}

/** The stream the bare consumer reads (the same events on subjects of their own); idempotent. */
export async function addBareStream(bench: Bench): Promise<void> {
  await bench.nats.jsm.streams.add({ name: BARE_STREAM, subjects: ["bench.events.>"] });
}

const ms = (values: number[], p: number) => `${formatNumber(percentile(values, p))} ms`;
const rates = (results: RoundResult[]) => results.map((r) => formatNumber(r.publishedPerSecond)).join(", ");
const shown = (results: RoundResult[]) => results.map((r) => `${r.latencies.length}/${r.samples}`).join(", ");

/**
 * Publishes `events` at the configured rate. `publish` gets each event with its index and when it
 * is sent (the time samples count from); `onAck` gets each ack as it arrives.
 */
export async function publishAtRate(
  bench: Bench,
  events: Envelope[],
  publish: (event: Envelope, index: number, sentAt: number) => Promise<PubAck>,
  onAck: (index: number, ack: PubAck, sentAt: number) => void,
): Promise<number> {
  const rate = bench.options.freshness.eventsPerSecond;
  const started = performance.now();
  const deadline = started + publishBoundMs(bench, events.length);
  const pending = new Set<Promise<void>>();
  let next = 0;
  while (next < events.length && performance.now() < deadline) {
    // Event i is due at i / rate seconds after the start.
    const due = Math.min(events.length, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
    for (; next < due && pending.size < MAX_IN_FLIGHT; next++) {
      const index = next;
      const sentAt = performance.now();
      const done: Promise<void> = publish(events[index]!, index, sentAt)
        .then(
          (ack) => onAck(index, ack, sentAt),
          (error: unknown) => observe("publisher", `publish failed: ${(error as Error).message}`),
        )
        .finally(() => pending.delete(done));
      pending.add(done);
    }
    await sleep(2);
  }
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(pending); // each publish has its own timeout
  if (next < events.length) observe("publisher", `only ${next} of ${events.length} events published in time`);
  return next / seconds;
}

/** How long publishing `count` events may take: three times their schedule, plus 5 s. */
const publishBoundMs = (bench: Bench, count: number) => (count / bench.options.freshness.eventsPerSecond) * 3000 + 5000;

/** Every n-th event after the first second (which warms the path up: a fresh consumer starts slow). */
function samplesOf(bench: Bench, events: Envelope[]): Map<number, Sample> {
  const { sampleEvery, eventsPerSecond } = bench.options.freshness;
  return new Map(
    events
      .map(
        (e, index) =>
          [index, { ownerId: e.ownerid, licenseId: e.subject, version: e.entityversion, sentAt: 0 }] as const,
      )
      .filter(([index]) => index >= eventsPerSecond && index % sampleEvery === 0),
  );
}

/** Polls a consumer's lag until stopped, keeping the largest seen. */
function watchLag(nats: Nats, durable: string, stream?: string) {
  let max = 0;
  const timer = setInterval(() => {
    void consumerLag(nats, durable, stream).then(
      (lag) => (max = Math.max(max, lag ?? 0)),
      () => undefined,
    );
  }, LAG_POLL_MS);
  return {
    stop: () => {
      clearInterval(timer);
      return max;
    },
  };
}

/** Waits (bounded) until `done()` holds. */
export async function settle(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done() && performance.now() < deadline) await sleep(50);
}

const settleTimeoutMs = (bench: Bench) => (bench.options.quick ? 30_000 : 60_000);

async function throughTheReadModel(
  bench: Bench,
  seeded: Seeded,
  apiRate: number,
  events: Envelope[],
): Promise<LoadedRoundResult> {
  const samples = samplesOf(bench, events);
  const waiting = new Map<string, Sample[]>();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const checking = new Set<string>();
  const checkAgain = new Set<string>();
  const lastChecked = new Map<string, number>();

  /** Samples shown by a fallback fetch. */
  let shownByFallback = 0;

  /** Fetches the owner's dashboard and settles every waiting sample it shows; one fetch per owner at a time. */
  const check = (ownerId: string, cause: "notice" | "fallback"): void => {
    if (checking.has(ownerId)) {
      if (cause === "notice") checkAgain.add(ownerId);
      return;
    }
    checking.add(ownerId);
    lastChecked.set(ownerId, performance.now());
    get(`${seeded.api.baseUrl}/dashboard`, { headers: bearer(seeded.tokens.get(ownerId)!), agent, timeoutMs: 10_000 })
      .then((answer) => {
        const at = performance.now();
        if (answer.status !== 200) return observe("query API", `GET /dashboard answered ${answer.status} during row 8`);
        const text = answer.body.toString();
        const still = (waiting.get(ownerId) ?? []).filter((sample) => {
          if (shownVersion(text, sample.licenseId) < sample.version) return true;
          sample.latencyMs = at - sample.sentAt;
          if (cause === "fallback") shownByFallback++;
          return false;
        });
        if (still.length) waiting.set(ownerId, still);
        else waiting.delete(ownerId);
      })
      .catch((error: unknown) =>
        observe("query API", `GET /dashboard failed during row 8: ${(error as Error).message}`),
      )
      .finally(() => {
        checking.delete(ownerId);
        if (checkAgain.delete(ownerId) && waiting.has(ownerId)) check(ownerId, "notice");
      });
  };

  const batchesBefore = await projectorBatches(seeded.projector);
  const notices = bench.nats.nc.subscribe(`${NOTICE_PREFIX}>`, {
    callback: (_error, msg) => {
      const ownerId = msg.subject.slice(NOTICE_PREFIX.length);
      if (waiting.has(ownerId)) check(ownerId, "notice");
    },
  });
  // An owner is fetched without a notice once neither a fetch of it nor a publish of its samples was that recent.
  const fallback = setInterval(() => {
    const now = performance.now();
    for (const [ownerId, owed] of waiting) {
      const since = Math.max(lastChecked.get(ownerId) ?? 0, owed[owed.length - 1]!.sentAt);
      if (now - since >= FALLBACK_CHECK_MS) check(ownerId, "fallback");
    }
  }, FALLBACK_CHECK_MS / 2);
  const lag = watchLag(bench.nats, MAIN_DURABLE);
  const probeDelay = monitorEventLoopDelay({ resolution: PROBE_DELAY_RESOLUTION_MS });
  probeDelay.enable();
  // The load spans every sample's way through, not only the publishing: the last samples show later.
  const endLoad = new AbortController();
  const seed = seeded.bodies.seed;
  const apiLoad = load("query API (row 8 load)", {
    url: `${seeded.api.baseUrl}${seed.apiPath}`,
    headers: bearer(seeded.tokens.get(seed.ownerId)!),
    seconds: Math.ceil((publishBoundMs(bench, events.length) + settleTimeoutMs(bench)) / 1000),
    connections: bench.options.connections,
    overallRate: apiRate,
    stop: endLoad.signal,
  });
  try {
    const publishedPerSecond = await publishAtRate(
      bench,
      events,
      (event, index, sentAt) => {
        // A sample waits from its publish, not its ack: the change notice can come first.
        const sample = samples.get(index);
        if (!sample) return publishEvent(bench.nats.js, event);
        sample.sentAt = sentAt;
        waiting.set(sample.ownerId, [...(waiting.get(sample.ownerId) ?? []), sample]);
        // One whose publish failed may never show: it stops waiting (publishAtRate reports the failure).
        return publishEvent(bench.nats.js, event).catch((error: unknown) => {
          const still = waiting.get(sample.ownerId)?.filter((s) => s !== sample) ?? [];
          if (still.length) waiting.set(sample.ownerId, still);
          else waiting.delete(sample.ownerId);
          throw error;
        });
      },
      (index, _ack, sentAt) => {
        const sample = samples.get(index);
        if (sample) sample.ackMs = performance.now() - sentAt;
      },
    );
    await settle(() => waiting.size === 0, settleTimeoutMs(bench));
    endLoad.abort();
    await settle(() => checking.size === 0, 10_000);
    const maxLag = lag.stop();
    probeDelay.disable();
    // The next round starts from a drained consumer.
    const deadline = performance.now() + settleTimeoutMs(bench);
    while (((await consumerLag(bench.nats, MAIN_DURABLE)) ?? 0) > 0 && performance.now() < deadline) await sleep(100);
    return {
      ...finish(samples, maxLag, publishedPerSecond, "projector + query API"),
      shownByFallback,
      batches: batchesBetween(batchesBefore, await projectorBatches(seeded.projector)),
      load: await apiLoad,
      // Each sample is the time between two timer turns: the resolution itself is no delay.
      probeDelay: {
        p99: Math.max(0, probeDelay.percentile(99) / 1e6 - PROBE_DELAY_RESOLUTION_MS),
        max: Math.max(0, probeDelay.max / 1e6 - PROBE_DELAY_RESOLUTION_MS),
      },
    };
  } finally {
    endLoad.abort();
    lag.stop();
    probeDelay.disable();
    clearInterval(fallback);
    notices.unsubscribe();
    agent.destroy();
  }
}

/** The version of `licenseId` a dashboard shows (its key ends with it), 0 when it is not there. */
function shownVersion(dashboard: string, licenseId: string): number {
  const match = new RegExp(`"key":"KB-${licenseId}-(\\d+)"`).exec(dashboard);
  return match ? Number(match[1]) : 0;
}

export async function throughABareConsumer(bench: Bench, round: number, events: Envelope[]): Promise<RoundResult> {
  const samples = samplesOf(bench, events);
  const durable = `bench-fresh-bare-r${round + 1}`;
  await addBareDurable(bench.nats, { stream: BARE_STREAM, durable, filter: "bench.events.>", onlyNew: true });
  const consumer = startBareConsumer(bench.setup, { stream: BARE_STREAM, durable, echoSubject: ECHO_SUBJECT });
  const bySeq = new Map<number, Sample>();
  /** Echoes that came before their ack was seen here (or of events that are not samples). */
  const echoedEarly = new Map<number, number>();
  const echoes = bench.nats.nc.subscribe(ECHO_SUBJECT, {
    callback: (_error, msg) => {
      const seq = Number(msg.string());
      const sample = bySeq.get(seq);
      if (sample) sample.latencyMs = performance.now() - sample.sentAt;
      else echoedEarly.set(seq, performance.now());
    },
  });
  const lag = watchLag(bench.nats, durable, BARE_STREAM);
  try {
    await waitUntilPulling(bench.nats, durable);
    const publishedPerSecond = await publishAtRate(
      bench,
      events,
      (event) => publishToBareStream(bench.nats, event),
      (index, ack, sentAt) => {
        const sample = samples.get(index);
        if (!sample) return;
        sample.sentAt = sentAt;
        sample.ackMs = performance.now() - sentAt;
        const echoedAt = echoedEarly.get(ack.seq);
        if (echoedAt !== undefined) sample.latencyMs = echoedAt - sentAt;
        else bySeq.set(ack.seq, sample);
      },
    );
    await settle(() => [...samples.values()].every((s) => s.latencyMs !== undefined), settleTimeoutMs(bench));
    return finish(samples, lag.stop(), publishedPerSecond, "bare consumer");
  } finally {
    lag.stop();
    echoes.unsubscribe();
    await consumer.stop();
    await deleteDurable(bench.nats, durable, BARE_STREAM);
  }
}

/** The same message as `publishEvent` sends, on the bare stream's subject. */
function publishToBareStream(nats: Nats, event: Envelope): Promise<PubAck> {
  const [, entity, action] = event.type.split(".");
  const h = headers();
  h.set("Nats-Msg-Id", event.id);
  return nats.js.publish(`bench.events.${event.ownerid}.${entity}.${action}`, JSON.stringify(event), { headers: h });
}

/** The bare consumer is ready once it has a pull request waiting on the server (bounded). */
async function waitUntilPulling(nats: Nats, durable: string): Promise<void> {
  const deadline = performance.now() + 20_000;
  while (performance.now() < deadline) {
    const info = await nats.jsm.consumers.info(BARE_STREAM, durable);
    if (info.num_waiting > 0) return;
    await sleep(20);
  }
  throw new Error(`the bare consumer did not start pulling from ${durable} within 20 s`);
}

function finish(samples: Map<number, Sample>, maxLag: number, publishedPerSecond: number, path: string): RoundResult {
  const latencies = [...samples.values()].flatMap((s) => (s.latencyMs === undefined ? [] : [s.latencyMs]));
  const ackLatencies = [...samples.values()].flatMap((s) => (s.ackMs === undefined ? [] : [s.ackMs]));
  const missing = samples.size - latencies.length;
  if (missing > 0) observe(path, `${missing} of ${samples.size} freshness samples never showed within the wait`);
  if (latencies.length === 0) observe(path, "no freshness sample showed");
  return { latencies, ackLatencies, samples: samples.size, maxLag, publishedPerSecond };
}
