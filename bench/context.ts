// What every scenario of the benchmark gets: its options, the NATS server, how to start the
// services, a work folder, and a way to say what it is doing.
import { mkdtempSync } from "node:fs";
import path from "node:path";
import { refuseIfShuttingDown } from "./cleanup.ts";
import type { Nats } from "./jetstream.ts";
import type { BenchOptions } from "./options.ts";
import type { ServiceSetup } from "./services.ts";
import type { Figure } from "./stats.ts";

export interface Bench {
  options: BenchOptions;
  nats: Nats;
  setup: ServiceSetup;
  /** A temporary folder removed at exit; scenarios make their folders inside it. */
  workDir: string;
  progress(message: string): void;
}

/** What a scenario adds to the report: its figures, and lines for the details section. */
export interface Measured {
  figures: Figure[];
  notes: string[];
}

export function makeWorkSubdir(bench: Bench, prefix: string): string {
  refuseIfShuttingDown("a work folder");
  return mkdtempSync(path.join(bench.workDir, prefix));
}

export const range = (count: number) => Array.from({ length: count }, (_, i) => i);
