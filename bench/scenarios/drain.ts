// Rows 5 and 6: a backlog of realistic events drained by one projector, by a bare JetStream
// consumer, and by two projectors, each on a fresh durable (and a fresh read model), interleaved.
import { rmSync } from "node:fs";
import { makeWorkSubdir, range, type Bench, type Measured } from "../context.ts";
import { scrapeMetric } from "../http.ts";
import { addBareDurable, deleteDurable, EVENTS_STREAM, publishAll, timeDrain, type DrainTiming } from "../jetstream.ts";
import { startBareConsumer, startProjector } from "../services.ts";
import { formatNumber, median } from "../stats.ts";
import { realisticMix } from "../workloads.ts";

interface DrainResult {
  eventsPerSecond: number;
  /** All consumer processes together. */
  cpuMicrosPerEvent: number;
  timing: DrainTiming;
  /** Events each projector received, and its commit conflicts (projectors only). */
  received: number[];
  conflicts: number[];
}

/** Generous: a drain that takes longer than this has stalled. */
const drainTimeoutMs = (events: number) => 30_000 + events * 2;

export async function measureDrain(bench: Bench): Promise<Measured> {
  const { drainEvents, drainOwners, rounds } = bench.options;
  bench.progress(`rows 5–6: publishing ${drainEvents.toLocaleString("en-US")} events over ${drainOwners} owners`);
  const lastSeq = await publishAll(bench.nats, realisticMix(drainEvents, drainOwners, 20261127));

  const one: DrainResult[] = [];
  const bare: DrainResult[] = [];
  const two: DrainResult[] = [];
  for (const round of range(rounds)) {
    bench.progress(`rows 5–6, round ${round + 1}/${rounds}: one projector, bare consumer, two projectors`);
    one.push(await drainWithProjectors(bench, { count: 1, round, lastSeq }));
    bare.push(await drainWithBareConsumer(bench, { round, lastSeq }));
    two.push(await drainWithProjectors(bench, { count: 2, round, lastSeq }));
  }
  // The read model's own data is published later: these events must not be applied again by it.
  await bench.nats.jsm.streams.purge(EVENTS_STREAM);

  const eps = (results: DrainResult[]) => results.map((r) => r.eventsPerSecond);
  const cpu = (results: DrainResult[]) => results.map((r) => r.cpuMicrosPerEvent);
  const events = `${drainEvents.toLocaleString("en-US")} events`;
  return {
    figures: [
      {
        row: "5",
        what: `projector drain, ${events} (realistic mix, ${drainOwners} owners)`,
        unit: "events/s",
        measured: eps(one),
        baseline: eps(bare),
        baselineName: "bare JetStream pull consumer (JSON.parse + ack)",
        ratioMeans: "projector events/s ÷ bare consumer events/s (target ≥ 0.3)",
      },
      {
        row: "5",
        what: "projector drain: CPU per event",
        unit: "µs",
        measured: cpu(one),
        baseline: cpu(bare),
        baselineName: "bare consumer",
        ratioMeans: "projector CPU per event ÷ bare consumer CPU per event: how many times the bare cost",
      },
      {
        row: "6",
        what: "two projector processes on one drain",
        unit: "events/s",
        measured: eps(two),
        baseline: eps(one),
        baselineName: "one projector (row 5)",
        ratioMeans: "two projectors' events/s ÷ one projector's (target ≥ 1.0)",
      },
      {
        row: "6",
        what: "two projectors: CPU per event, both processes together",
        unit: "µs",
        measured: cpu(two),
        baseline: cpu(one),
        baselineName: "one projector",
        ratioMeans: "CPU per event of two projectors together ÷ one projector's: the CPU scaling out costs",
      },
    ],
    notes: [
      `Rows 5–6: the window runs from the first delivery the consumer reports to the last acknowledgement (consumer ` +
        `info polled every 20 ms), so process start-up is excluded; from spawn to drained took ` +
        `${seconds(one.map((r) => r.timing.secondsFromStart))} for one projector, ` +
        `${seconds(bare.map((r) => r.timing.secondsFromStart))} for the bare consumer, ` +
        `${seconds(two.map((r) => r.timing.secondsFromStart))} for two projectors (medians). CPU is utime + stime ` +
        `from /proc/<pid>/stat over the window.`,
      `Row 6, per round: ${two.map(describePair).join("; ")}.`,
      `Row 5, commit conflicts of the single projector: ${one.map((r) => r.conflicts[0] ?? "?").join(", ")} per round.`,
    ],
  };
}

async function drainWithProjectors(
  bench: Bench,
  { count, round, lastSeq }: { count: number; round: number; lastSeq: number },
): Promise<DrainResult> {
  const dataDir = makeWorkSubdir(bench, "drain-lmdb-");
  const durable = `bench-drain-${count}p-r${round + 1}`;
  const startedAt = performance.now();
  const projectors = await Promise.all(
    range(count).map((i) =>
      startProjector(bench.setup, { name: `projector ${i + 1} of ${count} (drain)`, dataDir, durable }),
    ),
  );
  try {
    const timing = await timeDrain(bench.nats, {
      durable,
      lastSeq,
      deliveredBefore: 0,
      consumers: projectors,
      startedAt,
      timeoutMs: drainTimeoutMs(bench.options.drainEvents),
    });
    const metric = (name: string) =>
      Promise.all(
        projectors.map(async (p) => (await scrapeMetric(p.baseUrl, name).catch(() => undefined)) ?? Number.NaN),
      );
    return {
      ...rates(bench.options.drainEvents, timing),
      received: await metric("keybox_projector_events_received_total"),
      conflicts: await metric("keybox_projector_commit_conflicts_total"),
    };
  } finally {
    await Promise.all(projectors.map((p) => p.stop()));
    await deleteDurable(bench.nats, durable);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function drainWithBareConsumer(
  bench: Bench,
  { round, lastSeq }: { round: number; lastSeq: number },
): Promise<DrainResult> {
  const durable = `bench-drain-bare-r${round + 1}`;
  await addBareDurable(bench.nats, { stream: EVENTS_STREAM, durable, filter: "keybox.events.>" });
  const startedAt = performance.now();
  const consumer = startBareConsumer(bench.setup, { stream: EVENTS_STREAM, durable });
  try {
    const timing = await timeDrain(bench.nats, {
      durable,
      lastSeq,
      deliveredBefore: 0,
      consumers: [consumer],
      startedAt,
      timeoutMs: drainTimeoutMs(bench.options.drainEvents),
    });
    return { ...rates(bench.options.drainEvents, timing), received: [], conflicts: [] };
  } finally {
    await consumer.stop();
    await deleteDurable(bench.nats, durable);
  }
}

function rates(events: number, timing: DrainTiming) {
  const cpu = timing.cpuSeconds.reduce((a, b) => a + b, 0);
  return { eventsPerSecond: events / timing.seconds, cpuMicrosPerEvent: (cpu * 1e6) / events, timing };
}

function describePair(result: DrainResult): string {
  const each = result.timing.cpuSeconds.map(
    (cpu, i) =>
      `projector ${i + 1}: ${cpu.toFixed(2)} s CPU for ${formatNumber(result.received[i] ?? Number.NaN)} events`,
  );
  return `${each.join(", ")}, ${result.conflicts.reduce((a, b) => a + b, 0)} commit conflicts`;
}

const seconds = (values: number[]) => `${median(values).toFixed(2)} s`;
