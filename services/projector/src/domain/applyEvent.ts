// The projection rules: (slice, event) → slice, with no I/O.
//
// - For each entity the highest `entityversion` wins; a delete is a versioned tombstone.
// - Licenses are filed in their project's part, projects in their client's key range; a child that
//   arrives before its parent is filed where its own data says and shown once the parent exists.
// - A project whose clientId changes moves with its licenses; a license whose projectId changes
//   moves. Registers remember where each was filed so the old copy is found with a point read.
import type { KeyboxEvent, LicenseState } from "@keybox/shared";
import {
  keyId,
  partKey,
  registerKey,
  type ClientPart,
  type Entry,
  type LicenseRegister,
  type PartKey,
  type ProjectPart,
  type ProjectRegister,
  type RecordKey,
  type StoredRecord,
} from "@keybox/shared";
import type { Slice, SliceEntry } from "./slice.ts";

/** Thrown by applyEvent when the slice lacks a record the event needs (see missingRecords). */
export class MissingRecordsError extends Error {
  constructor(readonly keys: RecordKey[]) {
    super(`slice lacks ${keys.length} record(s): ${keys.map(keyId).join(", ")}`);
  }
}

/** Applies one validated event. Unchanged slice (same object) when the event is stale or a duplicate. */
export function applyEvent(slice: Slice, event: KeyboxEvent): Slice {
  const run = project(slice, event);
  if (run.missing.length) throw new MissingRecordsError(run.missing);
  if (run.writes.size === 0) return slice;
  const next = new Map(slice);
  for (const [id, entry] of run.writes) next.set(id, entry);
  return next;
}

/**
 * The records `event` needs that `slice` does not hold. Load them and ask again: a register can
 * point at a part not yet loaded, so this converges in at most three rounds.
 */
export function missingRecords(slice: Slice, event: KeyboxEvent): RecordKey[] {
  return project(slice, event).missing;
}

/** Reads through pending writes to the slice; records (but tolerates) what is missing. */
class Workspace {
  readonly writes = new Map<string, SliceEntry>();
  readonly missing: RecordKey[] = [];
  constructor(private readonly slice: Slice) {}

  get<T extends StoredRecord>(key: RecordKey): T | null {
    const id = keyId(key);
    const entry = this.writes.get(id) ?? this.slice.get(id);
    if (!entry) {
      if (!this.missing.some((k) => keyId(k) === id)) this.missing.push(key);
      return null;
    }
    return entry.value as T | null;
  }

  set(key: RecordKey, value: StoredRecord | null): void {
    this.writes.set(keyId(key), { key, value });
  }
}

function project(slice: Slice, event: KeyboxEvent): Workspace {
  const ws = new Workspace(slice);
  switch (event.entity) {
    case "client":
      applyClient(ws, event.ownerId, event.entityId, entry(event));
      break;
    case "project":
      applyProject(ws, event.ownerId, event.entityId, event.data.clientId, entry(event));
      break;
    case "license":
      applyLicense(ws, event.ownerId, event.entityId, event.data.projectId, event.data.clientId, entry(event));
      break;
  }
  return ws;
}

function entry<T>(event: { version: number; deleted: boolean; data: unknown }): Entry<T> {
  return { v: event.version, state: event.deleted ? null : (event.data as T) };
}

const isNewer = (incoming: Entry<unknown>, current: Entry<unknown> | undefined) =>
  current === undefined || incoming.v > current.v;

function applyClient(ws: Workspace, ownerId: string, clientId: string, incoming: ClientPart["client"]): void {
  const key = partKey(ownerId, clientId);
  const current = ws.get<ClientPart>(key);
  if (!isNewer(incoming, current?.client)) return;
  ws.set(key, { kind: "client", client: incoming });
}

function applyProject(
  ws: Workspace,
  ownerId: string,
  projectId: string,
  clientId: string,
  incoming: NonNullable<ProjectPart["project"]>,
): void {
  const regKey = registerKey(ownerId, "project", projectId);
  const register = ws.get<ProjectRegister>(regKey);
  const fromKey = partKey(ownerId, register?.clientId ?? clientId, projectId);
  const toKey = partKey(ownerId, clientId, projectId);
  const current = ws.get<ProjectPart>(fromKey);
  if (!isNewer(incoming, current?.project)) return;

  const moved = fromKey.clientId !== toKey.clientId;
  // Normally nothing is filed at the destination yet; merging keeps licenses safe if something is.
  const atDestination = moved ? ws.get<ProjectPart>(toKey) : null;
  if (moved) ws.set(fromKey, null);
  const licenses = { ...atDestination?.licenses, ...current?.licenses };
  ws.set(toKey, { kind: "project", project: incoming, licenses });
  if (!register || moved) ws.set(regKey, { kind: "project", clientId });
}

function applyLicense(
  ws: Workspace,
  ownerId: string,
  licenseId: string,
  projectId: string,
  clientIdHint: string,
  incoming: Entry<LicenseState>,
): void {
  const regKey = registerKey(ownerId, "license", licenseId);
  const register = ws.get<LicenseRegister>(regKey);
  const fromKey = projectPartKey(ws, ownerId, register?.projectId ?? projectId, clientIdHint);
  const fromPart = ws.get<ProjectPart>(fromKey);
  if (!isNewer(incoming, fromPart?.licenses[licenseId])) return;

  const toKey = projectPartKey(ws, ownerId, projectId, clientIdHint);
  if (keyId(fromKey) !== keyId(toKey) && fromPart) {
    const { [licenseId]: _left, ...licenses } = fromPart.licenses;
    const emptyOrphan = !fromPart.project && Object.keys(licenses).length === 0;
    ws.set(fromKey, emptyOrphan ? null : { ...fromPart, licenses });
  }
  const toPart = ws.get<ProjectPart>(toKey) ?? { kind: "project", licenses: {} };
  ws.set(toKey, { ...toPart, licenses: { ...toPart.licenses, [licenseId]: incoming } });
  if (register?.projectId !== projectId) ws.set(regKey, { kind: "license", projectId });
}

/**
 * Where a project's part is: under the client its register names, or, for a project not seen yet,
 * under the client the license names, registered there so the project finds it when it arrives.
 */
function projectPartKey(ws: Workspace, ownerId: string, projectId: string, clientIdHint: string): PartKey {
  const regKey = registerKey(ownerId, "project", projectId);
  const register = ws.get<ProjectRegister>(regKey);
  if (register) return partKey(ownerId, register.clientId, projectId);
  ws.set(regKey, { kind: "project", clientId: clientIdHint });
  return partKey(ownerId, clientIdHint, projectId);
}
