// The processes under test (the built services, as production runs them) and the baselines beside
// them (a bare node:http server, a bare JetStream consumer), all on loopback.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../scripts/natsServer.ts";
import { spawnNode, waitForHttpOk, type ChildService } from "./processes.ts";

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const JWT_SECRET = "benchmark-secret-of-at-least-thirty-two-characters";
/** The query API's setting that turns its response cache off, so that every request reads the store. */
export const NO_RESPONSE_CACHE = { RESPONSE_CACHE_MB: "0" };

export interface Running extends ChildService {
  /** http://127.0.0.1:<port> of its HTTP side. */
  baseUrl: string;
}

export interface ServiceSetup {
  natsUrl: string;
  /** Where the services were built (`<distDir>/projector.mjs`, `<distDir>/query-api.mjs`). */
  distDir: string;
}

/** A projector process. Not awaited until ready: a drain is timed from the consumer's side. */
export async function startProjector(
  setup: ServiceSetup,
  options: { name: string; dataDir: string; durable: string },
): Promise<Running> {
  const port = await freePort();
  const service = spawnNode(options.name, ["--enable-source-maps", path.join(setup.distDir, "projector.mjs")], {
    NATS_URL: setup.natsUrl,
    DATA_DIR: options.dataDir,
    LOG_LEVEL: "warn",
    METRICS_PORT: String(port),
    PROJECTOR_DURABLE: options.durable,
  });
  return { ...service, baseUrl: `http://127.0.0.1:${port}` };
}

export async function waitUntilReady(service: Running): Promise<void> {
  await waitForHttpOk(`${service.baseUrl}/readyz`, service);
}

/** A query API process; `env` adds settings (e.g. RESPONSE_CACHE_MB=0). Awaited until ready. */
export async function startQueryApi(
  setup: ServiceSetup,
  options: { name: string; dataDir: string; env?: Record<string, string> },
): Promise<Running> {
  const port = await freePort();
  const service = spawnNode(options.name, ["--enable-source-maps", path.join(setup.distDir, "query-api.mjs")], {
    NATS_URL: setup.natsUrl,
    DATA_DIR: options.dataDir,
    LOG_LEVEL: "warn",
    PORT: String(port),
    HOST: "127.0.0.1",
    JWT_SECRET,
    ...options.env,
  });
  const running = { ...service, baseUrl: `http://127.0.0.1:${port}` };
  await waitUntilReady(running);
  return running;
}

/** Serves each `<name>.body` file of `bodiesDir` at `/<name>`, as it is, with the API's headers. */
export async function startBareServer(bodiesDir: string, contentType: string): Promise<Running> {
  const port = await freePort();
  const service = spawnNode("bare node:http", ["--import", "tsx", path.join(BENCH_DIR, "children/bareServer.ts")], {
    BENCH_BODIES_DIR: bodiesDir,
    BENCH_CONTENT_TYPE: contentType,
    PORT: String(port),
  });
  const running = { ...service, baseUrl: `http://127.0.0.1:${port}` };
  await waitForHttpOk(`${running.baseUrl}/healthz`, running);
  return running;
}

/**
 * A bare JetStream pull consumer on an existing durable: parse each message, acknowledge it, and
 * (with `echoSubject`) publish its stream sequence there, for the freshness baseline.
 */
export function startBareConsumer(
  setup: ServiceSetup,
  options: { stream: string; durable: string; echoSubject?: string },
): ChildService {
  return spawnNode("bare consumer", ["--import", "tsx", path.join(BENCH_DIR, "children/bareConsumer.ts")], {
    NATS_URL: setup.natsUrl,
    BENCH_STREAM: options.stream,
    BENCH_DURABLE: options.durable,
    BENCH_ECHO_SUBJECT: options.echoSubject ?? "",
  });
}
