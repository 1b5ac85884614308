// Copies an invalid event to the dead-letter stream with the reason, before it is acknowledged.
import { headers, type JetStreamClient, type JsMsg } from "nats";
import { deadLetterSubject } from "@keybox/shared";

/** NATS header values are one line; keep reasons readable and bounded. */
function headerValue(text: string): string {
  return text.replace(/[\r\n]+/g, " ").slice(0, 1024);
}

export async function deadLetter(js: JetStreamClient, eventsStream: string, msg: JsMsg, reason: string): Promise<void> {
  const h = headers();
  // Idempotent on redelivery: one dead letter per stream position.
  h.set("Nats-Msg-Id", `dlq:${eventsStream}:${msg.seq}`);
  h.set("KeyBox-DLQ-Reason", headerValue(reason));
  h.set("KeyBox-Original-Subject", headerValue(msg.subject));
  h.set("KeyBox-Original-Stream", eventsStream);
  h.set("KeyBox-Original-Seq", String(msg.seq));
  const originalId = msg.headers?.get("Nats-Msg-Id");
  if (originalId) h.set("KeyBox-Original-Msg-Id", headerValue(originalId));
  await js.publish(deadLetterSubject(msg.subject), msg.data, { headers: h });
}
