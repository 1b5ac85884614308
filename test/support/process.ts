// Services as real child processes, for the tests about crashes and restarts.
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../scripts/natsServer.ts";
import { eventually, TEST_JWT_SECRET } from "./pipeline.ts";
import { httpGet } from "./http.ts";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface ServiceProcess {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<number | NodeJS.Signals>;
}

/**
 * Runs an entry point of the repository with `env` added to this process's: TypeScript through tsx
 * by default, or with other `nodeOptions` (built JavaScript runs with `--enable-source-maps`).
 */
export function spawnService(
  entry: string,
  env: Record<string, string>,
  nodeOptions = ["--import", "tsx"],
  args: readonly string[] = [],
): ServiceProcess {
  const child = spawn(process.execPath, [...nodeOptions, entry, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (d: Buffer) => (output = (output + d.toString()).slice(-20_000));
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal!)),
  );
  return { child, output: () => output, exited };
}

/** Kills every process of `services` (SIGKILL unless told otherwise) and waits until all have ended. */
export async function stopAll(services: readonly ServiceProcess[], signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  for (const service of services) service.child.kill(signal);
  await Promise.all(services.map((s) => s.exited));
}

export async function waitUntilReady(baseUrl: string, service: ServiceProcess, timeoutMs = 30_000): Promise<void> {
  await eventually(async () => {
    if (service.child.exitCode !== null) throw new Error(`service exited early:\n${service.output()}`);
    const res = await httpGet(`${baseUrl}/readyz`);
    return res.status === 200 ? true : undefined;
  }, timeoutMs);
}

/**
 * A query-API process on a free loopback port, reading `dataDir` (a pipeline's LMDB folder, as a
 * replica beside the projector is deployed), with the tests' JWT secret and `env` added; ready.
 */
export async function spawnQueryApi(
  natsUrl: string,
  dataDir: string,
  env: Record<string, string> = {},
  nodeOptions?: string[],
): Promise<{ url: string; service: ServiceProcess }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const service = spawnService(
    "services/query-api/src/main.ts",
    {
      NATS_URL: natsUrl,
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: "127.0.0.1",
      JWT_SECRET: TEST_JWT_SECRET,
      ...env,
    },
    nodeOptions,
  );
  await waitUntilReady(url, service);
  return { url, service };
}
