// Live streams of dashboard changes (GET /dashboard/events, Server-Sent Events), fed by the
// projector's change notices on core NATS.
//
// Each process subscribes to `keybox.dashboard.changed.<ownerId>` for the owners it has streams of:
// on the first stream of an owner, unsubscribing after the last closes. A wildcard subscription
// would make every replica receive and parse every owner's notices, so each replica's work would
// grow with the whole write rate however few streams it serves; per owner, the server routes to a
// replica only what its streams need, and a subscription costs little on either side.
//
// Streams are written straight to the Node response (no WHATWG stream per connection, as Hono's
// streamSSE would make), one process-wide timer sends the heartbeats, and a stream holds at most one
// pending change, so an idle stream costs its socket and a few small objects.
import type { ServerResponse } from "node:http";
import { Events, type NatsConnection, type Status, type Subscription } from "nats";
import { dashboardChangedSchema, dashboardChangedSubject } from "@keybox/contract";
import type { DashboardStore } from "@keybox/read-model";
import { withTimeout, type Logger } from "@keybox/runtime";
import {
  changedEvent,
  changeFor,
  missedChange,
  coalesce,
  EXPIRED_EVENT,
  HEARTBEAT,
  type LiveChange,
} from "../domain/liveChanges.ts";
import { queryApiMetrics as metrics } from "../metrics.ts";

export interface LiveLimits {
  heartbeatMs: number;
  perOwner: number;
  perProcess: number;
}

export interface LiveStreamRequest {
  ownerId: string;
  clientId: string | undefined;
  /** The token's `exp`: the stream ends there. */
  expiresAtMs: number;
  /** The version the client last heard of (Last-Event-ID), if it says. */
  lastEventId: number | undefined;
}

/** A stream a limit (or shutdown) refuses: the answer to send instead, and the limit if one. */
export type LiveRefusal = {
  streaming: false;
  status: 429 | 503;
  message: string;
  retryAfterSeconds: number;
  limit?: "owner" | "process";
};

/** How open() went: the stream took the response over, or it was refused (nothing written). */
export type LiveOpening = { streaming: true } | LiveRefusal;

/** The headers a live stream is sent with. */
export const LIVE_STREAM_HEADERS = {
  "Content-Type": "text/event-stream",
  "Cache-Control": "no-cache",
  // nginx (and others that honour it) would otherwise buffer the stream.
  "X-Accel-Buffering": "no",
};

/** How long a new stream waits for NATS to confirm its subscription; past it the reconnect re-check covers it. */
const SUBSCRIBE_CONFIRM_MS = 2000;
/** How often the generation readers use is checked (one read of the control record, or of memory). */
const GENERATION_CHECK_MS = 1000;
/** setTimeout's longest delay (about 24.8 days); a later expiry is re-armed on the way. */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface OwnerNotices {
  subscription: Subscription;
  /** Resolves once the server has the subscription: notices published after it reach us. */
  confirmed: Promise<void>;
  streams: Set<LiveStream>;
}

class LiveStream {
  /** Not yet sent: a slow client's changes coalesce here, never more than one. */
  pending: LiveChange | undefined;
  /**
   * The version last told to the client (queued or sent), or the one it started from: the owner's,
   * or for a stream filtered to a client, that client's, since it hears of that client's changes
   * only. A re-check compares it with the same kind of version.
   */
  seen = 0;
  /** Headers sent; before that, changes only queue. */
  started = false;
  waitingForDrain = false;
  closed = false;
  expiryTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly res: ServerResponse,
    readonly owner: OwnerNotices,
    readonly clientId: string | undefined,
  ) {}

  offer(change: LiveChange): void {
    this.pending = coalesce(this.pending, change);
    this.seen = this.pending.version;
    if (this.started && !this.waitingForDrain) this.flush();
  }

  /** Writes the pending change, then waits for 'drain' if the socket's buffer is full. */
  readonly flush = (): void => {
    this.waitingForDrain = false;
    if (!this.pending || this.closed) return;
    const change = this.pending;
    this.pending = undefined;
    if (!this.res.write(changedEvent(change))) this.awaitDrain();
  };

  heartbeat(): void {
    if (this.started && !this.waitingForDrain && !this.res.write(HEARTBEAT)) this.awaitDrain();
  }

  private awaitDrain(): void {
    this.waitingForDrain = true;
    this.res.once("drain", this.flush);
  }
}

const SHUTTING_DOWN: LiveRefusal = {
  streaming: false,
  status: 503,
  message: "The server is shutting down; reconnect",
  retryAfterSeconds: 1,
};

/**
 * The live streams of one process.
 *
 * @example
 * const live = new LiveUpdates({ nc, store, log, limits: { heartbeatMs: 15_000, perOwner: 100, perProcess: 10_000 } });
 * const opening = await live.open({ ownerId, clientId, expiresAtMs, lastEventId }, res);
 * if (!opening.streaming) answer(opening.status, opening.message); // else the stream owns `res`
 */
export class LiveUpdates {
  private readonly owners = new Map<string, OwnerNotices>();
  private streamCount = 0;
  /** Set by close(): no stream opens after it, so shutdown is not held up by a late one. */
  private closing = false;
  private readonly heartbeats: NodeJS.Timeout;
  private generationWatch: NodeJS.Timeout | undefined;
  private readonly statuses: AsyncIterable<Status> & { stop?: () => void };
  private readonly now: () => number;

  constructor(
    private readonly deps: {
      nc: NatsConnection;
      store: DashboardStore;
      log: Logger;
      limits: LiveLimits;
      now?: () => number;
    },
  ) {
    this.now = deps.now ?? Date.now;
    this.heartbeats = setInterval(() => {
      for (const owner of this.owners.values()) for (const stream of owner.streams) stream.heartbeat();
    }, deps.limits.heartbeatMs);
    this.heartbeats.unref();
    this.statuses = deps.nc.status();
    void this.recheckOnReconnect();
    this.watchGeneration();
  }

  /** Why a new stream of `ownerId` would be refused now (a limit reached, or shutting down); undefined when it would open. */
  refusal(ownerId: string): LiveRefusal | undefined {
    const { limits } = this.deps;
    if (this.closing) return SHUTTING_DOWN;
    if ((this.owners.get(ownerId)?.streams.size ?? 0) >= limits.perOwner) {
      const message = `Too many live streams for this owner (at most ${limits.perOwner})`;
      return { streaming: false, status: 429, message, retryAfterSeconds: 30, limit: "owner" };
    }
    if (this.streamCount >= limits.perProcess) {
      const message = "Too many live streams on this server";
      return { streaming: false, status: 503, message, retryAfterSeconds: 5, limit: "process" };
    }
    return undefined;
  }

  /**
   * Opens a stream on `res`: once the owner's notices are subscribed and the stream's version (the
   * owner's, or its client's) is read, sends the headers and, when the client's Last-Event-ID is
   * another version, a change at once.
   */
  async open(request: LiveStreamRequest, res: ServerResponse): Promise<LiveOpening> {
    // The client may have left while the request was authorized: its 'close' is not emitted again.
    if (res.closed || res.destroyed) return { streaming: true };
    const refusal = this.refusal(request.ownerId);
    if (refusal) {
      if (refusal.limit) metrics.liveRefused.inc({ limit: refusal.limit });
      return refusal;
    }
    // Counted before anything is awaited, so concurrent opens cannot pass the limits.
    const owner = this.owners.get(request.ownerId) ?? this.subscribe(request.ownerId);
    const stream = new LiveStream(res, owner, request.clientId);
    owner.streams.add(stream);
    this.streamCount++;
    metrics.liveStreams.inc();
    res.once("close", () => this.release(request.ownerId, stream));
    try {
      await withTimeout(owner.confirmed, SUBSCRIBE_CONFIRM_MS).catch(() => undefined);
      const stored = await this.deps.store.version(request.ownerId, request.clientId);
      // The client starts from its Last-Event-ID, else from the dashboard it fetches once the stream is open.
      const from = request.lastEventId ?? stored;
      // A notice that arrived meanwhile is queued: what it tells counts as told.
      stream.seen = Math.max(stream.pending?.version ?? 0, from);
      const missed = missedChange(request.clientId, stored, from);
      if (missed) stream.offer(missed);
    } catch (error) {
      this.release(request.ownerId, stream);
      throw error;
    }
    if (stream.closed) return { streaming: true }; // the client left meanwhile; nothing to answer
    if (this.closing) {
      this.release(request.ownerId, stream);
      return SHUTTING_DOWN;
    }
    res.writeHead(200, LIVE_STREAM_HEADERS);
    res.flushHeaders();
    stream.started = true;
    stream.flush();
    this.expireAt(request.ownerId, stream, request.expiresAtMs);
    return { streaming: true };
  }

  /** Ends every stream (their clients reconnect elsewhere) and stops listening; for shutdown. */
  close(): void {
    this.closing = true;
    clearInterval(this.heartbeats);
    clearInterval(this.generationWatch);
    this.statuses.stop?.();
    for (const owner of [...this.owners.values()])
      for (const stream of [...owner.streams]) {
        // A client that does not read would hold an ended response open: cut it.
        if (stream.waitingForDrain || !stream.started) stream.res.destroy();
        else stream.res.end();
      }
  }

  private subscribe(ownerId: string): OwnerNotices {
    const owner: OwnerNotices = {
      subscription: this.deps.nc.subscribe(dashboardChangedSubject(ownerId), {
        callback: (error, msg) => {
          if (error) return this.deps.log.warn({ err: error, ownerId }, "change notices: subscription error");
          this.deliver(ownerId, owner, msg.string());
        },
      }),
      confirmed: this.deps.nc.flush(),
      streams: new Set(),
    };
    this.owners.set(ownerId, owner);
    metrics.liveOwners.inc();
    return owner;
  }

  private deliver(ownerId: string, owner: OwnerNotices, text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const notice = dashboardChangedSchema.safeParse(parsed);
    if (!notice.success || notice.data.ownerId !== ownerId) {
      metrics.liveInvalidNotices.inc();
      this.deps.log.debug({ ownerId }, "change notices: ignored one that does not match the contract");
      return;
    }
    for (const stream of owner.streams) {
      const change = changeFor(notice.data, stream.clientId, stream.seen);
      if (change) stream.offer(change);
    }
  }

  /** Ends the stream with `event: expired` when its token expires. */
  private expireAt(ownerId: string, stream: LiveStream, expiresAtMs: number): void {
    const left = expiresAtMs - this.now();
    if (left > MAX_TIMER_MS) {
      stream.expiryTimer = setTimeout(() => this.expireAt(ownerId, stream, expiresAtMs), MAX_TIMER_MS);
    } else {
      stream.expiryTimer = setTimeout(
        () => {
          stream.res.end(EXPIRED_EVENT);
          this.release(ownerId, stream);
        },
        Math.max(0, left),
      );
    }
    stream.expiryTimer.unref();
  }

  /** Frees all a stream held; the owner's subscription goes with its last stream. Idempotent. */
  private release(ownerId: string, stream: LiveStream): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.pending = undefined;
    clearTimeout(stream.expiryTimer);
    stream.res.off("drain", stream.flush);
    const owner = stream.owner;
    owner.streams.delete(stream);
    this.streamCount--;
    metrics.liveStreams.dec();
    if (owner.streams.size === 0 && this.owners.get(ownerId) === owner) {
      owner.subscription.unsubscribe();
      this.owners.delete(ownerId);
      metrics.liveOwners.dec();
    }
  }

  /**
   * Notices published while this process was cut off from NATS are lost to it: after a reconnect
   * (once the server has the subscriptions again), every stream served is re-checked.
   */
  private async recheckOnReconnect(): Promise<void> {
    for await (const status of this.statuses) {
      if (status.type !== Events.Reconnect) continue;
      await this.deps.nc.flush().catch(() => undefined);
      await this.recheck("after a NATS reconnect");
    }
  }

  /**
   * Readers switched to a rebuilt generation (README, "Rebuild"): its versions are all past the old
   * one's, and what a client shows may differ anywhere, so every owner served is re-checked.
   */
  private watchGeneration(): void {
    const { store } = this.deps;
    if (!store.generation) return;
    let seen = store.generation();
    this.generationWatch = setInterval(() => {
      const now = store.generation!();
      if (now === seen) return;
      seen = now;
      void this.recheck("after readers switched to a rebuilt read model", true);
    }, GENERATION_CHECK_MS);
    this.generationWatch.unref();
  }

  /**
   * Re-checks every stream served: the version it follows (its owner's, or its client's; one point
   * read per version, however many streams follow it) is compared with the one it last told, and
   * the stream is told of a change when they differ, or in any case after a switch (`switched`:
   * notices of the new generation may have come first).
   */
  private async recheck(why: string, switched = false): Promise<void> {
    let moved = 0;
    for (const [ownerId, owner] of [...this.owners]) {
      try {
        // Taken before any read: a notice arriving meanwhile names only its own clients, so a change
        // lost before it is still a change.
        const told = [...owner.streams].map((stream) => ({ stream, seen: switched ? -1 : stream.seen }));
        const versions = new Map<string | undefined, number>();
        let missedAny = false;
        for (const { stream, seen } of told) {
          let version = versions.get(stream.clientId);
          if (version === undefined) {
            version = await this.deps.store.version(ownerId, stream.clientId);
            versions.set(stream.clientId, version);
          }
          const missed = missedChange(stream.clientId, version, seen);
          if (!missed) continue;
          // The new generation's versions are past the old one's, so the change told moves the stream's
          // `seen` there; but for 0 (nothing of it in the new generation), which a change held back
          // from the old one would outbid: the change told covers that one too.
          if (switched && version === 0) stream.pending = undefined;
          stream.offer(missed);
          missedAny = true;
        }
        metrics.liveRechecks.inc({ moved: String(missedAny) });
        if (missedAny) moved++;
      } catch (error) {
        this.deps.log.warn({ err: error, ownerId }, `live streams: re-checking a version ${why} failed`);
      }
    }
    this.deps.log.info({ owners: this.owners.size, moved }, `live streams: re-checked versions ${why}`);
  }
}
