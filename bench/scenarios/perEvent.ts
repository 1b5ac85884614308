// Row 7: does the cost of one event grow with the tenant? The same number of license updates is
// published (projector stopped) into the large tenant, into its big client, and into a
// 100-license tenant, then drained by the read model's projector, round by round.
import { range, type Bench, type Measured } from "../context.ts";
import { deliveredSequence, publishAll, timeDrain } from "../jetstream.ts";
import { startProjector, waitUntilReady } from "../services.ts";
import { formatNumber, type Figure } from "../stats.ts";
import { seededRandom } from "../../test/support/history.ts";
import { licenseUpdates, type LicenseRecord } from "../workloads.ts";
import { MAIN_DURABLE, type Seeded } from "./seed.ts";

interface Variant {
  label: string;
  licenses: LicenseRecord[];
  eventsPerSecond: number[];
  cpuMicrosPerEvent: number[];
}

export async function measurePerEventCost(bench: Bench, seeded: Seeded): Promise<Measured> {
  const { rounds, perEventUpdates, largeTenant, smallTenantLicenses } = bench.options;
  const { large, small } = seeded.tenants;
  const variant = (label: string, licenses: LicenseRecord[]): Variant => ({
    label,
    licenses,
    eventsPerSecond: [],
    cpuMicrosPerEvent: [],
  });
  const inLarge = variant(`the large tenant (${formatNumber(largeTenant.licenses)} licenses)`, large.licenses);
  const inBigClient = variant(
    `its big client (${formatNumber(largeTenant.bigClientLicenses)} licenses)`,
    large.licenses.filter((l) => l.clientId === large.bigClientId),
  );
  const inSmall = variant(`a ${smallTenantLicenses}-license tenant`, small.licenses);
  const random = seededRandom(7);

  await seeded.projector.stop();
  for (const round of range(rounds)) {
    for (const v of [inLarge, inSmall, inBigClient]) {
      bench.progress(
        `row 7, round ${round + 1}/${rounds}: ${formatNumber(perEventUpdates)} license updates into ${v.label}`,
      );
      await drainUpdates(bench, seeded, v, licenseUpdates(v.licenses, perEventUpdates, random));
    }
  }
  seeded.projector = await startProjector(bench.setup, {
    name: "projector",
    dataDir: seeded.dataDir,
    durable: MAIN_DURABLE,
  });
  await waitUntilReady(seeded.projector);

  const updates = `${formatNumber(perEventUpdates)} license updates`;
  const figures: Figure[] = [inLarge, inBigClient].flatMap((v) => [
    {
      row: "7",
      what: `${updates} into ${v.label}`,
      unit: "events/s",
      measured: v.eventsPerSecond,
      baseline: inSmall.eventsPerSecond,
      baselineName: `the same into ${inSmall.label}`,
      ratioMeans: `events/s into ${v.label} ÷ into ${inSmall.label} (target ≥ 0.5)`,
    },
    {
      row: "7",
      what: `${updates} into ${v.label}: CPU per event`,
      unit: "µs",
      measured: v.cpuMicrosPerEvent,
      baseline: inSmall.cpuMicrosPerEvent,
      baselineName: `into ${inSmall.label}`,
      ratioMeans: `CPU per event into ${v.label} ÷ into ${inSmall.label}: how the cost grows with the tenant`,
    },
  ]);
  return {
    figures,
    notes: [
      "Row 7: updates are published while the projector is stopped, then the read model's projector is started " +
        "and timed like row 5 (first delivery to last acknowledgement); " +
        "the order in each round is large tenant, small tenant, big client.",
    ],
  };
}

async function drainUpdates(
  bench: Bench,
  seeded: Seeded,
  variant: Variant,
  events: ReturnType<typeof licenseUpdates>,
): Promise<void> {
  const deliveredBefore = await deliveredSequence(bench.nats, MAIN_DURABLE);
  const lastSeq = await publishAll(bench.nats, events);
  const startedAt = performance.now();
  const projector = await startProjector(bench.setup, {
    name: "projector",
    dataDir: seeded.dataDir,
    durable: MAIN_DURABLE,
  });
  try {
    const timing = await timeDrain(bench.nats, {
      durable: MAIN_DURABLE,
      lastSeq,
      deliveredBefore,
      consumers: [projector],
      startedAt,
      timeoutMs: 30_000 + events.length * 5,
    });
    variant.eventsPerSecond.push(events.length / timing.seconds);
    variant.cpuMicrosPerEvent.push((timing.cpuSeconds[0]! * 1e6) / events.length);
  } finally {
    await projector.stop();
  }
}
