// How much the benchmark does: the full run (under 10 minutes) or `--quick` (under 2 minutes).

export interface TenantShape {
  licenses: number;
  clients: number;
  /** Licenses of the one big client (in one project); the rest are spread over the other clients. */
  bigClientLicenses: number;
}

export interface BenchOptions {
  quick: boolean;
  /** Interleaved rounds: measured, baseline, measured, baseline, … */
  rounds: number;
  /** Seconds of each autocannon run (rows 1–3), and of the warm-up before them. */
  httpSeconds: number;
  warmupSeconds: number;
  connections: number;
  largeTenant: TenantShape;
  /** Sequential reads per round of the large tenant (row 4); the round's figure is their median. */
  sequentialReads: number;
  drainEvents: number;
  drainOwners: number;
  /** License updates per drain of row 7. */
  perEventUpdates: number;
  smallTenantLicenses: number;
  /** Row 8 has rounds of its own: the quick run does one. */
  freshness: { rounds: number; seconds: number; eventsPerSecond: number; owners: number; sampleEvery: number };
  /**
   * Rows 10 and 11: owners whose streams time deliveries; idle streams held, for how long, and the
   * query API's heartbeat meanwhile (the idle time holds at least two).
   */
  live: { probes: number; idleStreams: number; idleSeconds: number; heartbeatSeconds: number };
}

const FULL: BenchOptions = {
  quick: false,
  rounds: 3,
  httpSeconds: 5,
  warmupSeconds: 2,
  connections: 50,
  largeTenant: { licenses: 100_000, clients: 1000, bigClientLicenses: 20_000 },
  sequentialReads: 5,
  drainEvents: 50_000,
  drainOwners: 1000,
  perEventUpdates: 10_000,
  smallTenantLicenses: 100,
  freshness: { rounds: 3, seconds: 10, eventsPerSecond: 2000, owners: 500, sampleEvery: 20 },
  live: { probes: 300, idleStreams: 10_000, idleSeconds: 35, heartbeatSeconds: 15 },
};

const QUICK: BenchOptions = {
  quick: true,
  rounds: 2,
  httpSeconds: 2,
  warmupSeconds: 1,
  connections: 50,
  largeTenant: { licenses: 10_000, clients: 100, bigClientLicenses: 2000 },
  sequentialReads: 3,
  drainEvents: 10_000,
  drainOwners: 200,
  perEventUpdates: 2000,
  smallTenantLicenses: 100,
  freshness: { rounds: 1, seconds: 3, eventsPerSecond: 2000, owners: 500, sampleEvery: 20 },
  live: { probes: 300, idleStreams: 10_000, idleSeconds: 7, heartbeatSeconds: 3 },
};

/** The scenarios a run can be limited to with `--only` (the rows each measures). */
export const SCENARIOS = ["drain", "reads", "revalidation", "large", "per-event", "freshness", "live"] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface ParsedOptions {
  options: BenchOptions;
  /** The scenarios to run: all of them unless `--only` named some. */
  only: ReadonlySet<Scenario> | undefined;
}

const USAGE = `usage: npm run bench -- [--quick] [--only ${SCENARIOS.join(",")}]`;

/**
 * `--quick`, and `--only a,b` to measure some scenarios while working on them (freshness needs
 * reads, for its rate); a run limited so prints its report but leaves bench/results/latest.md alone.
 */
export function parseOptions(args: string[]): ParsedOptions {
  let only: Set<Scenario> | undefined;
  let quick = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--quick") quick = true;
    else if (arg === "--only") {
      const names = args[++i];
      if (names === undefined) throw new Error(`--only needs scenario names\n${USAGE}`);
      only ??= new Set();
      for (const name of names.split(",")) {
        const scenario = SCENARIOS.find((s) => s === name);
        if (!scenario) throw new Error(`unknown scenario "${name}"\n${USAGE}`);
        only.add(scenario);
      }
      if (only.has("freshness")) only.add("reads");
    } else throw new Error(`unknown argument "${arg}"\n${USAGE}`);
  }
  return { options: quick ? QUICK : FULL, only };
}
