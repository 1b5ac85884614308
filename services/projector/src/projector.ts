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

type Valid = { seq: number; event: KeyboxEvent };

export class Projector {
  /**
   * Delivered messages not yet settled, by stream sequence: waiting for a batch, or in the batch
   * being applied. Keyed so that a redelivery replaces its earlier copy instead of queueing twice.
   */
  private readonly waiting = new Map<number, JsMsg>();
  private readonly inFlight = new Map<number, JsMsg>();
  private wake: (() => void) | undefined;
  private messages: ConsumerMessages | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: DashboardStore,
    private readonly config: ProjectorConfig,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { EVENTS_STREAM, DLQ_STREAM, PROJECTOR_DURABLE, PROJECTOR_BATCH_SIZE, PROJECTOR_ACK_WAIT_MS } = this.config;
    await ensureStreams(this.nc, { eventsStream: EVENTS_STREAM, dlqStream: DLQ_STREAM });
    await ensureConsumer(this.nc, {
      stream: EVENTS_STREAM,
      durable: PROJECTOR_DURABLE,
      ackWaitMs: PROJECTOR_ACK_WAIT_MS,
      maxAckPending: Math.max(1000, PROJECTOR_BATCH_SIZE * 4),
    });
    const consumer = await this.nc.jetstream().consumers.get(EVENTS_STREAM, PROJECTOR_DURABLE);
    // Messages are held as they arrive and taken in batches of whatever is waiting, so a quiet
    // stream is applied at once and a busy one in large batches.
    this.messages = await consumer.consume({
      max_messages: PROJECTOR_BATCH_SIZE * 2,
      callback: (msg) => {
        if (this.inFlight.has(msg.seq)) this.inFlight.set(msg.seq, msg);
        else this.waiting.set(msg.seq, msg);
        this.wake?.();
      },
    });
    void this.messages.closed().then((error) => {
      if (this.stopping) return;
      // The consume ended on its own (the consumer or stream is gone): a process that takes no
      // events must not look healthy, so exit and let the supervisor start it again.
      this.log.fatal({ err: error }, "the event consumer stopped; exiting");
      process.exit(1);
    });
    // Held messages are reported as in progress, so JetStream does not redeliver them while they
    // wait behind a slow batch.
    this.heartbeat = setInterval(() => {
      for (const msg of [...this.waiting.values(), ...this.inFlight.values()]) msg.working();
    }, PROJECTOR_ACK_WAIT_MS / 3);
    this.loop = this.run();
    this.log.info({ stream: EVENTS_STREAM, durable: PROJECTOR_DURABLE }, "projector started");
  }

  /** Stops taking events, finishes the batch in hand, and hands back what was not started. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.messages?.close();
    this.wake?.();
    await this.loop;
    clearInterval(this.heartbeat);
    for (const msg of this.waiting.values()) msg.nak();
    this.waiting.clear();
    this.log.info("projector stopped");
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.waiting.size === 0) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      const batch: number[] = [];
      for (const [seq, msg] of this.waiting) {
        if (batch.length === this.config.PROJECTOR_BATCH_SIZE) break;
        this.waiting.delete(seq);
        this.inFlight.set(seq, msg);
        batch.push(seq);
      }
      await this.process(batch);
    }
  }

  /** Acks or naks the newest delivery of `seq` and forgets it. */
  private settle(seq: number, outcome: "ack" | "retry"): void {
    const msg = this.inFlight.get(seq);
    this.inFlight.delete(seq);
    if (outcome === "ack") msg?.ack();
    else msg?.nak(RETRY_DELAY_MS);
  }

  private async process(batch: number[]): Promise<void> {
    metrics.eventsReceived.inc(batch.length);
    const valid: Valid[] = [];
    for (const seq of batch) {
      const msg = this.inFlight.get(seq)!;
      const parsed = parseEvent(msg.subject, msg.data, this.config.MAX_EVENT_BYTES);
      if (parsed.ok) valid.push({ seq, event: parsed.event });
      else this.settle(seq, (await this.reject(msg, parsed.reason)) ? "ack" : "retry");
    }
    if (valid.length === 0) return;
    if (await this.apply(valid)) return;
    // The batch failed. Apply its events one by one, so that one event the store cannot take
    // (it keeps coming back) does not hold up the others; two failures before any success look
    // like an outage instead, and the whole batch waits.
    let applied = 0;
    let failed = 0;
    for (const one of valid.length > 1 ? valid : []) {
      if (await this.apply([one])) applied++;
      else if (++failed >= 2 && applied === 0) break;
    }
    for (const { seq } of valid) if (this.inFlight.has(seq)) this.settle(seq, "retry");
    if (applied === 0) await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
  }

  /** Applies and commits events, then acknowledges them and announces the changed dashboards. */
  private async apply(valid: Valid[]): Promise<boolean> {
    try {
      const lastSeq = Math.max(...valid.map((v) => v.seq));
      const outcome = await applyBatch(
        this.store,
        valid.map((v) => v.event),
        lastSeq,
      );
      for (const { seq } of valid) this.settle(seq, "ack");
      metrics.eventsApplied.inc(outcome.applied);
      metrics.commitConflicts.inc(outcome.conflicts);
      metrics.bytesWritten.inc(outcome.written.bytes);
      for (const [ownerId, version] of outcome.ownerVersions) {
        const notice: DashboardChanged = { ownerId, version };
        this.nc.publish(dashboardChangedSubject(ownerId), JSON.stringify(notice));
      }
      this.log.debug({ events: valid.length, applied: outcome.applied, lastSeq }, "batch applied");
      return true;
    } catch (error) {
      // Nothing was acknowledged: the events come back after a pause and are applied again.
      metrics.batchFailures.inc();
      this.log.error({ err: error, events: valid.length }, "applying events failed; they will be redelivered");
      return false;
    }
  }

  /** Copies an invalid event to the dead-letter stream; false when that failed (retry later). */
  private async reject(msg: JsMsg, reason: string): Promise<boolean> {
    try {
      await deadLetter(this.nc.jetstream(), this.config.EVENTS_STREAM, msg, reason);
      metrics.deadLettered.inc();
      this.log.warn({ subject: msg.subject, seq: msg.seq, reason }, "invalid event dead-lettered");
      return true;
    } catch (error) {
      this.log.error({ err: error, seq: msg.seq }, "could not dead-letter an invalid event; it will be redelivered");
      return false;
    }
  }
}
