// The JetStream side of the contract: declaring the event log and the dead-letter stream, and a
// typed publisher for contract events.
import {
  headers,
  nanos,
  NatsError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  type PubAck,
  type StreamConfig,
} from "nats";
import { z } from "zod";
import { idSchema, type Action, type Entity, type Envelope } from "./events.ts";
import { DLQ_SUBJECTS, EVENTS_SUBJECTS, eventSubject } from "./subjects.ts";

export const DEFAULT_EVENTS_STREAM = "KEYBOX_EVENTS";
export const DEFAULT_DLQ_STREAM = "KEYBOX_DLQ";
/** The projector's durable consumer on the event log (the query API reads its acknowledgement floor). */
export const DEFAULT_PROJECTOR_DURABLE = "dashboard-projector";

/**
 * What a change notice on `keybox.dashboard.changed.<ownerId>` carries: the owner's new read-model
 * version and the clients whose part of the dashboard the change touched (a project moved between
 * clients touches both; a change to no client's data, such as a register alone, names none). Each
 * client named now has that version as its client version too (what a client-filtered read's
 * ETag is made from).
 */
export const dashboardChangedSchema = z.object({
  ownerId: idSchema,
  version: z.number().int().positive(),
  clients: z.array(idSchema),
});
export type DashboardChanged = z.infer<typeof dashboardChangedSchema>;

/** JetStream API error codes (JSStreamNotFoundErr, JSConsumerNotFoundErr). */
const STREAM_NOT_FOUND = 10059;
const CONSUMER_NOT_FOUND = 10014;

/** Whether a JetStream API call failed because the stream or consumer does not exist. */
export function isNotFound(error: unknown): boolean {
  const code = error instanceof NatsError ? error.jsError()?.err_code : undefined;
  return code === STREAM_NOT_FOUND || code === CONSUMER_NOT_FOUND;
}

async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(config.name);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await jsm.streams.add(config);
  }
}

export interface StreamNames {
  eventsStream: string;
  dlqStream: string;
}

/**
 * Declares the event log and the dead-letter stream when missing (an existing stream is left as
 * its operator configured it). The log keeps everything: read models are rebuilt from it.
 */
export async function ensureStreams(nc: NatsConnection, names: StreamNames): Promise<void> {
  const jsm = await nc.jetstreamManager();
  await ensureStream(jsm, {
    name: names.eventsStream,
    subjects: [EVENTS_SUBJECTS],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_age: 0,
    duplicate_window: nanos(2 * 60 * 1000),
  });
  await ensureStream(jsm, {
    name: names.dlqStream,
    subjects: [DLQ_SUBJECTS],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_age: 0,
  });
}

/** Publishes one contract event; `Nats-Msg-Id` is the event id so JetStream drops duplicates. */
export async function publishEvent(js: JetStreamClient, envelope: Envelope): Promise<PubAck> {
  const [, entity, action] = envelope.type.split(".") as [string, Entity, Action];
  const h = headers();
  h.set("Nats-Msg-Id", envelope.id);
  return js.publish(eventSubject(envelope.ownerid, entity, action), JSON.stringify(envelope), { headers: h });
}
