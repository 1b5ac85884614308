// The event contract, version 1 (see README "Event contract"). Written once, as zod schemas;
// every type below is inferred from them.
import { z } from "zod";
import { parseEventSubject } from "./subjects.ts";

export const ENTITIES = ["client", "project", "license"] as const;
export const ACTIONS = [
  "created",
  "updated",
  "deleted",
  "activated",
  "revoked",
  "reinstated",
  "expired",
  "renewed",
] as const;
export type Entity = (typeof ENTITIES)[number];
export type Action = (typeof ACTIONS)[number];

/** Which actions each entity may carry: clients and projects have no license lifecycle. */
export const ACTIONS_BY_ENTITY: Record<Entity, readonly Action[]> = {
  client: ["created", "updated", "deleted"],
  project: ["created", "updated", "deleted"],
  license: ACTIONS,
};

export const idSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must be 1-64 characters of [A-Za-z0-9_-]");
// Times are normalised to UTC `toISOString()` form, as KeyBox's own JSON gives them, so that
// string order is time order everywhere downstream.
/**
 * That form itself: a valid time in it (the datetime check refuses dates that do not exist) is what
 * `toISOString()` gives back, so it is kept without a round trip through Date (1-2 µs a field).
 */
const ISO_STRING_FORM = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const timeSchema = z.iso
  .datetime({ offset: true })
  .transform((t) => (ISO_STRING_FORM.test(t) ? t : new Date(t).toISOString()))
  .refine((t) => /^\d{4}-/.test(t), "must fall within the years 0000-9999 in UTC");

export const clientStateSchema = z.object({
  id: idSchema,
  ownerId: idSchema,
  name: z.string(),
  email: z.string(),
  createdAt: timeSchema,
});

export const projectStateSchema = z.object({
  id: idSchema,
  ownerId: idSchema,
  clientId: idSchema,
  name: z.string(),
  createdAt: timeSchema,
});

export const LICENSE_STATUSES = ["PENDING", "ACTIVE", "EXPIRED", "REVOKED"] as const;
export const licenseStateSchema = z.object({
  id: idSchema,
  ownerId: idSchema,
  clientId: idSchema,
  projectId: idSchema,
  key: z.string(),
  duration: z.number().finite().nonnegative(),
  issuedAt: timeSchema,
  expiresAt: timeSchema,
  status: z.enum(LICENSE_STATUSES),
  services: z.array(z.string()),
  // The write side stores null for "not activated"; both mean absent.
  machineId: z
    .string()
    .nullish()
    .transform((v) => v ?? undefined),
  createdAt: timeSchema.nullish().transform((v) => v ?? undefined),
});

export const deletedClientSchema = z.object({ id: idSchema, ownerId: idSchema });
export const deletedProjectSchema = deletedClientSchema.extend({ clientId: idSchema });
export const deletedLicenseSchema = deletedProjectSchema.extend({ projectId: idSchema });

export type ClientState = z.infer<typeof clientStateSchema>;
export type ProjectState = z.infer<typeof projectStateSchema>;
export type LicenseState = z.infer<typeof licenseStateSchema>;
export type LicenseStatus = LicenseState["status"];
export type DeletedClient = z.infer<typeof deletedClientSchema>;
export type DeletedProject = z.infer<typeof deletedProjectSchema>;
export type DeletedLicense = z.infer<typeof deletedLicenseSchema>;

/** The CloudEvents 1.0 structured-mode envelope; `data` is checked per entity afterwards. */
export const envelopeSchema = z.object({
  specversion: z.literal("1.0"),
  id: z.string().min(1).max(256),
  source: z.string().min(1),
  type: z.string().regex(/^keybox\.[a-z]+\.[a-z]+$/, "must be keybox.<entity>.<action>"),
  time: z.iso.datetime({ offset: true }).optional(),
  subject: idSchema,
  ownerid: idSchema,
  entityversion: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  datacontenttype: z.literal("application/json").optional(),
  // Only checked to be an object here, not copied (as z.record would): its entity's schema parses it.
  data: z.custom<Record<string, unknown>>(
    (v) => typeof v === "object" && v !== null && !Array.isArray(v),
    "expected object",
  ),
});
export type Envelope = z.infer<typeof envelopeSchema>;

interface EventBase {
  /** CloudEvents id: also the `Nats-Msg-Id` used for de-duplication. */
  eventId: string;
  ownerId: string;
  entityId: string;
  version: number;
  action: Action;
}

/** A validated event, narrowed by entity and by whether it deletes. */
export type KeyboxEvent = EventBase &
  (
    | { entity: "client"; deleted: false; data: ClientState }
    | { entity: "client"; deleted: true; data: DeletedClient }
    | { entity: "project"; deleted: false; data: ProjectState }
    | { entity: "project"; deleted: true; data: DeletedProject }
    | { entity: "license"; deleted: false; data: LicenseState }
    | { entity: "license"; deleted: true; data: DeletedLicense }
  );

const stateSchemas = {
  client: { live: clientStateSchema, deleted: deletedClientSchema },
  project: { live: projectStateSchema, deleted: deletedProjectSchema },
  license: { live: licenseStateSchema, deleted: deletedLicenseSchema },
} as const;

export type ParseResult = { ok: true; event: KeyboxEvent } | { ok: false; reason: string };

function describe(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("; ");
}

/** Strict UTF-8 (bad bytes are an error, not U+FFFD); one decoder, as decode() without streaming keeps no state. */
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Validates one message against the contract: JSON, envelope, entity state, and agreement
 * between subject, envelope and data. Never throws; a failure says why, for the dead letter.
 */
export function parseEvent(subject: string, payload: Uint8Array, maxBytes: number): ParseResult {
  if (payload.byteLength > maxBytes) {
    return { ok: false, reason: `too large: ${payload.byteLength} bytes, limit ${maxBytes}` };
  }
  const route = parseEventSubject(subject);
  if (!route) return { ok: false, reason: `subject ${subject} is not keybox.events.<ownerId>.<entity>.<action>` };

  let json: unknown;
  try {
    json = JSON.parse(UTF8.decode(payload));
  } catch (error) {
    return { ok: false, reason: `bad JSON: ${(error as Error).message}` };
  }
  const envelope = envelopeSchema.safeParse(json);
  if (!envelope.success) return { ok: false, reason: `envelope: ${describe(envelope.error)}` };
  const { type, subject: entityId, ownerid, entityversion, data, id } = envelope.data;

  const [, entity, action] = type.split(".") as [string, Entity, Action];
  if (!ENTITIES.includes(entity)) return { ok: false, reason: `type ${type}: unknown entity ${entity}` };
  if (!ACTIONS_BY_ENTITY[entity].includes(action))
    return { ok: false, reason: `type ${type}: unknown action ${action} for ${entity}` };
  if (route.entity !== entity || route.action !== action) {
    return { ok: false, reason: `type ${type} does not match subject ${subject}` };
  }
  if (route.ownerId !== ownerid)
    return { ok: false, reason: `ownerid ${ownerid} does not match subject owner ${route.ownerId}` };

  const deleted = action === "deleted";
  const state = (deleted ? stateSchemas[entity].deleted : stateSchemas[entity].live).safeParse(data);
  if (!state.success) return { ok: false, reason: `data: ${describe(state.error)}` };
  if (state.data.ownerId !== ownerid)
    return { ok: false, reason: `data.ownerId ${state.data.ownerId} does not match ownerid ${ownerid}` };
  if (state.data.id !== entityId)
    return { ok: false, reason: `data.id ${state.data.id} does not match subject ${entityId}` };

  const event = {
    eventId: id,
    ownerId: ownerid,
    entityId,
    version: entityversion,
    action,
    entity,
    deleted,
    data: state.data,
  };
  return { ok: true, event: event as KeyboxEvent };
}

/** The state an event of `entity` carries: live state, or the deleted shape. */
export type EventData<E extends Entity> = E extends "client"
  ? ClientState | DeletedClient
  : E extends "project"
    ? ProjectState | DeletedProject
    : LicenseState | DeletedLicense;

/** Builds a contract-conformant envelope, for publishers (the seed, tests, the write side). */
export function buildEnvelope<E extends Entity>(input: {
  entity: E;
  action: Action;
  version: number;
  data: EventData<E>;
  id?: string;
  time?: string;
}): Envelope {
  return {
    specversion: "1.0",
    id: input.id ?? crypto.randomUUID(),
    source: "keybox",
    type: `keybox.${input.entity}.${input.action}`,
    time: input.time ?? new Date().toISOString(),
    subject: input.data.id,
    ownerid: input.data.ownerId,
    entityversion: input.version,
    datacontenttype: "application/json",
    data: { ...input.data },
  };
}
