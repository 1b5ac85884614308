// NATS helpers used by both services and by publishers: connecting, declaring the streams, and a
// typed publisher for contract events.
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  headers,
  nanos,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  type PubAck,
  type StreamConfig,
} from "nats";
import type { Action, Entity, Envelope } from "./events.ts";
import { DLQ_SUBJECTS, EVENTS_SUBJECTS, eventSubject } from "./subjects.ts";

export type { JetStreamClient, NatsConnection };

/** What a change notice on `keybox.dashboard.changed.<ownerId>` carries. */
export interface DashboardChanged {
  ownerId: string;
  version: number;
}

export async function connectNats(servers: string, name: string): Promise<NatsConnection> {
  // Reconnect forever: a NATS restart must not take the services down.
  return connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
}

function isNotFound(error: unknown): boolean {
  const e = error as { code?: string; api_error?: { err_code?: number } };
  return e.code === "404" || e.api_error?.err_code === 10059 || e.api_error?.err_code === 10014;
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

export interface ConsumerSettings {
  stream: string;
  durable: string;
  /** How long a delivered event may stay unacknowledged before it is delivered again. */
  ackWaitMs: number;
  maxAckPending: number;
}

/** Declares the projector's durable pull consumer when missing. Every replica shares it. */
export async function ensureConsumer(nc: NatsConnection, s: ConsumerSettings): Promise<void> {
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.consumers.info(s.stream, s.durable);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await jsm.consumers.add(s.stream, {
      durable_name: s.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(s.ackWaitMs),
      max_ack_pending: s.maxAckPending,
      filter_subject: EVENTS_SUBJECTS,
    });
  }
}

/** Publishes one contract event; `Nats-Msg-Id` is the event id so JetStream drops duplicates. */
export async function publishEvent(js: JetStreamClient, envelope: Envelope): Promise<PubAck> {
  const [, entity, action] = envelope.type.split(".") as [string, Entity, Action];
  const h = headers();
  h.set("Nats-Msg-Id", envelope.id);
  return js.publish(eventSubject(envelope.ownerid, entity, action), JSON.stringify(envelope), { headers: h });
}
