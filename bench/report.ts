// The machine the run was on, and the Markdown report: one table of figures (median and spread
// over rounds, the baseline beside it, their ratio), one line per ratio, details and problems seen.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import type { BenchOptions, Scenario } from "./options.ts";
import { formatNumber, formatSummary, ratios, type Figure } from "./stats.ts";

export interface Environment {
  cpuModel: string;
  cpuCount: number;
  node: string;
  nats: string;
  os: string;
  date: string;
  commit: string;
  loadAverageAtStart: string;
}

const run = (command: string, args: string[]) => {
  try {
    // Only trailing whitespace: porcelain status lines start with significant spaces.
    return execFileSync(command, args, { encoding: "utf8", timeout: 10_000 }).trimEnd();
  } catch {
    return "unknown";
  }
};

export const loadAverage = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(", ");

export function describeEnvironment(repoRoot: string): Environment {
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model;
  const distribution = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? os.type();
  const head = run("git", ["-C", repoRoot, "rev-parse", "--short", "HEAD"]);
  // Others may be editing the services while this runs: say exactly what was built, and what measured it.
  const status = run("git", [
    "-C",
    repoRoot,
    "status",
    "--porcelain",
    "--",
    "shared",
    "services",
    "scripts",
    "bench",
    ":(exclude)bench/results",
    "test/support",
    "package-lock.json",
  ]);
  const changed = status === "unknown" || status === "" ? [] : status.split("\n").map((line) => line.slice(3));
  return {
    cpuModel: cpuModel ?? "unknown",
    cpuCount: os.cpus().length,
    node: process.version,
    nats: run("nats-server", ["--version"]),
    os: `${distribution}, Linux ${os.release()}`,
    date: new Date().toISOString(),
    commit: changed.length
      ? `${head} plus uncommitted changes to ${changed.join(", ")}`
      : `${head}, no uncommitted changes`,
    loadAverageAtStart: loadAverage(),
  };
}

/** What a run measures: "full", "quick", or a partial one (`--only`) of either size. */
export function runScope(options: BenchOptions, only: ReadonlySet<Scenario> | undefined): string {
  if (!only) return options.quick ? "quick" : "full";
  return `${options.quick ? "quick" : "full-size"} partial`;
}

export function renderReport(input: {
  options: BenchOptions;
  environment: Environment;
  figures: Figure[];
  notes: string[];
  problems: string[];
  seconds: number;
  /** The scenarios a partial run (`--only`) was limited to; undefined: all of them. */
  only: ReadonlySet<Scenario> | undefined;
}): string {
  const { options, environment: env, figures, only } = input;
  const scope = runScope(options, only);
  const args = [...(options.quick ? ["--quick"] : []), ...(only ? ["--only", [...only].join(",")] : [])];
  const mode = `${scope} run (\`npm run bench${args.length ? ` -- ${args.join(" ")}` : ""}\`)`;
  const quickNote = options.quick
    ? ` Quick: fewer and shorter rounds (${options.httpSeconds} s load runs, ` +
      `${options.perEventUpdates.toLocaleString("en-US")} updates per drain in row 7) and the large tenant at 1/10 ` +
      `(${options.largeTenant.licenses.toLocaleString("en-US")} licenses, one client with ` +
      `${options.largeTenant.bigClientLicenses.toLocaleString("en-US")}): for trying changes, not for the record.`
    : "";
  const lines = [
    `# KeyBox read model: benchmark, ${scope} run`,
    "",
    `${mode}, ${env.date}, took ${formatNumber(input.seconds)} s.${quickNote}`,
    "",
    "| machine | |",
    "| --- | --- |",
    `| CPU | ${env.cpuModel}, ${env.cpuCount} CPUs |`,
    `| Node.js | ${env.node} |`,
    `| NATS | ${env.nats} |`,
    `| OS | ${env.os} |`,
    `| code | ${env.commit} |`,
    `| load average (1, 5, 15 min) | ${env.loadAverageAtStart} at the start, ${loadAverage()} at the end |`,
    "",
    `Every figure is the median over ${options.rounds} interleaved rounds ` +
      `(measured, baseline, measured, baseline, …; row 8: ${options.freshness.rounds}) ` +
      `with its range (min–max) in parentheses, or a single value where it was measured once; ` +
      `the baseline ran in the same rounds. The ratio is measured ÷ baseline of the medians, ` +
      `with the range of the per-round ratios. ` +
      `The services run as built (\`dist/*.mjs\` bundles, \`node --enable-source-maps\`), ` +
      `each in its own process, against a nats-server of the benchmark's own, on loopback.`,
    "",
    "| row | figure | unit | KeyBox | baseline | baseline is | ratio (per round) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...figures.map(tableRow),
    "",
    "## What each ratio means",
    "",
    ...figures.flatMap((f) => (f.ratioMeans && f.baseline ? [`- row ${f.row}, ${f.what}: ${f.ratioMeans}.`] : [])),
    "",
    "## How it was measured",
    "",
    ...input.notes.map((n) => `- ${n}`),
    "",
    "## Problems seen in the product during the run",
    "",
    ...(input.problems.length
      ? input.problems.map((p) => `- ${p}`)
      : ["- none: no warning or error logged by any service, no failed request, no early exit."]),
    "",
  ];
  return lines.join("\n");
}

function tableRow(figure: Figure): string {
  const perRoundRange = ({ min, max }: { min: number; max: number }) => ` (${formatNumber(min)}–${formatNumber(max)})`;
  const ratio = ratios(figure);
  const ratioText = ratio
    ? Number.isFinite(ratio.ofMedians)
      ? `${formatNumber(ratio.ofMedians)}${figure.measured.length > 1 ? perRoundRange(ratio.perRound) : ""}`
      : "n/a (baseline 0)"
    : "";
  const baseline = figure.baseline ? formatSummary(figure.baseline) : "";
  return (
    `| ${figure.row} | ${figure.what} | ${figure.unit} | ${formatSummary(figure.measured)} | ${baseline} | ` +
    `${figure.baselineName ?? ""} | ${ratioText} |`
  );
}
