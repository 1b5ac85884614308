// Guarantee 1 of DESIGN.md as a property: any arrival order of a history, with duplicates, gives
// the same dashboards as the history in order, and that result is what an independent reference
// model (latest version per entity, joined by the ids in the data) renders.
import { describe, it, expect } from "vitest";
import fc from "fast-check";
import type { DashboardBody } from "@keybox/query-api";
import type { KeyboxEvent } from "@keybox/contract";
import { DEFAULT_PROJECTION } from "@keybox/projector";
import { compareOrder } from "@keybox/read-model";
import { CHUNKINGS, CLIENT_IDS, deliveryOf, historyArb, NOW, OWNERS } from "./support/arbitraries.ts";
import { ownerFragments, project, renderBody } from "./support/inMemory.ts";
import { referenceDashboard } from "./support/reference.ts";

const scenario = historyArb.chain((history) =>
  fc.record({
    history: fc.constant(history),
    deliveries: fc.array(deliveryOf(history), { minLength: 1, maxLength: 3 }),
  }),
);

// ---- the reference model ---------------------------------------------------------------------

/** Everything a user can read: each owner's dashboard, whole and for each clientId. */
type Reads = Map<string, DashboardBody>;
const readKeys = OWNERS.flatMap((owner) => [owner, ...CLIENT_IDS.map((c) => `${owner}/${c}`)]);

function projectedReads(events: readonly KeyboxEvent[], options = DEFAULT_PROJECTION): Reads {
  const slice = project(events, new Map(), options);
  return new Map(
    readKeys.map((key) => {
      const [owner, clientId] = key.split("/") as [string, string | undefined];
      return [key, renderBody(ownerFragments(slice, owner, clientId), NOW)];
    }),
  );
}

const referenceReads = (events: readonly KeyboxEvent[]): Reads =>
  new Map(
    readKeys.map((key) => {
      const [owner, clientId] = key.split("/") as [string, string | undefined];
      return [key, referenceDashboard(events, owner, NOW, clientId)];
    }),
  );

// ---- the properties --------------------------------------------------------------------------

/**
 * Each run starts in a turn of its own: these properties take up to a minute on a slow machine,
 * and a test worker that long without a turn of its event loop misses the replies to vitest's calls
 * (a 60 s timeout, reported as an unhandled error that fails the run).
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("convergence", () => {
  it("gives the reference model's dashboards for a history applied in order", async () => {
    let withLicenses = 0;
    await fc.assert(
      fc.asyncProperty(historyArb, async (history) => {
        await nextTurn();
        const reads = projectedReads(history);
        expect(reads).toEqual(referenceReads(history));
        for (const options of CHUNKINGS) expect(projectedReads(history, options)).toEqual(reads);
        if ([...reads.values()].some((r) => r.data.some((c) => c.projects.some((p) => p.licenses.length > 0))))
          withLicenses++;
      }),
      { numRuns: 500 },
    );
    // Not vacuous: most histories show licenses under live projects of live clients.
    expect(withLicenses).toBeGreaterThan(250);
  });

  it("keeps every license chunk's live licenses in response order, so a fragment needs no sort", async () => {
    let chunksChecked = 0;
    await fc.assert(
      fc.asyncProperty(scenario, async ({ deliveries }) => {
        await nextTurn();
        for (const delivered of deliveries) {
          for (const options of CHUNKINGS) {
            for (const { value } of project(delivered, new Map(), options).values()) {
              if (value?.kind !== "licenses") continue;
              const live = value.licenses.flatMap((l) => (l.state ? [[l.state.order, l.id] as const] : []));
              for (let i = 1; i < live.length; i++) expect(compareOrder(live[i - 1]!, live[i]!)).toBeLessThan(0);
              if (live.length > 1) chunksChecked++;
            }
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(chunksChecked).toBeGreaterThan(300); // not vacuous: many chunks hold several licenses
  });

  it("gives the same dashboards for any arrival order with duplicates", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ history, deliveries }) => {
        await nextTurn();
        const inOrder = projectedReads(history);
        for (const delivered of deliveries) {
          for (const options of CHUNKINGS) expect(projectedReads(delivered, options)).toEqual(inOrder);
        }
      }),
      { numRuns: 500 },
    );
  });
});
