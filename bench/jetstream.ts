// The benchmark's side of NATS: its own nats-server, publishing events in bulk, bare durables, and
// timing a drain from the consumer's own counters.
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  nanos,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
} from "nats";
import { DEFAULT_EVENTS_STREAM, ensureStreams, isNotFound, publishEvent, type Envelope } from "@keybox/contract";
import { startLocalNats } from "../scripts/natsServer.ts";
import { onCleanup, refuseIfShuttingDown, trackChild } from "./cleanup.ts";
import { cpuSeconds, sleep, type ChildService } from "./processes.ts";

export const EVENTS_STREAM = DEFAULT_EVENTS_STREAM;

export interface Nats {
  url: string;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/** A nats-server of our own (never the one on 4222), with the event streams declared. */
export async function startNats(storeDir: string): Promise<Nats> {
  refuseIfShuttingDown("nats-server");
  const server = await startLocalNats(storeDir);
  trackChild(server.process);
  onCleanup("nats-server", () => server.stop());
  const nc = await connect({ servers: server.url, name: "keybox-bench" });
  onCleanup("benchmark NATS connection", () => nc.close());
  await ensureStreams(nc, { eventsStream: EVENTS_STREAM, dlqStream: "KEYBOX_DLQ" });
  return { url: server.url, nc, js: nc.jetstream(), jsm: await nc.jetstreamManager() };
}

/** Publish acks awaited together: enough to keep the server busy, bounded in memory. */
const PUBLISH_WINDOW = 1000;

/** Publishes every event (windowed, in order of the windows) and returns the last stream sequence. */
export async function publishAll(nats: Nats, events: Envelope[]): Promise<number> {
  let lastSeq = 0;
  for (let i = 0; i < events.length; i += PUBLISH_WINDOW) {
    const acks = await Promise.all(events.slice(i, i + PUBLISH_WINDOW).map((e) => publishEvent(nats.js, e)));
    for (const ack of acks) lastSeq = Math.max(lastSeq, ack.seq);
  }
  return lastSeq;
}

export async function lastSequence(nats: Nats, stream = EVENTS_STREAM): Promise<number> {
  return (await nats.jsm.streams.info(stream)).state.last_seq;
}

/**
 * A durable for a bare consumer, with the projector's delivery settings where they matter for
 * speed (explicit acks, at most 1,024 unacknowledged).
 */
export async function addBareDurable(
  nats: Nats,
  options: { stream: string; durable: string; filter: string; onlyNew?: boolean },
): Promise<void> {
  await nats.jsm.consumers.add(options.stream, {
    durable_name: options.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: options.onlyNew ? DeliverPolicy.New : DeliverPolicy.All,
    ack_wait: nanos(10_000),
    max_ack_pending: 1024,
    filter_subject: options.filter,
  });
}

export async function deleteDurable(nats: Nats, durable: string, stream = EVENTS_STREAM): Promise<void> {
  await nats.jsm.consumers.delete(stream, durable).catch((error: unknown) => {
    if (!isNotFound(error)) throw error;
  });
}

/** Events not delivered yet plus delivered but not acknowledged; undefined while the durable does not exist. */
export async function consumerLag(nats: Nats, durable: string, stream = EVENTS_STREAM): Promise<number | undefined> {
  try {
    const info = await nats.jsm.consumers.info(stream, durable);
    return info.num_pending + info.num_ack_pending;
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export interface DrainTiming {
  /** From the first delivery seen to everything acknowledged (process start-up excluded). */
  seconds: number;
  /** From `startedAt` (the consumer process's spawn) to everything acknowledged. */
  secondsFromStart: number;
  /** CPU seconds each consumer process used over `seconds`. */
  cpuSeconds: number[];
}

/** How often a drain is checked: its ends are known to within this. */
const DRAIN_POLL_MS = 20;

/**
 * Waits until `durable` has acknowledged everything up to `lastSeq`, polling its consumer info.
 * The window opens at the first poll that sees a delivery past `deliveredBefore`; the CPU of the
 * consumer processes is read at both ends. Fails at once if one of them ends.
 */
export async function timeDrain(
  nats: Nats,
  options: {
    durable: string;
    lastSeq: number;
    deliveredBefore: number;
    consumers: ChildService[];
    startedAt: number;
    timeoutMs: number;
  },
): Promise<DrainTiming> {
  const deadline = options.startedAt + options.timeoutMs;
  let opened: { at: number; cpu: number[] } | undefined;
  let acked = 0;
  const pids = options.consumers.map((c) => c.pid);
  while (performance.now() < deadline) {
    const ended = options.consumers.find((c) => c.child.exitCode !== null || c.child.signalCode !== null);
    if (ended) throw new Error(`${ended.name} ended during the drain of ${options.durable}`);
    const info = await nats.jsm.consumers.info(EVENTS_STREAM, options.durable).catch((error: unknown) => {
      if (isNotFound(error)) return undefined; // the projector has not created it yet
      throw error;
    });
    const now = performance.now();
    if (info && !opened && info.delivered.stream_seq > options.deliveredBefore)
      opened = { at: now, cpu: pids.map(cpuSeconds) };
    acked = info?.ack_floor.stream_seq ?? 0;
    if (opened && acked >= options.lastSeq) {
      return {
        seconds: (now - opened.at) / 1000,
        secondsFromStart: (now - options.startedAt) / 1000,
        cpuSeconds: pids.map((pid, i) => cpuSeconds(pid) - opened!.cpu[i]!),
      };
    }
    await sleep(DRAIN_POLL_MS);
  }
  throw new Error(
    `${options.durable} did not drain within ${options.timeoutMs / 1000} s (acknowledged up to ${acked} of ` +
      `${options.lastSeq})`,
  );
}

/** Waits until `durable` has acknowledged every event up to `seq` (so a reader sees them), polling. */
export async function acknowledged(nats: Nats, durable: string, seq: number, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while ((await nats.jsm.consumers.info(EVENTS_STREAM, durable)).ack_floor.stream_seq < seq) {
    if (performance.now() > deadline)
      throw new Error(`${durable} did not acknowledge sequence ${seq} within ${timeoutMs / 1000} s`);
    await sleep(5);
  }
}

/** Where a durable stands now (to open a drain window on a durable that already consumed). */
export async function deliveredSequence(nats: Nats, durable: string): Promise<number> {
  try {
    return (await nats.jsm.consumers.info(EVENTS_STREAM, durable)).delivered.stream_seq;
  } catch (error) {
    if (isNotFound(error)) return 0;
    throw error;
  }
}
