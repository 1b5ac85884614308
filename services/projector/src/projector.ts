// The projector service: consumes the event stream, applies events to the read model in batches,
// acknowledges them once durable, dead-letters what it cannot apply, and announces changed
// dashboards. It tells a store outage (hold everything, retry, never give up) from an event the
// store refuses (retry with backoff, then dead-letter), and stops when its consumer is gone.
import { setTimeout as sleep } from "node:timers/promises";
import {
  ConsumerEvents,
  Events,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
  type Msg,
  type NatsConnection,
  type Subscription,
} from "nats";
import {
  dashboardChangedSubject,
  ensureStreams,
  isNotFound,
  parseEvent,
  type DashboardChanged,
  type KeyboxEvent,
} from "@keybox/contract";
import { z } from "zod";
import { StoreUnavailableError, type DashboardStore } from "@keybox/read-model";
import { withTimeout, type Logger } from "@keybox/runtime";
import { ensureConsumer, type DeliveryPolicy } from "./adapters/consumer.ts";
import { deadLetter, type DeadLetter, type DeadLetterKind } from "./adapters/deadLetters.ts";
import type { ProjectorSettings } from "./config.ts";
import { applyBatch } from "./domain/applyBatch.ts";
import { projectorMetrics as metrics } from "./metrics.ts";

export type ProjectorConfig = Pick<
  ProjectorSettings,
  | "EVENTS_STREAM"
  | "DLQ_STREAM"
  | "PROJECTOR_DURABLE"
  | "PROJECTOR_BATCH_SIZE"
  | "PROJECTOR_ACK_WAIT_MS"
  | "PROJECTOR_MAX_DELIVER"
  | "MAX_EVENT_BYTES"
>;

/** The projector's durable consumer (or its stream) no longer exists: it cannot go on. */
export class ConsumerLostError extends Error {
  override name = "ConsumerLostError";
}

export type ProjectorReadiness = {
  ready: boolean;
  nats: "connected" | "disconnected";
  consumer: "ok" | "missing" | "unknown";
  /** "stalled": a batch has been in hand for longer than three ack waits (a hung write). */
  store: "ok" | "unavailable" | "stalled";
  /** Events not yet delivered plus delivered but unacknowledged, at the last consumer check. */
  lag?: number;
};

export interface ProjectorRole {
  /**
   * Fills a generation being rebuilt (README, "Rebuild"): it announces no change (readers do not
   * use that generation yet, and its versions are not theirs), dead-letters no invalid event (the
   * current generation's projector did when it met it, and the stream's history would otherwise be
   * dead-lettered again), and leaves the consumer gauges to the current generation's projector.
   */
  rebuild?: boolean;
}

/** A store outage is retried after 0.5 s, doubling up to 30 s, for as long as it lasts. */
const OUTAGE_FIRST_RETRY_MS = 500;
const OUTAGE_MAX_RETRY_MS = 30_000;
/** How often the consumer's existence and lag are checked. */
const CONSUMER_CHECK_MS = 5000;
/** Health probes never wait longer than this. */
const PROBE_TIMEOUT_MS = 2000;
/** What a connection's INFO says when the client has none yet: the server default. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

type ValidEvent = { seq: number; event: KeyboxEvent };

/** The part of JetStream's `io.nats.jetstream.advisory.v1.max_deliver` advisory the projector reads. */
const maxDeliveriesAdvisory = z.object({ stream_seq: z.number().int().positive(), deliveries: z.number().int() });

export class Projector {
  /**
   * Delivered messages not yet settled, by stream sequence: waiting for a batch, or in the batch
   * being applied. Keyed so that a redelivery replaces its earlier copy instead of queueing twice.
   */
  private readonly waiting = new Map<number, JsMsg>();
  private readonly inFlight = new Map<number, JsMsg>();
  /** How the server redelivers, as read from the consumer (not from this process's settings). */
  private policy: DeliveryPolicy = { ackWaitMs: 0, maxDeliver: 0, backoffMs: [] };
  private wake: (() => void) | undefined;
  private messages: ConsumerMessages | undefined;
  private advisories: Subscription | undefined;
  private jsm: JetStreamManager | undefined;
  private timers: NodeJS.Timeout[] = [];
  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly stopSignal = new AbortController();
  private connected = true;
  private consumer: { state: ProjectorReadiness["consumer"]; lag?: number } = { state: "unknown" };
  private outage: { since: number; retries: number } | undefined;
  /** When each batch in hand was taken (the store may take a next one while one is made durable). */
  private readonly batchesSince = new Set<{ since: number }>();
  private fail: (error: Error) => void = () => {};
  /** Resolves when the projector cannot go on: its consumer is gone. */
  readonly failed = new Promise<Error>((resolve) => (this.fail = resolve));

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: DashboardStore,
    private readonly config: ProjectorConfig,
    private readonly log: Logger,
    private readonly role: ProjectorRole = {},
  ) {}

  async start(): Promise<void> {
    const {
      EVENTS_STREAM,
      DLQ_STREAM,
      PROJECTOR_DURABLE,
      PROJECTOR_BATCH_SIZE,
      PROJECTOR_ACK_WAIT_MS,
      PROJECTOR_MAX_DELIVER,
    } = this.config;
    await ensureStreams(this.nc, { eventsStream: EVENTS_STREAM, dlqStream: DLQ_STREAM });
    this.policy = await ensureConsumer(this.nc, {
      stream: EVENTS_STREAM,
      durable: PROJECTOR_DURABLE,
      ackWaitMs: PROJECTOR_ACK_WAIT_MS,
      maxDeliver: PROJECTOR_MAX_DELIVER,
      maxAckPending: Math.max(1000, PROJECTOR_BATCH_SIZE * 4),
    });
    this.consumer = { state: "ok" };
    if (this.policy.ackWaitMs !== PROJECTOR_ACK_WAIT_MS || this.policy.maxDeliver !== PROJECTOR_MAX_DELIVER) {
      this.log.warn(
        {
          durable: PROJECTOR_DURABLE,
          consumer: this.policy,
          configured: { ackWaitMs: PROJECTOR_ACK_WAIT_MS, maxDeliver: PROJECTOR_MAX_DELIVER },
        },
        "the existing consumer was created with other delivery settings; using the consumer's",
      );
    }
    void this.watchConnection();
    this.advisories = this.nc.subscribe(
      `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${EVENTS_STREAM}.${PROJECTOR_DURABLE}`,
      {
        queue: `keybox-projector.${PROJECTOR_DURABLE}`,
        callback: (_error, msg) => void this.onMaxDeliveries(msg),
      },
    );

    const consumer = await this.nc.jetstream().consumers.get(EVENTS_STREAM, PROJECTOR_DURABLE);
    // Messages are held as they arrive and taken in batches of whatever is waiting, so a quiet
    // stream is applied at once and a busy one in large batches.
    const messages = await consumer.consume({
      max_messages: PROJECTOR_BATCH_SIZE * 2,
      callback: (msg) => {
        metrics.eventsReceived.inc();
        if (msg.info.deliveryCount > 1) metrics.redeliveries.inc();
        if (this.inFlight.has(msg.seq)) this.inFlight.set(msg.seq, msg);
        else this.waiting.set(msg.seq, msg);
        this.wake?.();
      },
    });
    this.messages = messages;
    void this.watchConsumer(messages);
    void messages.closed().then((error) => {
      if (!this.stopping) this.lose(error ?? new ConsumerLostError("the event consumer ended"));
    });
    this.timers = [
      // Held messages are reported as in progress, so JetStream does not redeliver them while they
      // wait behind a slow batch or an outage. The consumer's own ack wait sets the pace.
      setInterval(() => {
        for (const msg of [...this.waiting.values(), ...this.inFlight.values()]) msg.working();
      }, this.policy.ackWaitMs / 3),
      setInterval(() => void this.checkConsumer().catch(() => undefined), CONSUMER_CHECK_MS),
    ];
    this.loop = this.run();
    this.log.info({ stream: EVENTS_STREAM, durable: PROJECTOR_DURABLE, delivery: this.policy }, "projector started");
  }

  /** Stops taking events, finishes the batch in hand, and hands back what was not started. */
  async stop(): Promise<void> {
    if (this.stopping) return this.loop;
    this.stopping = true;
    this.stopSignal.abort();
    this.advisories?.unsubscribe();
    await this.messages?.close().catch(() => undefined);
    this.wake?.();
    await this.loop;
    for (const timer of this.timers) clearInterval(timer);
    for (const msg of this.waiting.values()) msg.nak();
    this.waiting.clear();
    this.log.info("projector stopped");
  }

  /** Whether this replica can do its work: NATS connected, its consumer there, the store answering. */
  async readiness(): Promise<ProjectorReadiness> {
    const nats = this.connected && !this.nc.isClosed() ? "connected" : "disconnected";
    const store = await this.storeState();
    const { state: consumer, lag } = this.consumer;
    const ready = nats === "connected" && consumer === "ok" && store === "ok";
    return lag === undefined ? { ready, nats, consumer, store } : { ready, nats, consumer, store, lag };
  }

  private async storeState(): Promise<ProjectorReadiness["store"]> {
    if (this.outage) return "unavailable";
    for (const { since } of this.batchesSince) if (Date.now() - since > 3 * this.policy.ackWaitMs) return "stalled";
    return withTimeout(this.store.appliedSeq(), PROBE_TIMEOUT_MS).then(
      () => "ok",
      () => "unavailable",
    );
  }

  private async watchConnection(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === Events.Disconnect) this.connected = false;
      else if (status.type === Events.Reconnect) {
        this.connected = true;
        void this.checkConsumer().catch(() => undefined);
      }
    }
  }

  /** The client reports a missing consumer while it keeps retrying; confirm, then give up. */
  private async watchConsumer(messages: ConsumerMessages): Promise<void> {
    const missing: string[] = [
      ConsumerEvents.ConsumerDeleted,
      ConsumerEvents.ConsumerNotFound,
      ConsumerEvents.StreamNotFound,
    ];
    for await (const status of await messages.status()) {
      if (missing.includes(status.type)) void this.checkConsumer().catch(() => undefined);
    }
  }

  /** Asks the server about the consumer: records its lag, and gives up when it is gone. */
  private async checkConsumer(): Promise<void> {
    if (this.stopping) return;
    const { EVENTS_STREAM, PROJECTOR_DURABLE } = this.config;
    try {
      this.jsm ??= await this.nc.jetstreamManager({ timeout: PROBE_TIMEOUT_MS });
      const info = await this.jsm.consumers.info(EVENTS_STREAM, PROJECTOR_DURABLE);
      this.consumer = { state: "ok", lag: info.num_pending + info.num_ack_pending };
      if (this.role.rebuild) return;
      metrics.consumerPending.set(info.num_pending);
      metrics.consumerAckPending.set(info.num_ack_pending);
    } catch (error) {
      if (!isNotFound(error)) {
        this.consumer = { state: "unknown" };
        throw error;
      }
      this.consumer = { state: "missing" };
      this.lose(
        new ConsumerLostError(`the durable consumer ${PROJECTOR_DURABLE} on ${EVENTS_STREAM} no longer exists`, {
          cause: error,
        }),
      );
    }
  }

  /** Reports the consumer gone (`failed`): whoever runs the projector decides what follows. */
  private lose(error: Error): void {
    if (this.stopping) return;
    this.consumer = { state: "missing" };
    this.fail(error);
  }

  private async run(): Promise<void> {
    const running = new Set<Promise<void>>();
    const inFlight = Math.max(1, this.store.commitsInFlight ?? 1);
    while (!this.stopping) {
      // During an outage one batch at a time, so that held events wait out the backoff.
      if (running.size >= (this.outage ? 1 : inFlight)) {
        await Promise.race(running);
        continue;
      }
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
      const taken = { since: Date.now() };
      this.batchesSince.add(taken);
      let committing!: () => void;
      const reachedCommit = new Promise<void>((resolve) => (committing = resolve));
      const done: Promise<void> = this.process(batch, committing).finally(() => {
        this.batchesSince.delete(taken);
        running.delete(done);
      });
      running.add(done);
      // The next batch is taken once this one has handed its commit to the store (or ended before
      // that: all invalid, or failed). A store with more than one commit in flight (LMDB) prepares
      // it in its next write transaction, which sees what this one writes; with one, the check at
      // the top of the loop waits for this batch to end.
      await Promise.race([reachedCommit, done]);
    }
    await Promise.all(running);
  }

  private async process(batch: number[], committing: () => void): Promise<void> {
    const valid: ValidEvent[] = [];
    for (const seq of batch) {
      const msg = this.inFlight.get(seq)!;
      const parsed = parseEvent(msg.subject, msg.data, this.config.MAX_EVENT_BYTES);
      if (parsed.ok) valid.push({ seq, event: parsed.event });
      else if (this.role.rebuild) this.settle(seq, "ack");
      else await this.giveUp(seq, "invalid", parsed.reason);
    }
    if (valid.length === 0) return;
    const failure = await this.apply(valid, committing);
    if (failure === undefined) return this.endOutage();
    if (valid.length > 1 && (await this.storeIsDown(failure))) return this.holdForOutage(valid, failure);

    // One at a time, so that an event the store refuses does not hold up the others. Each failure
    // is checked: an outage stops the pass and holds what is left, untried events included.
    const refused: { seq: number; error: unknown }[] = [];
    for (const [n, one] of valid.entries()) {
      const error = valid.length === 1 ? failure : await this.apply([one]);
      if (error === undefined) continue;
      if (await this.storeIsDown(error)) return this.holdForOutage(valid.slice(n), error);
      refused.push({ seq: one.seq, error });
    }
    this.endOutage();
    // The store takes writes but not these events: retry each with backoff, up to its last delivery.
    for (const { seq, error } of refused) {
      const deliveries = this.inFlight.get(seq)!.info.deliveryCount;
      if (deliveries >= (this.policy.maxDeliver || this.config.PROJECTOR_MAX_DELIVER)) {
        await this.giveUp(
          seq,
          "store_refused",
          `the read model refused it ${deliveries} times: ${(error as Error).message}`,
        );
      } else this.settle(seq, "retry");
    }
  }

  /** Applies and commits events, then acknowledges them and announces the changed dashboards. */
  private async apply(valid: ValidEvent[], committing?: () => void): Promise<unknown> {
    const started = performance.now();
    try {
      const lastSeq = Math.max(...valid.map((v) => v.seq));
      const outcome = await applyBatch(
        this.store,
        valid.map((v) => v.event),
        lastSeq,
        undefined,
        committing,
      );
      for (const { seq } of valid) this.settle(seq, "ack");
      metrics.applySeconds.observe((performance.now() - started) / 1000);
      metrics.batchEvents.observe(valid.length);
      metrics.eventsApplied.inc(outcome.applied);
      metrics.commitConflicts.inc(outcome.conflicts);
      metrics.bytesWritten.inc(outcome.written.bytes);
      for (const [ownerId, { version, clients }] of this.role.rebuild ? [] : outcome.changes) {
        const notice: DashboardChanged = { ownerId, version, clients };
        this.nc.publish(dashboardChangedSubject(ownerId), JSON.stringify(notice));
      }
      this.log.debug({ events: valid.length, applied: outcome.applied, lastSeq }, "batch applied");
      return undefined;
    } catch (error) {
      metrics.batchFailures.inc();
      this.log.error({ err: error, events: valid.length }, "applying events failed");
      return error;
    }
  }

  /** An outage, unless the store says so itself or still takes a write of its own. */
  private async storeIsDown(failure: unknown): Promise<boolean> {
    if (failure instanceof StoreUnavailableError) return true;
    return this.store.checkWritable().then(
      () => false,
      () => true,
    );
  }

  /**
   * Nothing is wrong with these events: they are kept (reported as in progress, so they use no
   * deliveries) and tried again after a pause that grows while the outage lasts.
   */
  private async holdForOutage(events: ValidEvent[], failure: unknown): Promise<void> {
    for (const { seq } of events) {
      const msg = this.inFlight.get(seq);
      if (!msg) continue;
      this.waiting.set(seq, msg);
      this.inFlight.delete(seq);
    }
    if (this.outage) metrics.storeRetries.inc();
    else {
      this.outage = { since: Date.now(), retries: 0 };
      metrics.storeOutages.inc();
      this.log.error({ err: failure }, "the read model is unavailable; holding events until it is back");
    }
    const delay = Math.min(OUTAGE_FIRST_RETRY_MS * 2 ** this.outage.retries++, OUTAGE_MAX_RETRY_MS);
    await sleep(delay, undefined, { signal: this.stopSignal.signal }).catch(() => undefined);
  }

  private endOutage(): void {
    if (!this.outage) return;
    this.log.info({ downForMs: Date.now() - this.outage.since }, "the read model is available again");
    this.outage = undefined;
  }

  /** Acks, or naks with the consumer's backoff for that delivery, the newest copy of `seq`. */
  private settle(seq: number, outcome: "ack" | "retry"): void {
    const msg = this.inFlight.get(seq);
    this.inFlight.delete(seq);
    if (!msg) return;
    if (outcome === "ack") {
      msg.ack();
      metrics.eventAgeSeconds.observe(Math.max(0, Date.now() - msg.info.timestampNanos / 1e6) / 1000);
      return;
    }
    const { backoffMs } = this.policy;
    msg.nak(backoffMs[Math.min(msg.info.deliveryCount, backoffMs.length) - 1]);
  }

  /**
   * Dead-letters an event and acknowledges it. If even that fails (NATS trouble), it is retried
   * like a refused event; past its last delivery, JetStream's advisory brings it back here.
   */
  private async giveUp(seq: number, kind: DeadLetterKind, reason: string): Promise<void> {
    const msg = this.inFlight.get(seq)!;
    const letter = { subject: msg.subject, seq, data: msg.data, headers: msg.headers, kind, reason };
    this.settle(seq, (await this.deadLetter(letter)) ? "ack" : "retry");
  }

  /**
   * JetStream stopped delivering an event: no delivery was acknowledged (the projector crashed or
   * was stopped each time, or could not even dead-letter it). It is tried once more from the
   * stream's copy, and dead-lettered, with the reason, only if that fails too.
   */
  private async onMaxDeliveries(advisory: Msg): Promise<void> {
    try {
      const { stream_seq: seq, deliveries } = maxDeliveriesAdvisory.parse(advisory.json());
      this.jsm ??= await this.nc.jetstreamManager({ timeout: PROBE_TIMEOUT_MS });
      const stored = await this.jsm.streams.getMessage(this.config.EVENTS_STREAM, { seq });
      const parsed = parseEvent(stored.subject, stored.data, this.config.MAX_EVENT_BYTES);
      const failure = parsed.ok ? await this.apply([{ seq, event: parsed.event }]) : parsed.reason;
      if (failure === undefined) return;
      const why = typeof failure === "string" ? failure : (failure as Error).message;
      const reason = `not acknowledged after ${deliveries} deliveries; last attempt: ${why}`;
      const letter = { subject: stored.subject, seq, data: stored.data, headers: stored.header, reason };
      await this.deadLetter({ ...letter, kind: "max_deliveries" });
    } catch (error) {
      this.log.error({ err: error, advisory: advisory.string() }, "could not handle an event JetStream gave up on");
    }
  }

  /** Copies an event to the dead-letter stream; false when that failed. */
  private async deadLetter(letter: DeadLetter): Promise<boolean> {
    try {
      await deadLetter(
        this.nc.jetstream(),
        this.config.EVENTS_STREAM,
        letter,
        this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD,
      );
      metrics.deadLettered.inc({ reason: letter.kind });
      this.log.warn({ subject: letter.subject, seq: letter.seq, reason: letter.reason }, "event dead-lettered");
      return true;
    } catch (error) {
      this.log.error({ err: error, seq: letter.seq }, "could not dead-letter an event; it will be retried");
      // The dead-letter stream may have been deleted: declare it again for the retry.
      const { EVENTS_STREAM, DLQ_STREAM } = this.config;
      await ensureStreams(this.nc, { eventsStream: EVENTS_STREAM, dlqStream: DLQ_STREAM }).catch(() => undefined);
      return false;
    }
  }
}
