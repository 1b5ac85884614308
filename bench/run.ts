// `npm run bench` (full, under 10 minutes) and `npm run bench -- --quick` (under 2 minutes): the
// issue's table measured side by side with its baselines in one run. Starts everything it needs
// (a nats-server, the built services as processes, the baselines), stops and removes all of it on
// the way out, prints the report and writes it to bench/results/latest.md.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildServices } from "../scripts/build.mjs";
import { cleanUp, installExitHandlers, isShuttingDown, makeTempDir, trackTempDir } from "./cleanup.ts";
import type { Bench, Measured } from "./context.ts";
import { startNats } from "./jetstream.ts";
import { observations } from "./observations.ts";
import { parseOptions, type Scenario } from "./options.ts";
import { describeEnvironment, renderReport, runScope } from "./report.ts";
import { measureDrain } from "./scenarios/drain.ts";
import { measureFreshness } from "./scenarios/freshness.ts";
import { measureLargeTenant } from "./scenarios/largeTenant.ts";
import { measureLive } from "./scenarios/live.ts";
import { measurePerEventCost } from "./scenarios/perEvent.ts";
import { measureReads } from "./scenarios/reads.ts";
import { measureRevalidation } from "./scenarios/revalidation.ts";
import { seedReadModel } from "./scenarios/seed.ts";
import { startBareServer } from "./services.ts";

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(BENCH_DIR, "..");
const RESULTS_FILE = path.join(BENCH_DIR, "results", "latest.md");

async function main(): Promise<void> {
  const { options, only } = parseOptions(process.argv.slice(2));
  const runs = (scenario: Scenario) => only === undefined || only.has(scenario);
  installExitHandlers();
  const started = performance.now();
  const progress = (message: string) =>
    process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${message}\n`);
  const environment = describeEnvironment(REPO_ROOT);
  progress(`${runScope(options, only)} run on ${environment.cpuCount} × ${environment.cpuModel}`);

  const workDir = makeTempDir("keybox-benchrun-");
  // The services are built from the current sources into a folder of this run (not dist/, which
  // others may rebuild meanwhile); under node_modules so that their npm imports resolve.
  const distDir = await buildServices(
    trackTempDir(path.join(REPO_ROOT, "node_modules", ".cache", `keybox-bench-${process.pid}`)),
  );
  const nats = await startNats(path.join(workDir, "nats"));
  const bench: Bench = { options, nats, setup: { natsUrl: nats.url, distDir }, workDir, progress };

  const results: Measured[] = [];
  if (runs("drain")) results.push(await measureDrain(bench));
  // Every scenario but the drain reads the seeded read model.
  if (only === undefined || [...only].some((scenario) => scenario !== "drain")) {
    const seeded = await seedReadModel(bench);
    const bare = await startBareServer(seeded.bodiesDir, seeded.contentType);
    const reads = runs("reads") ? await measureReads(bench, seeded, bare) : undefined;
    if (reads) results.push(reads);
    if (runs("revalidation")) results.push(await measureRevalidation(bench, seeded, bare));
    if (runs("large")) results.push(await measureLargeTenant(bench, seeded, bare));
    await bare.stop();
    if (runs("per-event")) results.push(await measurePerEventCost(bench, seeded));
    if (reads && runs("freshness")) results.push(await measureFreshness(bench, seeded, reads.halfMaximumRate));
    if (runs("live")) results.push(await measureLive(bench, seeded));
  }

  const order = (row: string) => Number(row);
  const report = renderReport({
    options,
    environment,
    figures: results.flatMap((r) => r.figures).sort((a, b) => order(a.row) - order(b.row)),
    notes: results.flatMap((r) => r.notes),
    problems: observations(),
    seconds: (performance.now() - started) / 1000,
    only,
  });
  process.stdout.write(`${report}\n`);
  if (only !== undefined) return; // a partial run is for working on a scenario, not a result
  mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
  writeFileSync(RESULTS_FILE, report);
  progress(`written to ${path.relative(REPO_ROOT, RESULTS_FILE)}`);
}

try {
  await main();
} catch (error) {
  // After Ctrl-C the flow fails on whatever it was doing; that is no news.
  if (!isShuttingDown()) process.stderr.write(`benchmark failed: ${(error as Error).stack ?? error}\n`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
