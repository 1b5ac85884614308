// A real nats-server with JetStream for a test file: its own on a free port, or NATS_URL's
// (whose KEYBOX_* streams are then deleted so each file starts from an empty log).
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";
import { connect } from "nats";
import { startLocalNats, type LocalNats } from "../../scripts/natsServer.ts";

export const TEST_STREAMS = { eventsStream: "KEYBOX_EVENTS", dlqStream: "KEYBOX_DLQ" };

async function deleteStreams(url: string): Promise<void> {
  const nc = await connect({ servers: url });
  const jsm = await nc.jetstreamManager();
  for (const name of Object.values(TEST_STREAMS)) await jsm.streams.delete(name).catch(() => undefined);
  await nc.close();
}

/** Registers hooks that provide a NATS URL for the file; read `.url` inside tests. */
export function useNats(): { url: string } {
  const handle = { url: "" };
  let local: LocalNats | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    if (process.env.NATS_URL) {
      handle.url = process.env.NATS_URL;
      await deleteStreams(handle.url);
      return;
    }
    dir = mkdtempSync(path.join(os.tmpdir(), "keybox-nats-"));
    local = await startLocalNats(dir);
    handle.url = local.url;
  });
  afterAll(async () => {
    await local?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return handle;
}
