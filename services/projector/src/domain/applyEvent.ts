// The projection rules: (slice, event) → slice, with no I/O.
//
// - For each entity the highest `entityversion` wins; a delete is a versioned tombstone.
// - A client is its own part. A project is a head part under its client's key plus license chunks
//   beside it; a license sits in the chunk of its project whose range of the order holds it, so a
//   read joins chunks without merging them. A child that arrives before its parent is filed where
//   its own data says and shown once the parent exists.
// - A project whose clientId changes moves, head and chunks; a license whose projectId or place in
//   the order changes moves to the chunk that holds it. Registers remember where each was filed, so
//   the old copy is found with a point read and nothing else of the tenant is read or written.
import type { KeyboxEvent, ProjectState } from "@keybox/contract";
import {
  keyId,
  LICENSE_CHUNK_TARGET_BYTES,
  compareOrder,
  compareTimeAndId,
  partKey,
  registerKey,
  renderLicense,
  type ChunkRange,
  type ClientPart,
  type Entry,
  type LicenseChunk,
  type LicenseEntry,
  type LicenseRegister,
  type OrderKey,
  type PartKey,
  type ProjectHead,
  type ProjectRegister,
  type RecordKey,
  type StoredRecord,
} from "@keybox/read-model";
import type { Slice, SliceEntry } from "./slice.ts";

/**
 * The version of these rules. Bump it in a release that changes what they make of events (or how
 * they store it): that release's projectors then rebuild the read model from the whole stream
 * beside the one in use and switch readers over once it has caught up (README, "Rebuild"). A read
 * model that records none was built by version 1.
 */
export const PROJECTION_VERSION = 1;

/** Thrown by applyEvent when the slice lacks a record the event needs (see missingRecords). */
export class MissingRecordsError extends Error {
  readonly keys: RecordKey[];
  constructor(keys: RecordKey[]) {
    super(`slice lacks ${keys.length} record(s): ${keys.map(keyId).join(", ")}`);
    this.keys = keys;
  }
}

export interface ProjectionOptions {
  /** A license chunk takes new licenses until it holds this many bytes. */
  chunkTargetBytes: number;
  /**
   * Whether a license event asks, in its first round, for records it will probably need (its
   * register, its project's first chunk) beside those it needs first: fewer rounds where each is a
   * round trip to the store (MongoDB), wasted reads where reads are local (LMDB's write
   * transaction), where only what is certainly needed is read. Either way the result is the same.
   */
  readAhead: boolean;
}

export const DEFAULT_PROJECTION: ProjectionOptions = { chunkTargetBytes: LICENSE_CHUNK_TARGET_BYTES, readAhead: true };

export interface Projection {
  /** Records the event needs that the slice does not hold: load them and project again. */
  missing: RecordKey[];
  /** What the event changes; empty for a stale or duplicate event. */
  writes: SliceEntry[];
}

/**
 * The effect of one validated event on the slice. A register can point at a part not yet loaded,
 * so `missing` is loaded and the event projected again until nothing is missing: each round asks
 * only for records not loaded yet (at most three rounds in the tests' random histories with
 * readAhead, moves included; more without it). A slice that reads what it lacks as it is asked
 * (LMDB's, in applyBatch) leaves nothing missing: one round.
 */
export function projectEvent(slice: Slice, event: KeyboxEvent, options = DEFAULT_PROJECTION): Projection {
  const ws = new Workspace(slice, options);
  const incoming = { v: event.version, state: event.deleted ? null : event.data };
  switch (event.entity) {
    case "client":
      applyClient(ws, event.ownerId, event.entityId, incoming as ClientPart["client"]);
      break;
    case "project":
      applyProject(ws, event.ownerId, event.entityId, event.data.clientId, incoming as Entry<ProjectState>);
      break;
    case "license":
      applyLicense(ws, event.ownerId, event.data.projectId, event.data.clientId, licenseEntry(event));
      break;
  }
  return { missing: [...ws.missing.values()], writes: [...ws.writes.values()] };
}

type LicenseEvent = Extract<KeyboxEvent, { entity: "license" }>;

/**
 * Each license event's entry, rendered once: where an event is projected again after each round of
 * loads (MongoDB's rounds, a conditional commit's retries), rendering its JSON was the costliest
 * step of a round. Entries are never changed.
 */
const licenseEntries = new WeakMap<LicenseEvent, LicenseEntry>();

function licenseEntry(event: LicenseEvent): LicenseEntry {
  let entry = licenseEntries.get(event);
  if (entry === undefined) {
    entry = { id: event.entityId, v: event.version, state: event.deleted ? null : renderLicense(event.data) };
    licenseEntries.set(event, entry);
  }
  return entry;
}

/** Applies one event. The same slice object comes back when the event is stale or a duplicate. */
export function applyEvent(slice: Slice, event: KeyboxEvent, options = DEFAULT_PROJECTION): Slice {
  const { missing, writes } = projectEvent(slice, event, options);
  if (missing.length) throw new MissingRecordsError(missing);
  if (writes.length === 0) return slice;
  const next = new Map(slice);
  for (const entry of writes) next.set(keyId(entry.key), entry);
  return next;
}

export function missingRecords(slice: Slice, event: KeyboxEvent, options = DEFAULT_PROJECTION): RecordKey[] {
  return projectEvent(slice, event, options).missing;
}

/** Reads through pending writes to the slice; records (but tolerates) what is missing. */
class Workspace {
  readonly writes = new Map<string, SliceEntry>();
  /** By keyId: a record is asked for once, however often it is read. */
  readonly missing = new Map<string, RecordKey>();
  private readonly slice: Slice;
  readonly chunkTargetBytes: number;
  readonly readAhead: boolean;
  constructor(slice: Slice, options: ProjectionOptions) {
    this.slice = slice;
    this.chunkTargetBytes = options.chunkTargetBytes;
    this.readAhead = options.readAhead;
  }

  get<T extends StoredRecord>(key: RecordKey): T | null {
    const id = keyId(key);
    const entry = this.writes.get(id) ?? this.slice.get(id);
    if (!entry) {
      this.missing.set(id, key);
      return null;
    }
    return entry.value as T | null;
  }

  /** Whether the record is known: loaded (present or absent) or written. */
  holds(key: RecordKey): boolean {
    const id = keyId(key);
    return this.writes.has(id) || this.slice.has(id);
  }

  set(key: RecordKey, value: StoredRecord | null): void {
    this.writes.set(keyId(key), { key, value });
  }
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
  incoming: Entry<ProjectState>,
): void {
  const regKey = registerKey(ownerId, "project", projectId);
  const register = ws.get<ProjectRegister>(regKey);
  const fromClient = register?.clientId ?? clientId;
  const head = ws.get<ProjectHead>(partKey(ownerId, fromClient, projectId));
  if (!isNewer(incoming, head?.project)) return;

  const chunks = head?.chunks ?? 0;
  ws.set(partKey(ownerId, clientId, projectId), {
    kind: "project",
    project: incoming,
    chunks,
    ranges: head?.ranges ?? [],
  });
  if (fromClient !== clientId) {
    ws.get(partKey(ownerId, clientId, projectId)); // loaded so the commit checks it is free
    ws.set(partKey(ownerId, fromClient, projectId), null);
    for (let n = 1; n <= chunks; n++) {
      const chunk = ws.get<LicenseChunk>(partKey(ownerId, fromClient, projectId, n));
      ws.get(partKey(ownerId, clientId, projectId, n)); // loaded so the commit checks it is free
      ws.set(partKey(ownerId, fromClient, projectId, n), null);
      ws.set(partKey(ownerId, clientId, projectId, n), chunk);
    }
  }
  if (register?.clientId !== clientId) ws.set(regKey, { kind: "project", clientId });
}

/** The JSON size of a license entry as its chunk counts it (with the comma that follows it). */
function entryBytes(entry: LicenseEntry): number {
  return Buffer.byteLength(JSON.stringify(entry)) + 1;
}

function applyLicense(
  ws: Workspace,
  ownerId: string,
  projectId: string,
  clientIdHint: string,
  incoming: LicenseEntry,
): void {
  const regKey = registerKey(ownerId, "license", incoming.id);
  const place = filingPlace(ws, ownerId, projectId, clientIdHint, incoming);
  let from: Filed | undefined;
  if (ws.readAhead) {
    from = registered(ws, ownerId, clientIdHint, incoming.id);
    // Until the license's register and its project's head are loaded, where it is and where it goes
    // are unknown: filing it then would work on a guess (split a full chunk it is already in, and read
    // the registers of half its licenses). Meanwhile only what filing reads first is asked for, in the
    // same round, so that no round is added: the chunk the head's ranges give, or chunk 1 while the
    // head is unknown (a new project's first, and a small project's only one).
    if (!ws.holds(regKey) || !ws.holds(place.headKey)) {
      ws.get(place.chunkRead);
      return;
    }
  } else {
    // The head first (a range only once it is loaded), then the chunk whose range holds the
    // license's place: a license is in one chunk at a time, the one its register names, so found
    // there its register need not be read.
    if (place.at >= 0) from = filedIn(ws, place.chunkRead, incoming.id);
    if (!from && ws.missing.size === 0) from = registered(ws, ownerId, clientIdHint, incoming.id);
    // Nothing is filed on a guess: with a record still to load, the event waits for it.
    if (ws.missing.size) return;
  }
  const current = from?.chunk.licenses[from.index];
  if (!isNewer(incoming, current)) return;

  if (from && current) {
    const { key, chunk, index } = from;
    const bytes = chunk.bytes - entryBytes(current);
    // It stays in its chunk while it keeps its project and its place in the order (a tombstone is
    // never served, so it stays wherever it is), unless that would overfill the chunk.
    const [was, now] = [orderOf(current), orderOf(incoming)];
    const keepsPlace = now === null || (was !== null && compareOrder(was, now) === 0);
    const size = bytes + entryBytes(incoming);
    if (from.projectId === projectId && keepsPlace && (size <= ws.chunkTargetBytes || chunk.licenses.length === 1)) {
      ws.set(key, { kind: "licenses", licenses: chunk.licenses.with(index, incoming), bytes: size });
      return;
    }
    // It moves: its register is rewritten, so it is read first (a conditional commit checks it).
    ws.get(regKey);
    if (!ws.holds(regKey)) return;
    const licenses = chunk.licenses.toSpliced(index, 1);
    ws.set(key, licenses.length ? { kind: "licenses", licenses, bytes } : null);
  }
  const chunk = fileLicense(ws, ownerId, projectId, place, incoming);
  ws.set(regKey, { kind: "license", projectId, chunk });
}

/** Where a license is filed: its project, its chunk's key, the chunk, and its index there. */
interface Filed {
  projectId: string;
  key: PartKey;
  chunk: LicenseChunk;
  index: number;
}

/** The license in the chunk under `key`, if it is there (asking for the chunk if not loaded). */
function filedIn(ws: Workspace, key: PartKey, licenseId: string): Filed | undefined {
  const chunk = ws.get<LicenseChunk>(key);
  const index = chunk?.licenses.findIndex((l) => l.id === licenseId) ?? -1;
  return chunk && index >= 0 ? { projectId: key.projectId, key, chunk, index } : undefined;
}

/** Where the license's register says it is filed (asking for what is not loaded); undefined: nowhere yet. */
function registered(ws: Workspace, ownerId: string, clientIdHint: string, licenseId: string): Filed | undefined {
  const register = ws.get<LicenseRegister>(registerKey(ownerId, "license", licenseId));
  if (!register) return undefined;
  const clientId = projectClient(ws, ownerId, register.projectId, clientIdHint);
  return filedIn(ws, partKey(ownerId, clientId, register.projectId, register.chunk), licenseId);
}

/** A license's place in its project's order; a tombstone has none. */
const orderOf = (entry: LicenseEntry): OrderKey | null => (entry.state ? [entry.state.order, entry.id] : null);

/**
 * Adds a license to the chunk whose range holds its order key (a tombstone to the last chunk).
 * A chunk that overfills is split at its middle, the upper half becoming a new chunk with a range
 * of its own; a license past every other at the end of the order just opens a new last chunk. So
 * chunks never overlap. Returns the chunk the license is in. `place`: filingPlace's for `entry`
 * (what it read is unchanged since: only the license's old chunk may have been written).
 */
function fileLicense(
  ws: Workspace,
  ownerId: string,
  projectId: string,
  { headKey, head, chunkKey, order, at }: FilingPlace,
  entry: LicenseEntry,
): number {
  const size = entryBytes(entry);

  /** A new chunk (checked free at commit) holding `licenses`, its range starting at `from`. */
  const open = (licenses: LicenseEntry[], bytes: number, from: OrderKey, rangeIndex: number): number => {
    const n = head.chunks + 1;
    ws.get(chunkKey(n)); // loaded so the commit checks it is free
    ws.set(chunkKey(n), { kind: "licenses", licenses, bytes });
    const ranges = head.ranges.toSpliced(rangeIndex, 0, { from, chunk: n });
    ws.set(headKey, { ...head, chunks: n, ranges });
    return n;
  };

  if (at < 0) return open([entry], size, FIRST_KEY, 0);
  const n = head.ranges[at]!.chunk;
  const current = ws.get<LicenseChunk>(chunkKey(n)) ?? { kind: "licenses", licenses: [], bytes: 0 };
  const licenses = withFiled(current.licenses, entry);
  const bytes = current.bytes + size;
  const live = licenses.filter((l) => l.state !== null);
  if (bytes <= ws.chunkTargetBytes || live.length < 2) {
    ws.set(chunkKey(n), { kind: "licenses", licenses, bytes });
    return n;
  }
  const last = at === head.ranges.length - 1;
  if (order && last && live.every((l) => l === entry || compareOrder(orderOf(l)!, order) < 0))
    return open([entry], size, order, at + 1);

  // Split: tombstones and the lower half of the live licenses stay, the upper half moves.
  const sorted = live.sort((a, b) => compareOrder(orderOf(a)!, orderOf(b)!));
  const upper = sorted.slice(Math.ceil(sorted.length / 2));
  const moved = new Set(upper);
  const stay = licenses.filter((l) => !moved.has(l));
  const upperBytes = upper.reduce((total, l) => total + entryBytes(l), 0);
  ws.set(chunkKey(n), { kind: "licenses", licenses: stay, bytes: bytes - upperBytes });
  const m = open(upper, upperBytes, orderOf(upper[0]!)!, at + 1);
  for (const l of upper) {
    if (l === entry) continue; // the caller registers the license it files
    const regKey = registerKey(ownerId, "license", l.id);
    ws.get(regKey);
    ws.set(regKey, { kind: "license", projectId, chunk: m });
  }
  return moved.has(entry) ? m : n;
}

/**
 * Where a license is filed in its project: the project's head (a new one if there is none yet), the
 * index of the range that holds the license (a tombstone: the last), -1 while there is none, and the
 * key of the chunk filing it reads first (that range's, or the first chunk a new head opens).
 */
function filingPlace(ws: Workspace, ownerId: string, projectId: string, clientIdHint: string, entry: LicenseEntry) {
  const clientId = projectClient(ws, ownerId, projectId, clientIdHint);
  const headKey = partKey(ownerId, clientId, projectId);
  const head = ws.get<ProjectHead>(headKey) ?? { kind: "project", chunks: 0, ranges: [] };
  const chunkKey = (n: number) => partKey(ownerId, clientId, projectId, n);
  const order = orderOf(entry);
  const last = head.ranges.length - 1;
  const at = order && last > 0 ? rangeHolding(head.ranges, order) : last;
  const chunkRead = chunkKey(at < 0 ? head.chunks + 1 : head.ranges[at]!.chunk);
  return { headKey, head, chunkKey, order, at, chunkRead };
}
type FilingPlace = ReturnType<typeof filingPlace>;

/** The index of the range that holds `order`: the last whose `from` is not after it (the first starts at FIRST_KEY). */
function rangeHolding(ranges: readonly ChunkRange[], order: OrderKey): number {
  let [low, high] = [0, ranges.length - 1];
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (compareOrder(ranges[middle]!.from, order) > 0) high = middle - 1;
    else low = middle;
  }
  return low;
}

/**
 * `licenses` with `entry` in its place in the order (a tombstone last): a chunk's live licenses stay
 * in response order, so its fragment is written without sorting them (fragments.ts).
 */
function withFiled(licenses: readonly LicenseEntry[], entry: LicenseEntry): LicenseEntry[] {
  const state = entry.state;
  const at =
    state === null
      ? -1
      : licenses.findIndex((l) => l.state !== null && compareTimeAndId(state.order, entry.id, l.state.order, l.id) < 0);
  return at < 0 ? [...licenses, entry] : licenses.toSpliced(at, 0, entry);
}

/** The start of a project's order: the first chunk's range begins here. */
const FIRST_KEY: OrderKey = ["", ""];

/**
 * The client a project is filed under: its register's, or, for a project not seen yet, the one the
 * license names, registered now so the project finds its licenses when it arrives.
 */
function projectClient(ws: Workspace, ownerId: string, projectId: string, clientIdHint: string): string {
  const regKey = registerKey(ownerId, "project", projectId);
  const register = ws.get<ProjectRegister>(regKey);
  if (register) return register.clientId;
  ws.set(regKey, { kind: "project", clientId: clientIdHint });
  return clientIdHint;
}
