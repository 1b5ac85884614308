// NATS subject names: the one place that knows their shape.
import type { Action, Entity } from "./events.ts";

export const EVENTS_SUBJECTS = "keybox.events.>";
export const DLQ_SUBJECTS = "keybox.dlq.>";
const CHANGED_PREFIX = "keybox.dashboard.changed";

export function eventSubject(ownerId: string, entity: Entity, action: Action): string {
  return `keybox.events.${ownerId}.${entity}.${action}`;
}

export interface EventSubjectParts {
  ownerId: string;
  entity: string;
  action: string;
}

/** Splits `keybox.events.<ownerId>.<entity>.<action>`; undefined when the shape is wrong. */
export function parseEventSubject(subject: string): EventSubjectParts | undefined {
  const tokens = subject.split(".");
  if (tokens.length !== 5 || tokens[0] !== "keybox" || tokens[1] !== "events") return undefined;
  const [, , ownerId, entity, action] = tokens as [string, string, string, string, string];
  return { ownerId, entity, action };
}

/** Dead letters keep the original subject's tail so they can be filtered by owner. */
export function deadLetterSubject(originalSubject: string): string {
  const parts = parseEventSubject(originalSubject);
  return parts ? `keybox.dlq.${parts.ownerId}.${parts.entity}.${parts.action}` : "keybox.dlq.unroutable";
}

export function dashboardChangedSubject(ownerId: string): string {
  return `${CHANGED_PREFIX}.${ownerId}`;
}
