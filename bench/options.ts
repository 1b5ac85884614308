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
  /** Rows 9 and 10: owners whose streams time deliveries; idle streams held, and for how long. */
  live: { probes: number; idleStreams: number; idleSeconds: number };
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
  live: { probes: 300, idleStreams: 10_000, idleSeconds: 35 },
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
  freshness: { rounds: 1, seconds: 5, eventsPerSecond: 2000, owners: 500, sampleEvery: 20 },
  live: { probes: 300, idleStreams: 10_000, idleSeconds: 16 },
};

export function parseOptions(args: string[]): BenchOptions {
  const unknown = args.filter((arg) => arg !== "--quick");
  if (unknown.length > 0) throw new Error(`unknown argument(s): ${unknown.join(" ")} (only --quick is accepted)`);
  return args.includes("--quick") ? QUICK : FULL;
}
