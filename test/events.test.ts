// The event contract (DESIGN.md "Event contract, version 1") as parseEvent enforces it: what it
// accepts, how it normalises, and that every kind of invalid event is rejected with a reason that
// names the problem (the reason is what the dead letter carries).
import fc from "fast-check";
import { describe, it, expect } from "vitest";
import {
  buildEnvelope,
  eventSubject,
  parseEvent,
  type Action,
  type Entity,
  type Envelope,
  type ParseResult,
} from "@keybox/contract";
import { exampleEvents } from "../scripts/seedExample.ts";

const MAX_BYTES = 64 * 1024;
const OWNER = "60f7b3b3e6b3a72e8c8e4a19";

const encode = (value: unknown) => new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value));

/** The subject a publisher would use for `envelope`. */
function subjectOf(envelope: Envelope): string {
  const [, entity, action] = envelope.type.split(".") as [string, Entity, Action];
  return eventSubject(envelope.ownerid, entity, action);
}

function parse(envelope: unknown, subject = subjectOf(envelope as Envelope), maxBytes = MAX_BYTES): ParseResult {
  return parseEvent(subject, encode(envelope), maxBytes);
}

/** The event parseEvent makes of `envelope`; fails the test when it is rejected. */
function accepted(envelope: unknown, subject?: string) {
  const result = parse(envelope, subject);
  if (!result.ok) throw new Error(`expected the event to be accepted, got: ${result.reason}`);
  return result.event;
}

/** The reason parseEvent gives for rejecting; fails the test when it is accepted. */
function rejection(result: ParseResult): string {
  if (result.ok) throw new Error("expected the event to be rejected");
  return result.reason;
}

const client = (data: Record<string, unknown> = {}) =>
  buildEnvelope({
    entity: "client",
    action: "created",
    version: 1,
    data: {
      id: "client1",
      ownerId: OWNER,
      name: "Acme",
      email: "ops@acme.test",
      createdAt: "2024-01-01T00:00:00.000Z",
      ...data,
    } as never,
  });

const license = (data: Record<string, unknown> = {}, action: Action = "created") =>
  buildEnvelope({
    entity: "license",
    action,
    version: 2,
    data: {
      id: "license1",
      ownerId: OWNER,
      clientId: "client1",
      projectId: "project1",
      key: "KB-1",
      duration: 12,
      issuedAt: "2024-01-01T00:00:00.000Z",
      expiresAt: "2025-01-01T00:00:00.000Z",
      status: "PENDING",
      services: ["Hosting"],
      ...data,
    } as never,
  });

/** `envelope` with its fields replaced (undefined removes a field). */
function edit(envelope: Envelope, fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...envelope, ...fields };
  for (const [k, v] of Object.entries(fields)) if (v === undefined) delete out[k];
  return out;
}
const editData = (envelope: Envelope, fields: Record<string, unknown>) =>
  edit(envelope, { data: edit(envelope.data as Envelope, fields) });

describe("valid events", () => {
  it.each(exampleEvents().map((e) => [e.type, e.subject, e] as const))(
    "accepts the seed's %s %s",
    (_type, _id, envelope) => {
      const event = accepted(envelope);
      const [, entity, action] = envelope.type.split(".");
      expect(event).toMatchObject({
        eventId: envelope.id,
        ownerId: envelope.ownerid,
        entityId: envelope.subject,
        version: envelope.entityversion,
        entity,
        action,
        deleted: false,
      });
      expect(event.data).toEqual(envelope.data);
    },
  );

  it.each(["activated", "revoked", "reinstated", "expired", "renewed", "updated"] as const)(
    "accepts a license %s event",
    (action) => {
      expect(accepted(license({}, action))).toMatchObject({ entity: "license", action, deleted: false });
    },
  );

  it("accepts a delete carrying only the ids, as a tombstone", () => {
    const envelope = buildEnvelope({
      entity: "license",
      action: "deleted",
      version: 7,
      data: { id: "license1", ownerId: OWNER, clientId: "client1", projectId: "project1" },
    });
    expect(accepted(envelope)).toMatchObject({
      deleted: true,
      version: 7,
      data: { id: "license1", clientId: "client1", projectId: "project1" },
    });
  });

  it("accepts a payload of exactly maxBytes", () => {
    const payload = encode(client());
    expect(parseEvent(subjectOf(client()), payload, payload.byteLength).ok).toBe(true);
  });

  it("accepts ids of 64 characters from [A-Za-z0-9_-]", () => {
    const id = `${"aZ09_-".repeat(10)}abcd`;
    expect(id).toHaveLength(64);
    expect(accepted(client({ id })).entityId).toBe(id);
  });

  it("normalises times to toISOString form", () => {
    const event = accepted(
      license({
        issuedAt: "2024-01-01T02:00:00+02:00",
        expiresAt: "2025-01-01T00:00:00Z",
        createdAt: "2023-12-31T23:59:59.123456Z",
      }),
    );
    expect(event.data).toMatchObject({
      issuedAt: "2024-01-01T00:00:00.000Z",
      expiresAt: "2025-01-01T00:00:00.000Z",
      createdAt: "2023-12-31T23:59:59.123Z",
    });
    expect(accepted(client({ createdAt: "2024-03-01T12:00:00-05:30" })).data).toMatchObject({
      createdAt: "2024-03-01T17:30:00.000Z",
    });
  });

  it("keeps any time of the years 0000-9999 given in toISOString form as it is, at any offset as that form", () => {
    const times = fc.date({
      min: new Date("0000-01-01T00:00:00.000Z"),
      max: new Date("9999-12-31T23:59:59.999Z"),
      noInvalidDate: true,
    });
    fc.assert(
      fc.property(times, fc.integer({ min: -23 * 60, max: 23 * 60 }), (time, offsetMinutes) => {
        const iso = time.toISOString();
        // The same instant as local time at that offset, e.g. 2024-01-01T05:30:00.000+05:30.
        const local = new Date(time.getTime() + offsetMinutes * 60_000).toISOString().slice(0, 23);
        const sign = offsetMinutes < 0 ? "-" : "+";
        const hh = String(Math.floor(Math.abs(offsetMinutes) / 60)).padStart(2, "0");
        const mm = String(Math.abs(offsetMinutes) % 60).padStart(2, "0");
        expect(accepted(license({ issuedAt: iso })).data).toMatchObject({ issuedAt: iso });
        // Local times past 9999 or before 0000 have no such form: only UTC's years are bounded.
        if (/^\d{4}-/.test(local)) {
          const shifted = accepted(editData(license(), { issuedAt: `${local}${sign}${hh}:${mm}` }));
          expect(shifted.data).toMatchObject({ issuedAt: iso });
        }
      }),
    );
  });

  it("turns a null machineId or createdAt into undefined, and keeps a given machineId", () => {
    const nulls = accepted(license({ machineId: null, createdAt: null })).data;
    expect(nulls).toMatchObject({ id: "license1" });
    expect((nulls as { machineId?: string }).machineId).toBeUndefined();
    expect((nulls as { createdAt?: string }).createdAt).toBeUndefined();
    expect(accepted(license({ machineId: "hash" })).data).toMatchObject({ machineId: "hash" });
  });
});

describe("invalid events are rejected with a reason naming the problem", () => {
  const good = client();
  const subject = subjectOf(good);
  const cases: [string, () => ParseResult, RegExp][] = [
    ["not JSON", () => parseEvent(subject, encode("{not json"), MAX_BYTES), /bad JSON/],
    [
      "invalid UTF-8",
      () => parseEvent(subject, new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), MAX_BYTES),
      /bad JSON.*utf-8/i,
    ],
    ["a JSON value that is not an object", () => parse("[1,2]", subject), /envelope: \(root\)/],
    ["over maxBytes", () => parse(good, subject, 100), /too large: \d+ bytes, limit 100/],
    ["wrong specversion", () => parse(edit(good, { specversion: "0.3" })), /envelope: specversion/],
    ["a missing envelope field", () => parse(edit(good, { source: undefined })), /envelope: source/],
    ["a missing entityversion", () => parse(edit(good, { entityversion: undefined })), /envelope: entityversion/],
    ["a missing data field", () => parse(editData(good, { email: undefined })), /data: email/],
    ["a missing license field", () => parse(editData(license(), { projectId: undefined })), /data: projectId/],
    ["data that is not an object", () => parse(edit(good, { data: "client1" })), /envelope: data/],
    [
      "bad characters in the subject id",
      () => parse(edit(good, { subject: "client 1!", data: { ...good.data, id: "client 1!" } })),
      /envelope: subject: must be 1-64 characters of \[A-Za-z0-9_-\]/,
    ],
    [
      "an id over 64 characters",
      () => parse(edit(good, { subject: "a".repeat(65), data: { ...good.data, id: "a".repeat(65) } })),
      /envelope: subject: must be 1-64/,
    ],
    [
      "bad characters in data.clientId",
      () => parse(editData(license(), { clientId: "../x" })),
      /data: clientId: must be 1-64/,
    ],
    [
      "bad characters in ownerid",
      () => parse(edit(good, { ownerid: "own er" }), "keybox.events.own er.client.created"),
      /envelope: ownerid: must be 1-64/,
    ],
    [
      "an unknown entity",
      () => parse(edit(good, { type: "keybox.user.created" }), `keybox.events.${OWNER}.user.created`),
      /unknown entity user/,
    ],
    [
      "an unknown action",
      () => parse(edit(good, { type: "keybox.client.archived" }), `keybox.events.${OWNER}.client.archived`),
      /unknown action archived for client/,
    ],
    [
      "an action the entity does not have",
      () => parse(edit(good, { type: "keybox.client.activated" }), `keybox.events.${OWNER}.client.activated`),
      /unknown action activated for client/,
    ],
    [
      "a type that is not keybox.<entity>.<action>",
      () => parse(edit(good, { type: "com.example.client.created" })),
      /envelope: type: must be keybox\.<entity>\.<action>/,
    ],
    [
      "a type whose entity differs from the subject's",
      () => parse(edit(good, { type: "keybox.project.created" }), subject),
      /type keybox\.project\.created does not match subject/,
    ],
    [
      "a type whose action differs from the subject's",
      () => parse(good, `keybox.events.${OWNER}.client.updated`),
      /type keybox\.client\.created does not match subject keybox\.events\.\w+\.client\.updated/,
    ],
    [
      "ownerid other than the subject's owner",
      () => parse(edit(good, { ownerid: "intruder" }), subject),
      /ownerid intruder does not match subject owner/,
    ],
    [
      "data.ownerId other than ownerid",
      () => parse(editData(good, { ownerId: "intruder" })),
      /data\.ownerId intruder does not match ownerid/,
    ],
    [
      "data.id other than the subject",
      () => parse(editData(good, { id: "client2" })),
      /data\.id client2 does not match subject client1/,
    ],
    ["a status outside the enum", () => parse(editData(license(), { status: "ACTIVATED" })), /data: status/],
    ["a non-integer entityversion", () => parse(edit(good, { entityversion: 1.5 })), /envelope: entityversion/],
    ["a negative entityversion", () => parse(edit(good, { entityversion: -1 })), /envelope: entityversion/],
    ["an entityversion given as a string", () => parse(edit(good, { entityversion: "1" })), /envelope: entityversion/],
    ["a negative duration", () => parse(editData(license(), { duration: -1 })), /data: duration/],
    ["a data time that is not ISO-8601", () => parse(editData(good, { createdAt: "yesterday" })), /data: createdAt/],
    [
      "a data time without a time zone",
      () => parse(editData(license(), { expiresAt: "2025-01-01T00:00:00" })),
      /data: expiresAt/,
    ],
    [
      "a date that does not exist",
      () => parse(editData(license(), { issuedAt: "2023-02-29T00:00:00Z" })),
      /data: issuedAt/,
    ],
    [
      "a time that falls after the year 9999 in UTC",
      () => parse(editData(license(), { expiresAt: "9999-12-31T23:00:00-02:00" })),
      /data: expiresAt: must fall within the years 0000-9999/,
    ],
    [
      "a time that falls before the year 0000 in UTC",
      () => parse(editData(license(), { issuedAt: "0000-01-01T00:30:00+01:00" })),
      /data: issuedAt: must fall within the years 0000-9999/,
    ],
    [
      "an envelope time that is not ISO-8601",
      () => parse(edit(good, { time: "Mon, 01 Jan 2024 00:00:00 GMT" })),
      /envelope: time/,
    ],
    [
      "a subject with too few tokens",
      () => parse(good, `keybox.events.${OWNER}.client`),
      /is not keybox\.events\.<ownerId>\.<entity>\.<action>/,
    ],
    [
      "a subject with too many tokens",
      () => parse(good, `keybox.events.${OWNER}.client.created.extra`),
      /is not keybox\.events\.<ownerId>\.<entity>\.<action>/,
    ],
    [
      "a subject outside keybox.events",
      () => parse(good, `keybox.dlq.${OWNER}.client.created`),
      /is not keybox\.events\.<ownerId>\.<entity>\.<action>/,
    ],
  ];

  it("accepts the event all the cases start from", () => {
    expect(parse(good).ok).toBe(true);
    expect(parse(license()).ok).toBe(true);
  });

  it.each(cases)("%s", (_name, run, reason) => {
    expect(rejection(run())).toMatch(reason);
  });
});

// JSON.parse keeps a "__proto__" key as an own property, but code that copies it by assignment
// sets the copy's prototype instead, and the fields inside would then read as direct fields.
describe('a "__proto__" key in data', () => {
  /** `envelope` whose data is `direct` plus `"__proto__": inner` (a computed key is an own property). */
  const withProto = (envelope: Envelope, direct: Record<string, unknown>, inner: Record<string, unknown>) =>
    JSON.stringify({ ...envelope, data: { ...direct, ["__proto__"]: inner } });

  it("does not make the fields inside it count as data's own: the event is rejected for lacking them", () => {
    const good = client();
    const { id, ownerId, ...rest } = good.data as Record<string, unknown>;
    expect(rejection(parseEvent(subjectOf(good), encode(withProto(good, { id, ownerId }, rest)), MAX_BYTES))).toMatch(
      /^data: name: .*; email: .*; createdAt: /,
    );
    expect(rejection(parseEvent(subjectOf(good), encode(withProto(good, {}, good.data)), MAX_BYTES))).toMatch(
      /^data: id: .*; ownerId: /,
    );
    const lic = license();
    const { status, ...others } = lic.data as Record<string, unknown>;
    expect(rejection(parseEvent(subjectOf(lic), encode(withProto(lic, others, { status })), MAX_BYTES))).toMatch(
      /^data: status: /,
    );
  });

  it("is dropped beside complete data, and changes neither the fields nor the prototype", () => {
    const good = license();
    const result = parseEvent(
      subjectOf(good),
      encode(withProto(good, good.data, { status: "ACTIVE", admin: true })),
      MAX_BYTES,
    );
    if (!result.ok) throw new Error(result.reason);
    expect(result.event.data).toEqual(accepted(good).data);
    expect(Object.getPrototypeOf(result.event.data)).toBe(Object.prototype);
    expect(Object.hasOwn(result.event.data, "__proto__")).toBe(false);
  });
});
