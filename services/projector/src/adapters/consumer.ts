// The projector's durable pull consumer: declared when missing, and read back for how the server
// really redelivers (an existing consumer keeps the settings it was created with).
import { AckPolicy, DeliverPolicy, nanos, type ConsumerInfo, type NatsConnection } from "nats";
import { EVENTS_SUBJECTS, isNotFound } from "@keybox/contract";

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
function retryBackoff(ackWaitMs: number, maxDeliver: number): number[] {
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
