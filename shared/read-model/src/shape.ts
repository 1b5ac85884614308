// The stored shape of the read model, shared by the projector (writes) and the query API (reads).
//
// An owner's dashboard is split into keyed parts, all under the owner's key:
//   [ownerId, clientId, "", 0]          a client part: the client itself
//   [ownerId, clientId, projectId, 0]   a project head: the project and how many license chunks it has
//   [ownerId, clientId, projectId, n]   license chunk n ≥ 1 of that project
// so one range read on [ownerId] gives the whole dashboard and one on [ownerId, clientId] one
// client. Chunks keep every part small whatever the tenant's size, so applying an event rewrites a
// bounded number of bytes. Registers, kept apart, say where a project is filed (its clientId) and
// where a license is (project and chunk), so moves and early children are found with point reads.
import type { ClientState, ProjectState } from "@keybox/contract";
import type { RenderedLicense } from "./licenseView.ts";

/** A license chunk takes new licenses until it holds this many bytes (of its entries as JSON). */
export const LICENSE_CHUNK_TARGET_BYTES = 8 * 1024;

/**
 * No stored part exceeds this: a chunk is at most its target plus one license, and a license is
 * smaller than the largest event accepted (MAX_EVENT_BYTES: 256 KiB by default, 512 KiB at most).
 */
export const PART_MAX_BYTES = 1024 * 1024;

/** Where a client, project or license goes in the response: its time, then its id. */
export type OrderKey = readonly [time: string, id: string];

/** Orders by time (canonical ISO strings, so string order is time order), then by id. */
export function compareOrder(a: OrderKey, b: OrderKey): number {
  return compareTimeAndId(a[0], a[1], b[0], b[1]);
}

/** compareOrder of the keys [timeA, idA] and [timeB, idB], for callers that hold them apart. */
export function compareTimeAndId(timeA: string, idA: string, timeB: string, idB: string): number {
  if (timeA !== timeB) return timeA < timeB ? -1 : 1;
  return idA < idB ? -1 : idA > idB ? 1 : 0;
}

/** An entity's newest known state and its version; `state: null` is a versioned tombstone. */
export interface Entry<T> {
  v: number;
  state: T | null;
}

export interface ClientPart {
  kind: "client";
  client: Entry<ClientState>;
}

export interface ProjectHead {
  kind: "project";
  /** Absent while only licenses of the project have arrived. */
  project?: Entry<ProjectState>;
  /** License chunks 1..chunks may exist under the same client and project. */
  chunks: number;
  /**
   * Which chunk holds which licenses, by order key: each chunk takes the keys from its `from` up
   * to the next range's, the first from the start. So chunks never overlap, and a read joins
   * their fragments in chunk order without merging.
   */
  ranges: ChunkRange[];
}

/** A chunk's range of license order keys (see ProjectHead.ranges); ranges are sorted by `from`. */
export interface ChunkRange {
  from: OrderKey;
  chunk: number;
}

/** A license in its chunk: its id with its newest version and rendered state (null: a tombstone). */
export interface LicenseEntry extends Entry<RenderedLicense> {
  id: string;
}

export interface LicenseChunk {
  kind: "licenses";
  /**
   * Licenses are kept rendered: the projection needs only their versions, a read only the JSON.
   * An array of entries that carry their ids, never an object keyed by id: "__proto__" is a legal
   * id, and decoders turn such a key into something else (msgpack renames it "__proto_").
   */
  licenses: LicenseEntry[];
  /** The size of `licenses` as JSON, kept up to date so filling a chunk needs no re-encoding. */
  bytes: number;
}

export type Part = ClientPart | ProjectHead | LicenseChunk;

export interface ProjectRegister {
  kind: "project";
  clientId: string;
}

export interface LicenseRegister {
  kind: "license";
  projectId: string;
  chunk: number;
}

export type Register = ProjectRegister | LicenseRegister;

export type PartKey = { type: "part"; ownerId: string; clientId: string; projectId: string; chunk: number };
export type RegisterKey = { type: "register"; ownerId: string; entity: "project" | "license"; id: string };
export type RecordKey = PartKey | RegisterKey;
export type StoredRecord = Part | Register;

export const partKey = (ownerId: string, clientId: string, projectId = "", chunk = 0): PartKey => ({
  type: "part",
  ownerId,
  clientId,
  projectId,
  chunk,
});

export const registerKey = (ownerId: string, entity: "project" | "license", id: string): RegisterKey => ({
  type: "register",
  ownerId,
  entity,
  id,
});

/** A unique string for a key, for maps. Ids never contain "/", so this cannot collide. */
export function keyId(key: RecordKey): string {
  return key.type === "part"
    ? `p/${key.ownerId}/${key.clientId}/${key.projectId}/${key.chunk}`
    : `r/${key.ownerId}/${key.entity}/${key.id}`;
}

/** The key a keyId was made of. */
export function recordKeyOf(id: string): RecordKey {
  const [type, ownerId, a, b, chunk] = id.split("/") as [string, string, string, string, string?];
  return type === "p" ? partKey(ownerId, a, b, Number(chunk)) : registerKey(ownerId, a as RegisterKey["entity"], b);
}

/** A store's format: the one it writes, and the earlier ones it reads as they are and upgrades in place. */
export interface ReadModelFormat {
  current: number;
  upgradable: readonly number[];
}

/**
 * The stored shape's version, per store. A store written in another shape is refused at start
 * rather than served wrong; it is rebuilt from the event stream (README, "Rebuild"). Format 5 added
 * client versions (DashboardStore.version), which a store written before has not kept. Format 6 is
 * format 5 without LMDB's `revisions` database, which a build of format 5 relies on: so such a build
 * refuses an LMDB store of format 6 instead of conflicting on it. Format 7 keeps LMDB's license
 * chunks in their fragments only, where a build of format 6 would not find them. MongoDB's documents
 * have not changed since format 5, so it stays at 6 (a build of format 6 still opens it).
 */
export const READ_MODEL_FORMATS = {
  /** Upgrading drops format 5's `revisions` database; format 6's chunks move as they are written again. */
  lmdb: { current: 7, upgradable: [5, 6] },
  /** Upgrading changes only the recorded number. */
  mongodb: { current: 6, upgradable: [5] },
} as const satisfies Record<string, ReadModelFormat>;

/**
 * Checks the format a store records (`hasData` without a record means the first format): "new"
 * for a store to record the current format in, "upgrade" for one of an upgradable format,
 * "current" for one of the current format. Throws on any other, older or newer.
 */
export function checkReadModelFormat(
  format: ReadModelFormat,
  recorded: number | undefined,
  hasData: boolean,
  where: string,
): "new" | "upgrade" | "current" {
  const found = recorded ?? (hasData ? 1 : undefined);
  if (found === undefined) return "new";
  if (format.upgradable.includes(found)) return "upgrade";
  if (found !== format.current) {
    throw new Error(
      `the read model in ${where} has format ${found} and this version needs format ${format.current}: ` +
        `delete it and the projector's durable consumer to rebuild it from the event stream (README, "Rebuild")`,
    );
  }
  return "current";
}
