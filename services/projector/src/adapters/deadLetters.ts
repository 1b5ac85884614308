// The dead-letter stream: the projector copies there, with the reason, each event it cannot apply
// before acknowledging it; operators list those copies and replay them into the event stream once
// the cause is fixed (`npm run dlq`). The copy always fits the server's max payload, so
// dead-lettering never fails for the size of what the stream accepted.
import {
  ErrorCode,
  headers,
  NatsError,
  type JetStreamClient,
  type JetStreamManager,
  type MsgHdrs,
  type NatsConnection,
} from "nats";
import { deadLetterSubject, parseEventSubject } from "@keybox/contract";

/**
 * Why an event was dead-lettered: it breaks the contract; the read model kept refusing it; or
 * JetStream stopped delivering it because no delivery was ever acknowledged (crashes).
 */
export const DEAD_LETTER_KINDS = ["invalid", "store_refused", "max_deliveries"] as const;
export type DeadLetterKind = (typeof DEAD_LETTER_KINDS)[number];

/** What the projector gave up on: the stream's copy of an event and why. */
export interface DeadLetter {
  subject: string;
  seq: number;
  data: Uint8Array;
  headers?: MsgHdrs | undefined;
  kind: DeadLetterKind;
  reason: string;
}

/** The headers a dead letter carries, written by `deadLetter` and read by the operator's tools. */
const HEADER = {
  kind: "KeyBox-DLQ-Kind",
  reason: "KeyBox-DLQ-Reason",
  subject: "KeyBox-Original-Subject",
  stream: "KeyBox-Original-Stream",
  seq: "KeyBox-Original-Seq",
  msgId: "KeyBox-Original-Msg-Id",
  truncated: "KeyBox-DLQ-Truncated",
  size: "KeyBox-Original-Size",
} as const;

/** NATS header values are one line; keep them readable and bounded. */
const MAX_HEADER_VALUE = 512;
function headerValue(text: string): string {
  return text.replace(/[\r\n]+/g, " ").slice(0, MAX_HEADER_VALUE);
}

/** Room left for headers (at most nine, each under MAX_HEADER_VALUE) and protocol framing. */
const HEADER_ROOM_BYTES = 8 * 1024;

/**
 * Publishes the dead letter to `keybox.dlq.<ownerId>.<entity>.<action>` (or
 * `keybox.dlq.unroutable`). A body that would not fit in `maxPayload` with the headers keeps its
 * first bytes, marked `KeyBox-DLQ-Truncated: true` with `KeyBox-Original-Size`.
 */
export async function deadLetter(
  js: JetStreamClient,
  eventsStream: string,
  letter: DeadLetter,
  maxPayload: number,
): Promise<void> {
  const h = headers();
  // Idempotent on redelivery: one dead letter per stream position.
  h.set("Nats-Msg-Id", `dlq:${eventsStream}:${letter.seq}`);
  h.set(HEADER.kind, letter.kind);
  h.set(HEADER.reason, headerValue(letter.reason));
  h.set(HEADER.subject, headerValue(letter.subject));
  h.set(HEADER.stream, eventsStream);
  h.set(HEADER.seq, String(letter.seq));
  const originalId = letter.headers?.get("Nats-Msg-Id");
  if (originalId) h.set(HEADER.msgId, headerValue(originalId));
  const room = Math.max(0, maxPayload - HEADER_ROOM_BYTES);
  let data = letter.data;
  if (data.byteLength > room) {
    h.set(HEADER.truncated, "true");
    h.set(HEADER.size, String(data.byteLength));
    data = data.subarray(0, room);
  }
  await js.publish(deadLetterSubject(letter.subject), data, { headers: h });
}

/** A dead letter as stored in the dead-letter stream. */
export interface StoredDeadLetter {
  /** Its sequence in the dead-letter stream: what `show` and `replay` take. */
  seq: number;
  time: Date;
  /** Absent on letters written before kinds were recorded. */
  kind: DeadLetterKind | undefined;
  reason: string;
  /** Where the event was: its subject, stream and sequence there. */
  original: { subject: string; stream: string; seq: number };
  /** The event's size; larger than `data` when the letter is truncated. */
  size: number;
  truncated: boolean;
  data: Uint8Array;
}

export interface DeadLetterFilter {
  /** Only the letters of this owner (from the subject). */
  ownerId?: string;
  kind?: DeadLetterKind;
}

function readLetter(seq: number, time: Date, data: Uint8Array, h: MsgHdrs | undefined): StoredDeadLetter {
  const get = (name: string) => h?.get(name) ?? "";
  const kind = get(HEADER.kind);
  const truncated = get(HEADER.truncated) === "true";
  return {
    seq,
    time,
    kind: (DEAD_LETTER_KINDS as readonly string[]).includes(kind) ? (kind as DeadLetterKind) : undefined,
    reason: get(HEADER.reason),
    original: { subject: get(HEADER.subject), stream: get(HEADER.stream), seq: Number(get(HEADER.seq)) || 0 },
    size: truncated ? Number(get(HEADER.size)) || data.byteLength : data.byteLength,
    truncated,
    data,
  };
}

/** How long a read of the dead-letter stream waits for its next page before calling it the end. */
const PAGE_WAIT_MS = 1000;
const PAGE_SIZE = 256;

/**
 * Every dead letter matching `filter` that is in the stream when the read starts, oldest first,
 * read with an ephemeral ordered consumer (server-side filtered by owner), so listing never
 * disturbs the stream or the projector. Letters added meanwhile are left out: a replay of events
 * that fail again must not meet its own new letters and go on for ever.
 */
export async function* readDeadLetters(
  nc: NatsConnection,
  dlqStream: string,
  filter: DeadLetterFilter = {},
): AsyncGenerator<StoredDeadLetter> {
  const jsm = await nc.jetstreamManager();
  const { state } = await jsm.streams.info(dlqStream);
  if (state.messages === 0) return;
  const lastAtStart = state.last_seq;
  const consumer = await nc.jetstream().consumers.get(dlqStream, {
    ...(filter.ownerId !== undefined && { filterSubjects: `keybox.dlq.${filter.ownerId}.>` }),
  });
  try {
    for (;;) {
      // A page is read whole before any of it is handed out: an ordered consumer drops what its
      // expired fetch still held, so slow work between messages (a replay) would skip letters.
      const page: StoredDeadLetter[] = [];
      let received = 0;
      let end = false;
      for await (const msg of await consumer.fetch({ max_messages: PAGE_SIZE, expires: PAGE_WAIT_MS })) {
        received++;
        if (msg.seq > lastAtStart) {
          end = true;
          break;
        }
        const letter = readLetter(msg.seq, new Date(msg.info.timestampNanos / 1e6), msg.data, msg.headers);
        if (filter.kind === undefined || letter.kind === filter.kind) page.push(letter);
        if (msg.info.pending === 0 || msg.seq === lastAtStart) {
          end = true;
          break;
        }
      }
      yield* page;
      if (end || received === 0) return;
    }
  } finally {
    await consumer.delete().catch(() => undefined);
  }
}

/** One dead letter by its sequence in the dead-letter stream; undefined when there is none. */
export async function getDeadLetter(
  jsm: JetStreamManager,
  dlqStream: string,
  seq: number,
): Promise<StoredDeadLetter | undefined> {
  try {
    const stored = await jsm.streams.getMessage(dlqStream, { seq });
    return readLetter(stored.seq, stored.time, stored.data, stored.header);
  } catch (error) {
    // JetStream answers 404 for a sequence with no message (and for a missing stream: no letters either).
    if (error instanceof NatsError && error.code === ErrorCode.JetStream404NoMessages) return undefined;
    throw error;
  }
}

export type ReplayOutcome =
  | { seq: number; replayed: true; eventsSeq: number }
  | { seq: number; replayed: false; why: string };

/**
 * Publishes a dead letter's event again to its original subject in `eventsStream`, then removes
 * the letter. The republished copy's `Nats-Msg-Id` names the letter, not the event: the event's
 * own id may still be inside the stream's duplicate window and would be dropped. So a replay
 * interrupted between publish and removal and run again inside the window publishes nothing new,
 * and after it the projector ignores the copy (it applies versions, not deliveries). A truncated
 * letter or one whose subject is not an event subject is kept and reported, never published.
 */
export async function replayDeadLetter(
  nc: NatsConnection,
  streams: { eventsStream: string; dlqStream: string },
  letter: StoredDeadLetter,
): Promise<ReplayOutcome> {
  const { seq } = letter;
  if (letter.truncated)
    return { seq, replayed: false, why: `truncated: only ${letter.data.byteLength} of ${letter.size} bytes were kept` };
  if (!parseEventSubject(letter.original.subject))
    return { seq, replayed: false, why: `"${letter.original.subject}" is not an event subject` };
  const h = headers();
  h.set("Nats-Msg-Id", `replay:${streams.dlqStream}:${seq}`);
  const ack = await nc.jetstream().publish(letter.original.subject, letter.data, {
    headers: h,
    expect: { streamName: streams.eventsStream },
  });
  await (await nc.jetstreamManager()).streams.deleteMessage(streams.dlqStream, seq, false);
  return { seq, replayed: true, eventsSeq: ack.seq };
}
