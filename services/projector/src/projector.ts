// The projector service: consumes the event stream, applies events to the read model in batches,
// acknowledges them once durable, dead-letters invalid ones, and announces changed dashboards.
import type { ConsumerMessages, JsMsg } from "nats";
import {
  dashboardChangedSubject,
  ensureConsumer,
  ensureStreams,
  parseEvent,
  type Config,
  type DashboardChanged,
  type DashboardStore,
  type KeyboxEvent,
  type Logger,
  type NatsConnection,
} from "@keybox/shared";
import { deadLetter } from "./adapters/deadLetters.ts";
import { applyBatch } from "./domain/applyBatch.ts";
import { projectorMetrics as metrics } from "./metrics.ts";

export type ProjectorConfig = Pick<
  Config,
  "EVENTS_STREAM" | "DLQ_STREAM" | "PROJECTOR_DURABLE" | "PROJECTOR_BATCH_SIZE" | "PROJECTOR_ACK_WAIT_MS" | "MAX_EVENT_BYTES"
>;

const RETRY_DELAY_MS = 1000;

export class Projector {
  private readonly queue: JsMsg[] = [];
  private wake: (() => void) | undefined;
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: DashboardStore,
    private readonly config: ProjectorConfig,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { EVENTS_STREAM, DLQ_STREAM, PROJECTOR_DURABLE, PROJECTOR_BATCH_SIZE } = this.config;
    await ensureStreams(this.nc, { eventsStream: EVENTS_STREAM, dlqStream: DLQ_STREAM });
    await ensureConsumer(this.nc, {
      stream: EVENTS_STREAM,
      durable: PROJECTOR_DURABLE,
      ackWaitMs: this.config.PROJECTOR_ACK_WAIT_MS,
      maxAckPending: Math.max(1000, PROJECTOR_BATCH_SIZE * 4),
    });
    const consumer = await this.nc.jetstream().consumers.get(EVENTS_STREAM, PROJECTOR_DURABLE);
    // Messages are queued as they arrive and taken in batches of whatever is waiting, so a
    // quiet stream is applied at once and a busy one in large batches.
    this.messages = await consumer.consume({
      max_messages: PROJECTOR_BATCH_SIZE * 2,
      callback: (msg) => {
        this.queue.push(msg);
        this.wake?.();
      },
    });
    this.loop = this.run();
    this.log.info({ stream: EVENTS_STREAM, durable: PROJECTOR_DURABLE }, "projector started");
  }

  /** Stops taking events, finishes the batch in hand, and hands back what was not started. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.messages?.close();
    this.wake?.();
    await this.loop;
    for (const msg of this.queue.splice(0)) msg.nak();
    this.log.info("projector stopped");
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.queue.length === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      await this.process(this.queue.splice(0, this.config.PROJECTOR_BATCH_SIZE));
    }
  }

  private async process(batch: JsMsg[]): Promise<void> {
    metrics.eventsReceived.inc(batch.length);
    const valid: { msg: JsMsg; event: KeyboxEvent }[] = [];
    for (const msg of batch) {
      const parsed = parseEvent(msg.subject, msg.data, this.config.MAX_EVENT_BYTES);
      if (parsed.ok) valid.push({ msg, event: parsed.event });
      else await this.reject(msg, parsed.reason);
    }
    if (valid.length === 0) return;
    try {
      const lastSeq = Math.max(...valid.map((v) => v.msg.seq));
      const outcome = await applyBatch(
        this.store,
        valid.map((v) => v.event),
        lastSeq,
      );
      for (const { msg } of valid) msg.ack();
      metrics.eventsApplied.inc(outcome.applied);
      metrics.commitConflicts.inc(outcome.conflicts);
      metrics.bytesWritten.inc(outcome.written.bytes);
      for (const [ownerId, version] of outcome.ownerVersions) {
        const notice: DashboardChanged = { ownerId, version };
        this.nc.publish(dashboardChangedSubject(ownerId), JSON.stringify(notice));
      }
      this.log.debug({ events: valid.length, applied: outcome.applied, lastSeq }, "batch applied");
    } catch (error) {
      // Nothing was acknowledged: the batch comes back after a pause and is applied again.
      metrics.batchFailures.inc();
      this.log.error({ err: error, events: valid.length }, "batch failed; it will be redelivered");
      for (const { msg } of valid) msg.nak(RETRY_DELAY_MS);
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
    }
  }

  private async reject(msg: JsMsg, reason: string): Promise<void> {
    try {
      await deadLetter(this.nc.jetstream(), this.config.EVENTS_STREAM, msg, reason);
      msg.ack();
      metrics.deadLettered.inc();
      this.log.warn({ subject: msg.subject, seq: msg.seq, reason }, "invalid event dead-lettered");
    } catch (error) {
      this.log.error({ err: error, seq: msg.seq }, "could not dead-letter an invalid event; it will be redelivered");
      msg.nak(RETRY_DELAY_MS);
    }
  }
}
