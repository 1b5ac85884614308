// Everything the benchmark starts or creates is registered here, so that it is stopped and removed
// on every way out: a normal end, a failure, Ctrl-C or SIGTERM.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

type AsyncCleanup = () => Promise<void>;

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
/** Run in reverse order of registration (what was started last stops first). */
const cleanups: { name: string; run: AsyncCleanup }[] = [];
/** Bounds every cleanup step: a stuck step must not keep the benchmark from exiting. */
const CLEANUP_STEP_TIMEOUT_MS = 15_000;

let shuttingDown = false;

export const isShuttingDown = () => shuttingDown;

/** After a signal, the benchmark starts nothing more (its main flow may still be running). */
export function refuseIfShuttingDown(what: string): void {
  if (shuttingDown) throw new Error(`not starting ${what}: the benchmark is shutting down`);
}

export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once("exit", () => children.delete(child));
}

export function makeTempDir(prefix: string): string {
  refuseIfShuttingDown("a temporary folder");
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** A folder made elsewhere that must go too. */
export function trackTempDir(dir: string): string {
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** Registers an asynchronous cleanup; the returned function unregisters it (after running it yourself). */
export function onCleanup(name: string, run: AsyncCleanup): () => void {
  const entry = { name, run };
  cleanups.push(entry);
  return () => {
    const index = cleanups.indexOf(entry);
    if (index >= 0) cleanups.splice(index, 1);
  };
}

let cleaning: Promise<void> | undefined;

/** Runs every registered cleanup once (later calls wait for the first), then removes the temp dirs. */
export function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const { name, run } of cleanups.splice(0).reverse()) {
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, CLEANUP_STEP_TIMEOUT_MS).unref());
      await Promise.race([run(), timeout]).catch((error: unknown) =>
        process.stderr.write(`cleanup of ${name} failed: ${(error as Error).message}\n`),
      );
    }
    killRemainingChildren();
    for (const dir of [...tempDirs]) removeTempDir(dir);
  })();
  return cleaning;
}

/** The last resort: whatever still runs is killed, by its own pid. */
function killRemainingChildren(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

/**
 * Ctrl-C or SIGTERM: clean up, then exit 130. A second signal does not wait for the cleanup. The
 * process `exit` hook catches the rest (an uncaught error): kill the children, remove the dirs.
 */
export function installExitHandlers(): void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      killRemainingChildren();
      process.exit(130);
    }
    signalled = true;
    shuttingDown = true;
    process.stderr.write(`\n${signal}: stopping everything the benchmark started…\n`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("exit", () => {
    killRemainingChildren();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}
