// `npm start`: projector and query API in one process on the configured store. Without NATS_URL
// it runs a local nats-server (data under DATA_DIR) and seeds the API document's example for a
// demo owner when the stream is empty; with NATS_URL it seeds nothing.
import path from "node:path";
import { SignJWT } from "jose";
import { PROJECTION_VERSION, ProjectorGenerations } from "@keybox/projector";
import { startQueryApi } from "@keybox/query-api";
import { ensureStreams, publishEvent } from "@keybox/contract";
import { openReadModel } from "@keybox/read-model";
import {
  collectProcessMetrics,
  connectNats,
  createLogger,
  exitOnStartFailure,
  loadConfig,
  onShutdownSignal,
} from "@keybox/runtime";
import { startLocalNats, type LocalNats } from "./natsServer.ts";
import { DEMO_OWNER_ID, exampleEvents } from "./seedExample.ts";
import { allInOneSettings } from "./settings.ts";

/** Only for `npm start`: the separate services refuse to start without a real JWT_SECRET. */
const DEV_JWT_SECRET = "keybox-development-secret-do-not-use-in-production";

try {
  const devSecret = !process.env.JWT_SECRET;
  const config = loadConfig(allInOneSettings, { ...process.env, JWT_SECRET: process.env.JWT_SECRET || DEV_JWT_SECRET });
  const log = createLogger("keybox", config.LOG_LEVEL);
  collectProcessMetrics();
  if (devSecret) log.warn("JWT_SECRET is not set: using the development secret; set JWT_SECRET outside development");

  let localNats: LocalNats | undefined;
  if (!config.NATS_URL) {
    localNats = await startLocalNats(path.join(config.DATA_DIR, "nats"));
    // Never leave it running behind us, also when the start fails further on.
    const child = localNats.process;
    process.once("exit", () => child.kill("SIGTERM"));
    log.info({ url: localNats.url }, "started local nats-server (NATS_URL is not set)");
  }
  const natsUrl = config.NATS_URL ?? localNats!.url;
  const nc = await connectNats(natsUrl, "keybox-dashboard");
  await ensureStreams(nc, { eventsStream: config.EVENTS_STREAM, dlqStream: config.DLQ_STREAM });

  if (localNats) {
    const jsm = await nc.jetstreamManager();
    const { state } = await jsm.streams.info(config.EVENTS_STREAM);
    if (state.messages === 0) {
      const js = nc.jetstream();
      for (const envelope of exampleEvents()) await publishEvent(js, envelope);
      log.info({ ownerId: DEMO_OWNER_ID }, "seeded the example dashboard (the stream was empty)");
    }
  }

  const readModel = await openReadModel(config);
  const projectionVersion = config.KEYBOX_TEST_PROJECTION_VERSION ?? PROJECTION_VERSION;
  const projector = new ProjectorGenerations(nc, readModel, config, log, { mode: "serve", projectionVersion });
  await projector.start();
  const api = await startQueryApi(config, nc, await readModel.current(), log);

  const shutDownAfter = onShutdownSignal(log, async () => {
    await projector.stop();
    await api.close();
    await nc.drain();
    await readModel.close();
    await localNats?.stop();
  });
  void projector.failed.then(shutDownAfter);

  const token = await new SignJWT({ userId: DEMO_OWNER_ID })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuedAt()
    .setExpirationTime("30d")
    .sign(new TextEncoder().encode(config.JWT_SECRET));
  process.stdout.write(
    `${[
      "",
      `KeyBox dashboard read model is running at ${api.url}`,
      `NATS: ${natsUrl}   store: ${config.MONGODB_URL ? "MongoDB" : `LMDB in ${config.DATA_DIR}`}`,
      "",
      `Try it (a development token for the demo owner ${DEMO_OWNER_ID}):`,
      `  curl -s ${api.url}/dashboard -H "Authorization: Bearer ${token}"`,
      "",
    ].join("\n")}\n`,
  );
} catch (error) {
  exitOnStartFailure(error);
}
