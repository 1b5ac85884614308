// Copies an event the projector cannot apply to the dead-letter stream, with the reason, before
// it is acknowledged. The copy always fits the server's max payload, so dead-lettering never fails
// for the size of what the stream accepted.
import { headers, type JetStreamClient, type MsgHdrs } from "nats";
import { deadLetterSubject } from "@keybox/contract";

/** What the projector gave up on: the stream's copy of an event and why. */
export interface DeadLetter {
  subject: string;
  seq: number;
  data: Uint8Array;
  headers?: MsgHdrs | undefined;
  reason: string;
}

/** NATS header values are one line; keep them readable and bounded. */
const MAX_HEADER_VALUE = 512;
function headerValue(text: string): string {
  return text.replace(/[\r\n]+/g, " ").slice(0, MAX_HEADER_VALUE);
}

/** Room left for headers (at most seven, each under MAX_HEADER_VALUE) and protocol framing. */
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
  h.set("KeyBox-DLQ-Reason", headerValue(letter.reason));
  h.set("KeyBox-Original-Subject", headerValue(letter.subject));
  h.set("KeyBox-Original-Stream", eventsStream);
  h.set("KeyBox-Original-Seq", String(letter.seq));
  const originalId = letter.headers?.get("Nats-Msg-Id");
  if (originalId) h.set("KeyBox-Original-Msg-Id", headerValue(originalId));
  const room = Math.max(0, maxPayload - HEADER_ROOM_BYTES);
  let data = letter.data;
  if (data.byteLength > room) {
    h.set("KeyBox-DLQ-Truncated", "true");
    h.set("KeyBox-Original-Size", String(data.byteLength));
    data = data.subarray(0, room);
  }
  await js.publish(deadLetterSubject(letter.subject), data, { headers: h });
}
