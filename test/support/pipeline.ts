// The real pipeline in the test process: a real nats-server, the real Projector, the real LMDB
// store in a temporary folder and the real HTTP server on a free port.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { SignJWT } from "jose";
import type { z } from "zod";
import { Projector } from "@keybox/projector";
import { startQueryApi, type QueryApi } from "@keybox/query-api";
import type { NatsConnection } from "nats";
import { publishEvent, type Envelope } from "@keybox/contract";
import { openReadModel, type DashboardStore } from "@keybox/read-model";
import { connectNats, createLogger, loadConfig } from "@keybox/runtime";
import { allInOneSettings } from "../../scripts/settings.ts";

export const TEST_JWT_SECRET = "test-secret-of-at-least-thirty-two-characters";

export interface Pipeline {
  api: QueryApi;
  nc: NatsConnection;
  store: DashboardStore;
  config: z.infer<typeof allInOneSettings>;
  publish(envelope: Envelope): Promise<void>;
  stop(): Promise<void>;
}

export async function startPipeline(natsUrl: string, env: Record<string, string> = {}): Promise<Pipeline> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "keybox-data-"));
  const config = loadConfig(allInOneSettings, {
    NATS_URL: natsUrl,
    DATA_DIR: dataDir,
    PORT: "0",
    HOST: "127.0.0.1",
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: "silent",
    ...env,
  });
  const log = createLogger("test", config.LOG_LEVEL);
  const nc = await connectNats(natsUrl, "keybox-test");
  const readModel = await openReadModel(config);
  const store = await readModel.current();
  const projector = new Projector(nc, await readModel.generation(1), config, log);
  await projector.start();
  const api = await startQueryApi(config, nc, store, log);
  const js = nc.jetstream();
  return {
    api,
    nc,
    store,
    config,
    publish: async (envelope) => void (await publishEvent(js, envelope)),
    stop: async () => {
      await projector.stop();
      await api.close();
      await nc.drain();
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TokenOptions {
  secret?: string;
  /** Relative to now, as jose reads it ("1h", "-5s"); null signs a token without `exp`. */
  expiresIn?: string | null;
  alg?: "HS256" | "HS384" | "HS512";
}

export async function tokenFor(claims: Record<string, unknown>, options: TokenOptions = {}) {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: options.alg ?? "HS256" }).setIssuedAt();
  if (options.expiresIn !== null) jwt.setExpirationTime(options.expiresIn ?? "1h");
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_JWT_SECRET));
}

/** Polls `probe` until it returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
}
