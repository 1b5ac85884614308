// The stored shape of the read model, shared by the projector (writes) and the query API (reads).
//
// An owner's dashboard is split into keyed parts, all under the owner's key:
//   [ownerId, clientId, ""]         a client part: the client itself
//   [ownerId, clientId, projectId]  a project part: the project and its licenses
// so one range read on [ownerId] gives the whole dashboard and one on [ownerId, clientId] one
// client. Registers, kept apart, say where a project's part is (its clientId) and which project a
// license is filed under, so that moves and early children are found with point reads.
import type { ClientState, LicenseState, ProjectState } from "./events.ts";

/** An entity's newest known state and its version; `state: null` is a versioned tombstone. */
export interface Entry<T> {
  v: number;
  state: T | null;
}

export interface ClientPart {
  kind: "client";
  client: Entry<ClientState>;
}

export interface ProjectPart {
  kind: "project";
  /** Absent while only licenses of the project have arrived. */
  project?: Entry<ProjectState>;
  licenses: Record<string, Entry<LicenseState>>;
}

export type Part = ClientPart | ProjectPart;

export interface ProjectRegister {
  kind: "project";
  clientId: string;
}

export interface LicenseRegister {
  kind: "license";
  projectId: string;
}

export type Register = ProjectRegister | LicenseRegister;

export type PartKey = { type: "part"; ownerId: string; clientId: string; projectId: string };
export type RegisterKey = { type: "register"; ownerId: string; entity: "project" | "license"; id: string };
export type RecordKey = PartKey | RegisterKey;
export type StoredRecord = Part | Register;

export const partKey = (ownerId: string, clientId: string, projectId = ""): PartKey => ({
  type: "part",
  ownerId,
  clientId,
  projectId,
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
    ? `p/${key.ownerId}/${key.clientId}/${key.projectId}`
    : `r/${key.ownerId}/${key.entity}/${key.id}`;
}

/** One part as read back for rendering. */
export interface StoredPart {
  clientId: string;
  projectId: string;
  part: Part;
}
