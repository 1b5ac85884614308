// The projection rules run over a plain Map: how the domain tests see the read model without any
// store, so they exercise applyEvent itself.
import { Packr } from "msgpackr";
import {
  applyEvent,
  DEFAULT_PROJECTION,
  missingRecords,
  withRecords,
  type ProjectionOptions,
  type Slice,
} from "@keybox/projector";
import { renderDashboard, type DashboardBody, type RenderedDashboard } from "@keybox/query-api";
import { parseEvent, type Envelope, type KeyboxEvent } from "@keybox/contract";
import { decodeFragment, encodeFragment, type Part, type StoredFragment } from "@keybox/read-model";

/**
 * The Map holds what a store would give back: every record written is encoded and decoded as LMDB
 * does (msgpack, with shared record structures). So the rules are tested on what they really read,
 * and a stored shape a decoder changes (msgpack renames an object key "__proto__" to "__proto_")
 * fails the domain tests, not only the store's.
 */
const codec = new Packr({ structures: [] });
function stored(before: Slice, after: Slice): Slice {
  if (after === before) return before;
  const next = new Map(after);
  for (const [id, entry] of after) {
    if (before.get(id) !== entry) next.set(id, { key: entry.key, value: codec.unpack(codec.pack(entry.value)) });
  }
  return next;
}

/** Parses an envelope the way the projector does (its subject is derived from it). */
export function toEvent(envelope: Envelope): KeyboxEvent {
  const [, entity, action] = envelope.type.split(".");
  const subject = `keybox.events.${envelope.ownerid}.${entity}.${action}`;
  const parsed = parseEvent(subject, new TextEncoder().encode(JSON.stringify(envelope)), 1 << 20);
  if (!parsed.ok) throw new Error(`test event is invalid: ${parsed.reason}`);
  return parsed.event;
}

/** Applies events one by one to `slice`, loading absent records as absent. */
export function project(
  events: readonly KeyboxEvent[],
  slice: Slice = new Map(),
  options: ProjectionOptions = DEFAULT_PROJECTION,
): Slice {
  let current = slice;
  for (const event of events) {
    for (
      let missing = missingRecords(current, event, options);
      missing.length;
      missing = missingRecords(current, event, options)
    ) {
      current = withRecords(
        current,
        missing.map((key) => ({ key, value: null })),
      );
    }
    current = stored(current, applyEvent(current, event, options));
  }
  return current;
}

/** An owner's fragments (or one client's), as a store's range read gives them. */
export function ownerFragments(slice: Slice, ownerId: string, clientId?: string): StoredFragment[] {
  const fragments: StoredFragment[] = [];
  for (const { key, value } of slice.values()) {
    if (key.type !== "part" || key.ownerId !== ownerId || value === null) continue;
    if (clientId !== undefined && key.clientId !== clientId) continue;
    const bytes = encodeFragment(value as Part);
    if (bytes) fragments.push({ clientId: key.clientId, projectId: key.projectId, chunk: key.chunk, bytes });
  }
  return fragments;
}

function piecesOfWhole(this: { whole: Uint8Array }) {
  return [this.whole];
}
const nothing = () => {};
/** A rendered dashboard of `body` in one buffer (as the response cache keeps them), right until `validUntil`. */
export const wholeDashboard = (body: Uint8Array, validUntil?: string): RenderedDashboard => ({
  whole: body,
  streamed: false,
  pieces: piecesOfWhole,
  byteLength: body.byteLength,
  validUntil,
  recycle: nothing,
  release: nothing,
});

/** A rendered dashboard's body as text. */
export const dashboardText = (rendered: RenderedDashboard) =>
  Buffer.concat([...rendered.pieces()], rendered.byteLength).toString("utf8");

/** The dashboard body the API would send for these fragments, parsed. */
export function renderBody(fragments: readonly StoredFragment[], now: Date): DashboardBody {
  return JSON.parse(dashboardText(renderDashboard(fragments, now))) as DashboardBody;
}

/** The ids of the clients a store's read shows, sorted. */
export const clientIdsIn = (read: { fragments: readonly StoredFragment[] }) =>
  read.fragments
    .map((f) => decodeFragment(f.bytes))
    .flatMap((f) => (f.kind === "client" ? [f.order[1]] : []))
    .sort();

export function dashboardOf(events: readonly Envelope[], ownerId: string, now = new Date()): DashboardBody {
  return renderBody(ownerFragments(project(events.map(toEvent)), ownerId), now);
}
