// Child processes of the benchmark, and what /proc says about them (CPU time, memory).
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import { onCleanup, refuseIfShuttingDown, trackChild } from "./cleanup.ts";
import { observe, observeLogLine } from "./observations.ts";

export interface ChildService {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Resolves once the process has ended. */
  exited: Promise<void>;
  /** SIGTERM, then SIGKILL if it has not ended within the grace time. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would end it. */
  kill(): Promise<void>;
}

const STOP_GRACE_MS = 10_000;

/** `<name>-<n>.cpuprofile`, the name made file-safe; n counts processes of that name. */
const profiled = new Map<string, number>();
function profileName(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_-]+/g, "-");
  const n = (profiled.get(safe) ?? 0) + 1;
  profiled.set(safe, n);
  return `${safe}-${n}.cpuprofile`;
}

/**
 * Starts `node <args>` with `env` added to this process's environment. Its own process group, so
 * Ctrl-C in a terminal reaches only the benchmark, which stops its children in order. Its output is
 * scanned for warnings and errors (the services log JSON at LOG_LEVEL=warn).
 */
export function spawnNode(name: string, args: string[], env: Record<string, string>): ChildService {
  refuseIfShuttingDown(name);
  // BENCH_CPU_PROF_DIR: every process of the run writes a CPU profile there when it exits.
  const profileDir = process.env.BENCH_CPU_PROF_DIR;
  const profile = profileDir
    ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${profileName(name)}`]
    : [];
  const child = spawn(process.execPath, [...profile, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  trackChild(child);
  for (const stream of [child.stdout!, child.stderr!]) forEachLine(stream, (line) => observeLogLine(name, line));
  let stopping = false;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      if (!stopping && code !== 0) observe(name, `exited on its own with ${code ?? signal}`);
      else if (stopping && code !== 0 && signal !== "SIGKILL" && code !== null)
        observe(name, `exited with ${code} after SIGTERM`);
      resolve();
    }),
  );
  // Registered for the cleanup on the way out; a service stopped earlier unregisters itself.
  const unregister = onCleanup(name, () => stop());
  async function stop(): Promise<void> {
    unregister();
    if (child.exitCode !== null || child.signalCode !== null) return;
    stopping = true;
    child.kill("SIGTERM");
    const graceOver = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), STOP_GRACE_MS).unref());
    if ((await Promise.race([exited, graceOver])) === "timeout") {
      observe(name, `did not stop within ${STOP_GRACE_MS / 1000} s of SIGTERM; killed`);
      child.kill("SIGKILL");
      await exited;
    }
  }
  async function kill(): Promise<void> {
    unregister();
    if (child.exitCode !== null || child.signalCode !== null) return;
    stopping = true;
    child.kill("SIGKILL");
    await exited;
  }
  return { name, child, pid: child.pid, exited, stop, kill };
}

function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = "";
  stream.on("data", (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split("\n");
    rest = lines.pop()!.slice(-10_000);
    for (const line of lines) onLine(line);
  });
  stream.on("end", () => onLine(rest));
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const CLOCK_TICKS_PER_SECOND = 100;

/** User plus system CPU seconds the process has used so far (/proc/<pid>/stat utime + stime). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces: state is [0],
  // utime [11], stime [12].
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Resident memory now (VmRSS) and its peak so far (VmHWM), in bytes, from /proc/<pid>/status; and
 * what VmRSS is now made of: anonymous memory (the heap, buffers) and mapped files' pages (RssFile:
 * the code, and LMDB's map as far as reads have touched it).
 */
export function memoryBytes(pid: number): { rss: number; peak: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN);
  return {
    rss: kib("VmRSS") * 1024,
    peak: kib("VmHWM") * 1024,
    anon: kib("RssAnon") * 1024,
    file: kib("RssFile") * 1024,
  };
}

/** Polls `url` until it answers 200 (bounded), failing early if the process ends. */
export async function waitForHttpOk(url: string, service: ChildService, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (service.child.exitCode !== null) throw new Error(`${service.name} exited before it was ready`);
    if ((await statusOf(url)) === 200) return;
    await sleep(50);
  }
  throw new Error(`${service.name} was not ready at ${url} within ${timeoutMs / 1000} s`);
}

function statusOf(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    request.once("timeout", () => request.destroy());
    request.once("error", () => resolve(undefined));
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
