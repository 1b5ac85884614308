// NATS helpers used by both services and by publishers: connecting, declaring the streams, and a
// typed publisher for contract events.
import {
  AckPolicy,
  connect,
  DeliverPolicy,
  headers,
  nanos,
  RetentionPolicy,
  NatsError,
  StorageType,
  type ConsumerInfo,
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

export interface ConsumerSettings {
  stream: string;
  durable: string;
  /** How long a delivered event may stay unacknowledged before it is delivered again. */
  ackWaitMs: number;
  /** Deliveries of one event before it is given up on (and dead-lettered). */
  maxDeliver: number;
  maxAckPending: number;
}

/** Redelivery delays never grow past this. */
const MAX_BACKOFF_MS = 5 * 60 * 1000;

/**
 * The wait before each redelivery: the ack wait, then doubling up to five minutes, one step per
 * redelivery (JetStream requires fewer steps than max_deliver).
 */
export function retryBackoff(ackWaitMs: number, maxDeliver: number): number[] {
  return Array.from({ length: Math.max(0, maxDeliver - 1) }, (_, i) => Math.min(ackWaitMs * 2 ** i, MAX_BACKOFF_MS));
}

/** How the server redelivers a consumer's events, as its consumer actually is configured. */
export interface DeliveryPolicy {
  /** The first delivery's ack wait (with a backoff, JetStream sets it to the first step). */
  ackWaitMs: number;
  /** 0 when the consumer has no limit. */
  maxDeliver: number;
  /** The wait before redelivery n + 1 is `backoffMs[n - 1]` (the last step repeats). */
  backoffMs: number[];
}

export function deliveryPolicy(info: ConsumerInfo): DeliveryPolicy {
  const { ack_wait, max_deliver, backoff } = info.config;
  const ackWaitMs = Math.round((ack_wait ?? 30e9) / 1e6);
  return {
    ackWaitMs,
    maxDeliver: max_deliver !== undefined && max_deliver > 0 ? max_deliver : 0,
    backoffMs: backoff?.length ? backoff.map((ns) => Math.round(ns / 1e6)) : [ackWaitMs],
  };
}

/**
 * Declares the projector's durable pull consumer when missing (every replica shares it) and
 * returns how the server really delivers: an existing consumer keeps the settings it was created
 * with, which may differ from this process's.
 */
export async function ensureConsumer(nc: NatsConnection, s: ConsumerSettings): Promise<DeliveryPolicy> {
  const jsm = await nc.jetstreamManager();
  try {
    return deliveryPolicy(await jsm.consumers.info(s.stream, s.durable));
  } catch (error) {
    if (!isNotFound(error)) throw error;
    const backoff = retryBackoff(s.ackWaitMs, s.maxDeliver);
    const created = await jsm.consumers.add(s.stream, {
      durable_name: s.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(s.ackWaitMs),
      max_deliver: s.maxDeliver,
      backoff: backoff.map(nanos),
      max_ack_pending: s.maxAckPending,
      filter_subject: EVENTS_SUBJECTS,
    });
    return deliveryPolicy(created);
  }
}

/** Publishes one contract event; `Nats-Msg-Id` is the event id so JetStream drops duplicates. */
export async function publishEvent(js: JetStreamClient, envelope: Envelope): Promise<PubAck> {
  const [, entity, action] = envelope.type.split(".") as [string, Entity, Action];
  const h = headers();
  h.set("Nats-Msg-Id", envelope.id);
  return js.publish(eventSubject(envelope.ownerid, entity, action), JSON.stringify(envelope), { headers: h });
}
