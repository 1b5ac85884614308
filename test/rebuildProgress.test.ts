// A rebuild's progress as operators see it (README, "Rebuild"): the rate logged, and when.
import { describe, expect, it } from "vitest";
import { PROGRESS_LOG_MS, sampleProgress, type RebuildProgress } from "@keybox/projector";

const BEGAN = 1_000_000;

/** Samples in turn; what each said: its rate, and whether it logged. */
function sampleAll(began: number | undefined, samples: { at: number; replayed: number; left: number }[]) {
  let progress: RebuildProgress | undefined;
  return samples.map((sample) => {
    const next = sampleProgress(progress, began, sample);
    progress = next.progress;
    return { eventsPerSecond: progress.eventsPerSecond, log: next.log };
  });
}

describe("a rebuild's progress", () => {
  it("is logged at the first sample, its rate counted from when the rebuild began", () => {
    // 2 s in, 3,000 replayed: a rebuild that may catch up before a second sample still logs.
    expect(sampleAll(BEGAN, [{ at: BEGAN + 2000, replayed: 3000, left: 0 }])).toEqual([
      { eventsPerSecond: 1500, log: true },
    ]);
  });

  it("is logged again only once PROGRESS_LOG_MS have passed, at the rate over that window", () => {
    expect(PROGRESS_LOG_MS).toBe(5000);
    // A sample a second, 1,000 events a second, then 10,000 in the seventh second.
    const samples = [1, 2, 3, 4, 5, 6].map((s) => ({ at: BEGAN + s * 1000, replayed: s * 1000, left: 100_000 }));
    samples.push({ at: BEGAN + 7000, replayed: 16_000, left: 90_000 });
    const said = sampleAll(BEGAN, samples);
    expect(said.map(({ log }) => log)).toEqual([true, false, false, false, false, true, false]);
    expect(said.map(({ eventsPerSecond }) => eventsPerSecond)).toEqual([1000, 1000, 1000, 1000, 1000, 1000, 2800]);
  });

  it("has no rate, and logs nothing, from one sample when it is not known when the rebuild began", () => {
    expect(sampleAll(undefined, [{ at: BEGAN, replayed: 10, left: 5 }])).toEqual([
      { eventsPerSecond: undefined, log: false },
    ]);
    expect(
      sampleAll(undefined, [
        { at: BEGAN, replayed: 10, left: 5 },
        { at: BEGAN + 1000, replayed: 510, left: 5 },
      ]),
    ).toEqual([
      { eventsPerSecond: undefined, log: false },
      { eventsPerSecond: 500, log: true },
    ]);
  });
});
