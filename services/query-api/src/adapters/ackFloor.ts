// When is a stream sequence visible? When the projector's durable consumer has acknowledged every
// event up to it: its acknowledgement floor (`ack_floor.stream_seq`). The projector acknowledges an
// event only once its commit is durable, so the read model holds everything up to the floor. The
// store's highest applied sequence would not do: another projector replica may commit a later
// event while an earlier one is still in flight.
//
// One poll per process serves every waiting request: JetStream is asked at most once per poll
// interval, and only while someone waits; a request for a sequence at or below the floor last read
// is answered at once. Waiters are bounded in number and in time, so a missing consumer or a NATS
// outage makes requests answer "not fresh" after the wait, never hang.
import { setTimeout as sleep } from "node:timers/promises";
import type { JetStreamManager, NatsConnection } from "nats";
import { isNotFound } from "@keybox/contract";
import type { Logger } from "@keybox/runtime";
import { TooManyWaitersError, type Freshness, type FreshnessSource } from "../domain/freshness.ts";

export interface AckFloorWatchSettings {
  nc: NatsConnection;
  stream: string;
  /** The projector's consumer, as of now (it changes when readers switch to a rebuilt generation). */
  durable: () => string;
  /** How long a request waits at most. */
  waitMs: number;
  /** How often the floor is read while anyone waits. */
  pollMs: number;
  /** How many requests may wait at once. */
  maxWaiters: number;
  log: Logger;
}

interface Waiter {
  seq: number;
  settle(fresh: boolean): void;
}

/** A JetStream API call that gets no answer (NATS down) is given up after this. */
const REQUEST_TIMEOUT_MS = 1000;
/** While the floor cannot be read, this often at most is it logged. */
const FAILURE_LOG_INTERVAL_MS = 10_000;

export class AckFloorWatch implements FreshnessSource {
  /** The floor last read; undefined before the first read and while the consumer does not exist. */
  private floor: number | undefined;
  private readonly waiters = new Set<Waiter>();
  private polling = false;
  private lastPollAt = Number.NEGATIVE_INFINITY;
  private lastFailureLoggedAt = Number.NEGATIVE_INFINITY;
  private jsm: Promise<JetStreamManager> | undefined;

  constructor(private readonly settings: AckFloorWatchSettings) {}

  waitFor(seq: number): Promise<Freshness> {
    if (this.floor !== undefined && seq <= this.floor) return Promise.resolve(this.answer(true));
    if (this.waiters.size >= this.settings.maxWaiters)
      return Promise.reject(new TooManyWaitersError(`${this.waiters.size} requests already wait for freshness`));
    return new Promise((resolve) => {
      const waiter: Waiter = {
        seq,
        settle: (fresh) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(this.answer(fresh));
        },
      };
      const timer = setTimeout(() => waiter.settle(false), this.settings.waitMs);
      this.waiters.add(waiter);
      void this.poll();
    });
  }

  private answer(fresh: boolean): Freshness {
    return { fresh, visibleSeq: this.floor };
  }

  /** The one polling loop: runs while anyone waits, reading the floor once per poll interval. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      while (this.waiters.size > 0) {
        const due = this.lastPollAt + this.settings.pollMs - Date.now();
        if (due > 0) {
          await sleep(due);
          continue; // the waiters may have given up meanwhile
        }
        this.lastPollAt = Date.now();
        await this.readFloor();
        const floor = this.floor;
        if (floor === undefined) continue;
        for (const waiter of this.waiters) if (waiter.seq <= floor) waiter.settle(true);
      }
    } finally {
      this.polling = false;
    }
  }

  private async readFloor(): Promise<void> {
    const { nc, stream, log } = this.settings;
    const durable = this.settings.durable();
    try {
      this.jsm ??= nc.jetstreamManager({ timeout: REQUEST_TIMEOUT_MS, checkAPI: false });
      const info = await (await this.jsm).consumers.info(stream, durable);
      this.floor = info.ack_floor.stream_seq;
    } catch (error) {
      // A missing consumer vouches for nothing; after a timeout the floor last read still holds.
      if (isNotFound(error)) this.floor = undefined;
      if (Date.now() - this.lastFailureLoggedAt >= FAILURE_LOG_INTERVAL_MS) {
        this.lastFailureLoggedAt = Date.now();
        log.warn(
          { err: error, stream, durable },
          "read your own writes: the projector's consumer cannot be read; minSeq requests wait and answer not fresh",
        );
      }
    }
  }
}
