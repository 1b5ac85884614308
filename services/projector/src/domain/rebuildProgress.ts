// A rebuild's progress (README, "Rebuild"), from samples of its consumer: how many events it has
// replayed, how many are left, how fast it goes, and when that is worth a log line. Pure, so that
// it is tested apart from the NATS calls that take the samples (generations.ts).

/** How often progress is logged, and over how long the rate is measured. */
export const PROGRESS_LOG_MS = 5000;

export interface ProgressSample {
  /** When it was taken (ms since the epoch). */
  at: number;
  replayed: number;
}

export interface RebuildProgress {
  replayed: number;
  left: number;
  /** The samples of the last PROGRESS_LOG_MS, oldest first: what the rate is measured over. */
  samples: ProgressSample[];
  /** When progress was last logged; undefined: not yet. */
  loggedAt: number | undefined;
  /** Events replayed per second over `samples`; undefined until two samples are apart in time. */
  eventsPerSecond: number | undefined;
}

/**
 * The progress after a new sample (`replayed` and `left` at `at`). The first sample is measured
 * from when the rebuild began (`began`, nothing replayed then), so that even a rebuild that
 * catches up within a sample or two has a rate. `log`: whether to log it now (once a rate is known,
 * then every PROGRESS_LOG_MS).
 */
export function sampleProgress(
  previous: RebuildProgress | undefined,
  began: number | undefined,
  { at, replayed, left }: ProgressSample & { left: number },
): { progress: RebuildProgress; log: boolean } {
  const earlier = previous?.samples ?? (began !== undefined ? [{ at: began, replayed: 0 }] : []);
  const samples = [...earlier, { at, replayed }].filter((sample) => at - sample.at <= PROGRESS_LOG_MS);
  const oldest = samples[0]!;
  const eventsPerSecond =
    oldest.at < at ? Math.round(((replayed - oldest.replayed) * 1000) / (at - oldest.at)) : undefined;
  const wasLogged = previous?.loggedAt;
  const log = eventsPerSecond !== undefined && (wasLogged === undefined || at - wasLogged >= PROGRESS_LOG_MS);
  const loggedAt = log ? at : wasLogged;
  return { progress: { replayed, left, samples, loggedAt, eventsPerSecond }, log };
}
