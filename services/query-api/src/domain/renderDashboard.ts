// Assembles the GET /dashboard body from an owner's stored fragments: the projector rendered each
// part's JSON when it wrote it, so a read puts byte ranges in response order (clients, projects
// and license chunks by time, then id) and re-renders only license chunks that a license's expiry
// has overtaken. Nothing of the projection's state is decoded.
//
// First the layout: each client's fragments' heads give the order and every body's length, so the
// body's size and each fragment's place in it are known before a byte of it is written. A layout
// is kept per client (LayoutCache) while the client's version is unchanged, so on a store that
// tells its clients' versions (LMDB) a read visits only the clients that changed. Then the bodies,
// each copied once, straight into their place: from a store that reads a fragment by key (LMDB), a
// large body is filled piece by piece in response order as the response takes the pieces, from the
// same snapshot, so it is never whole in memory, and any other body is assembled whole from reads
// by key; from other stores, the fragments are visited a second time. Only a chunk to re-render is
// copied on the way.
import {
  compareOrder,
  decodeFragment,
  fragmentBody,
  licenseBytesAt,
  type DashboardSnapshot,
  type LicensesFragment,
  type LicenseView,
  type OrderKey,
  type StoredFragment,
} from "@keybox/read-model";
import { setImmediate } from "node:timers/promises";
import { givePieces, PIECE_BYTES, takePiece } from "./bodyPieces.ts";

/** A large owner's clients are laid out this many fragments at a time per event-loop turn. */
const FRAGMENTS_PER_TURN = 250;

export type { LicenseView };

export interface ProjectView {
  _id: string;
  name: string;
  client: string;
  licenses: LicenseView[];
}

export interface ClientView {
  _id: string;
  name: string;
  email: string;
  owner: string;
  projects: ProjectView[];
}

/** A rendered dashboard: its bytes, and until when they are right (see renderDashboard). */
export interface RenderedDashboard {
  byteLength: number;
  /**
   * The first time at which an ACTIVE license in it passes its end and is served as EXPIRED
   * (ISO form); undefined when the body stays right until the read model changes.
   */
  validUntil: string | undefined;
  /** The body in one buffer, when it is up to a MiB (what the response cache keeps); else undefined. */
  whole: Uint8Array | undefined;
  /** Whether its pieces are filled as they are taken, from a snapshot it holds until release(). */
  streamed: boolean;
  /**
   * The body's bytes in order, taken once: `whole`, or pieces of a MiB each (the last less). A
   * streamed body's pieces are filled as they are taken, from the snapshot it was laid out from,
   * and fail (throw) if that snapshot's fragments differ from its layout.
   */
  pieces(): Iterable<Uint8Array>;
  /**
   * Gives a piece of a large body back for a later body (see bodyPieces.ts): only once nothing
   * reads it again. Not calling it is always safe; for `whole` it does nothing.
   */
  recycle(piece: Uint8Array): void;
  /**
   * Done taking pieces: ends the snapshot a streamed body still holds (LMDB: its read transaction,
   * which would keep the writer from reusing pages). Every rendered body gets it, once its pieces
   * are taken or will not be; calling it again does nothing.
   */
  release(): void;
}

/**
 * Which of an owner's clients (in response order) a page holds, from `from` up to `to`, and its
 * nextCursor (see paging.ts).
 */
export type ClientSelection = (clients: readonly OrderKey[]) => { from: number; to: number; nextCursor: string | null };

/** The shape of the JSON renderDashboard returns. */
export interface DashboardBody {
  message: "Dashboard fetched successfully";
  clientsCount: number;
  projectsCount: number;
  /** Only on a page: where the next page starts, null on the last. */
  nextCursor?: string | null;
  data: ClientView[];
}

const utf8 = new TextEncoder();
const COMMA = utf8.encode(",");
const CLOSE = utf8.encode("]}");

/**
 * A visited fragment, once its bytes are gone: where it was in its visit (`index`), the key to read
 * it again by, and its body's length.
 */
interface FragmentRef {
  readonly index: number;
  readonly clientId: string;
  readonly projectId: string;
  readonly chunk: number;
  readonly length: number;
}
/** What a body is made of, in order: joints and re-rendered licenses as bytes, stored bodies by reference. */
type BodyItem = Uint8Array | FragmentRef;
/** A client's or a project's fragment, and its order key. */
type Head = { ref: FragmentRef; order: OrderKey };
/** A license chunk; `stale` (a copy) when a license in it has expired since it was rendered. */
type ChunkHead = { ref: FragmentRef; first: OrderKey; validUntil: string | null; stale: LicensesFragment | undefined };
type ProjectEntry = { head: Head | undefined; chunks: ChunkHead[] };

/** One client's stretch of the body, laid out: a whole dashboard or a page joins its clients'. */
export interface ClientLayout {
  /** The client's order key; undefined for a client with parts but no client fragment (not shown). */
  order: OrderKey | undefined;
  projectsCount: number;
  /** The client's JSON object, from its opening to its closing brace. */
  items: readonly BodyItem[];
  byteLength: number;
  /** The first time its bytes go out of date (an ACTIVE license in it passes its end), if any. */
  validUntil: string | undefined;
  /** About how much memory it holds, in bytes: its items, and the bytes of its re-rendered chunks. */
  memory: number;
}

/** The layout of a client with no client fragment: not shown, whatever is filed under it. */
const NOTHING_SHOWN: ClientLayout = Object.freeze({
  order: undefined,
  projectsCount: 0,
  items: Object.freeze([]),
  byteLength: 0,
  validUntil: undefined,
  memory: 0,
});
/**
 * What an item of a layout is reckoned to take (an estimate): a FragmentRef of five fields and its
 * array slot; a kept client's entry is charged as much again.
 */
const ITEM_MEMORY = 80;

/**
 * Renders the dashboard from an owner's fragments (in any order) as the bytes of a DashboardBody,
 * as of `now`. Deleted entities have no fragment; a project whose client is missing, and licenses
 * whose project is missing, are left out; children that arrived before their parent show once it
 * exists. A page (`select`, see paging.ts) holds the clients it selects, counted, and carries
 * `nextCursor` after the counts.
 */
export function renderDashboard(
  stored: readonly StoredFragment[],
  now: Date,
  select?: ClientSelection,
): RenderedDashboard {
  const layout = new Layout(now);
  for (const fragment of stored) layout.visit(fragment);
  const body = new SecondVisit(place(layout.clientLayouts().values(), select), layout.refs);
  for (const { bytes } of stored) body.fill(bytes);
  return body.done();
}

/** Thrown by renderSnapshot when `admit` refuses the memory a large body would be assembled in. */
export class LargeBodyRefusedError extends Error {
  constructor(readonly byteLength: number) {
    super(`no memory to assemble a ${byteLength}-byte dashboard body now`);
  }
}

export interface RenderOptions {
  /** A page's clients (see paging.ts); without it, all of them. */
  select?: ClientSelection | undefined;
  /** Whether a large body may be streamed from the snapshot (default true). */
  stream?: boolean;
  /**
   * Asked before a body over a MiB is assembled whole, with its length: false refuses it
   * (LargeBodyRefusedError), before any of its memory is taken. Bodies streamed are not asked.
   */
  admit?: (byteLength: number) => boolean;
  /** Where the owner's client layouts are kept between reads (see LayoutCache), and whose they are. */
  layouts?: { cache: LayoutCache; ownerId: string } | undefined;
}

/**
 * renderDashboard of a store's snapshot, which it takes over: it is closed here, or by the body's
 * release() when the body is streamed from it (a body over a MiB, from a store that reads a
 * fragment by key, when `stream` allows: each holds the snapshot while it is sent).
 */
export async function renderSnapshot(
  snapshot: DashboardSnapshot,
  now: Date,
  { select, stream = true, admit, layouts }: RenderOptions = {},
): Promise<RenderedDashboard> {
  let streamed = false;
  try {
    const fragment = snapshot.fragment?.bind(snapshot);
    if (!fragment) return await visitedTwice(snapshot, now, { select, admit });
    const fromCache = await layouts?.cache.clientLayouts(layouts.ownerId, snapshot, now);
    const clients = fromCache ?? (await layOutAll(snapshot, now));
    const placement = place(clients, select);
    // Kept layouts were right for this snapshot's versions: a body that does not match them is
    // read with layouts laid out again next time.
    const forget = fromCache && layouts ? () => layouts.cache.forget(layouts.ownerId) : () => {};
    const read = (ref: FragmentRef) => fragment(ref.clientId, ref.projectId, ref.chunk);
    const large = placement.byteLength > PIECE_BYTES;
    if (stream && large) {
      streamed = true;
      return streamedBody(placement, read, () => snapshot.close(), forget);
    }
    admitted(placement, admit);
    try {
      return await assembledByKey(placement, read);
    } catch (error) {
      forget();
      throw error;
    }
  } finally {
    if (!streamed) snapshot.close();
  }
}

/** Every fragment of a snapshot visited once, for the layout of every client. */
async function visitAll(snapshot: DashboardSnapshot, now: Date): Promise<Layout> {
  const layout = new Layout(now);
  await snapshot.fragments((stored) => layout.visit(stored));
  return layout;
}

/** Every client of a snapshot laid out, in one visit. */
async function layOutAll(snapshot: DashboardSnapshot, now: Date): Promise<Iterable<ClientLayout>> {
  return (await visitAll(snapshot, now)).clientLayouts().values();
}

/** Throws LargeBodyRefusedError when `admit` refuses the memory of a body over a MiB to be assembled whole. */
function admitted({ byteLength }: Placement, admit: RenderOptions["admit"]): void {
  if (byteLength > PIECE_BYTES && admit && !admit(byteLength)) throw new LargeBodyRefusedError(byteLength);
}

/** A body from a store that reads no fragment by key: laid out from one visit, filled from a second. */
async function visitedTwice(
  snapshot: DashboardSnapshot,
  now: Date,
  { select, admit }: Pick<RenderOptions, "select" | "admit">,
): Promise<RenderedDashboard> {
  const layout = await visitAll(snapshot, now);
  const placement = place(layout.clientLayouts().values(), select);
  admitted(placement, admit);
  const body = new SecondVisit(placement, layout.refs);
  await snapshot.fragments(({ bytes }) => body.fill(bytes));
  return body.done();
}

/**
 * Client layouts of recent reads, by owner and client, reused while the client's version in the
 * snapshot read is the one it was laid out at, and from the time it was laid out until a license
 * in it passes its end: a client's fragments are the same in every snapshot where its version is
 * (SnapshotClients), so a read of a large tenant lays out only the clients that changed since the
 * last one. Bounded by the memory its layouts hold (about 160 bytes a fragment); the least recently
 * read owners are dropped first, and an owner whose layouts alone exceed the bound is not kept.
 * For stores whose snapshots tell their clients' versions (LMDB); others are laid out on every read.
 *
 * @example
 * const layouts = new LayoutCache({ maxBytes: 32 * 1024 * 1024 });
 * const snapshot = await store.openDashboard(ownerId);
 * const body = await renderSnapshot(snapshot, new Date(), { layouts: { cache: layouts, ownerId } });
 */
export class LayoutCache {
  private readonly owners = new Map<string, KeptOwner>();
  private memory = 0;
  private readonly maxBytes: number;

  constructor({ maxBytes }: { maxBytes: number }) {
    this.maxBytes = maxBytes;
  }

  /**
   * The layouts of every client of `snapshot` (an owner's, or one client's) as of `now`: kept ones
   * where still right, the others laid out from the snapshot (all of it in one visit when more than
   * a quarter are missing, else client by client). Undefined when the snapshot does not tell its
   * clients' versions. Every client with fragments has a version (the store gives one to each
   * client it writes parts of, and removes it only with the last part), so the clients listed are
   * all there are.
   */
  async clientLayouts(ownerId: string, snapshot: DashboardSnapshot, now: Date): Promise<ClientLayout[] | undefined> {
    const clients = snapshot.clients?.();
    if (!clients) return undefined;
    const nowIso = now.toISOString();
    const before = this.owners.get(ownerId);
    const kept = before?.identity === clients.identity ? before.clients : undefined;
    const layouts: ClientLayout[] = [];
    const missing: string[] = [];
    for (const [clientId, version] of clients.versions) {
      const layout = kept?.get(clientId);
      if (
        layout?.version === version &&
        layout.laidOutAt <= nowIso &&
        (layout.validUntil === undefined || nowIso < layout.validUntil)
      )
        layouts.push(layout);
      else missing.push(clientId);
    }
    const layout = new Layout(now);
    if (missing.length * 4 > clients.versions.size) await snapshot.fragments((stored) => layout.visit(stored));
    else {
      // Many small clients in a row: other requests get a turn now and then, as in a visit of all.
      let visited = 0;
      for (const clientId of missing) {
        await clients.fragments(clientId, (stored) => {
          layout.visit(stored);
          visited++;
        });
        if (visited >= FRAGMENTS_PER_TURN) {
          visited = 0;
          await setImmediate();
        }
      }
    }
    const laid = layout.clientLayouts(new Set(missing));
    // Kept from here on, in this turn: other reads may have changed the cache during the visits.
    const owner = this.ownerOf(ownerId, clients.identity);
    for (const clientId of missing) {
      const layout = laid.get(clientId) ?? NOTHING_SHOWN; // parts, but no fragment: nothing to show
      layouts.push(layout);
      this.set(owner, clientId, { ...layout, version: clients.versions.get(clientId)!, laidOutAt: nowIso });
    }
    // A whole dashboard's snapshot lists every client there is: the others were deleted.
    if (clients.clientId === undefined)
      for (const clientId of owner.clients.keys())
        if (!clients.versions.has(clientId)) this.set(owner, clientId, undefined);
    this.bound(ownerId, owner);
    return layouts;
  }

  /** Drops what is kept of the owner's layouts. */
  forget(ownerId: string): void {
    const owner = this.owners.get(ownerId);
    if (!owner) return;
    this.memory -= owner.memory;
    this.owners.delete(ownerId);
  }

  /** About how much memory the kept layouts hold, in bytes (for tests and metrics). */
  get bytes(): number {
    return this.memory;
  }

  /** The owner's kept layouts, made the most recently read; emptied if the store's identity changed. */
  private ownerOf(ownerId: string, identity: string): KeptOwner {
    let owner = this.owners.get(ownerId);
    if (owner?.identity !== identity) {
      this.forget(ownerId);
      owner = { identity, clients: new Map(), memory: 0 };
    }
    this.owners.delete(ownerId);
    this.owners.set(ownerId, owner);
    return owner;
  }

  private set(owner: KeptOwner, clientId: string, layout: KeptLayout | undefined): void {
    const size = (kept: KeptLayout | undefined) => (kept ? kept.memory + ITEM_MEMORY : 0);
    const change = size(layout) - size(owner.clients.get(clientId));
    owner.memory += change;
    this.memory += change;
    if (layout) owner.clients.set(clientId, layout);
    else owner.clients.delete(clientId);
  }

  /** Keeps the cache within its bound after `ownerId`'s read: that owner dropped first if it alone is over. */
  private bound(ownerId: string, owner: KeptOwner): void {
    if (owner.memory > this.maxBytes || owner.clients.size === 0) this.forget(ownerId);
    for (const [oldest] of this.owners) {
      if (this.memory <= this.maxBytes) return;
      this.forget(oldest);
    }
  }
}

/** A client's layout as kept: at which version of the client, and as of when (ISO form). */
type KeptLayout = ClientLayout & { version: number; laidOutAt: string };
interface KeptOwner {
  identity: string;
  clients: Map<string, KeptLayout>;
  /** About how much memory its layouts hold (what the cache is bounded by). */
  memory: number;
}

/**
 * A chunk to re-render, kept past the visit its bytes are valid for: its body copied, its slots
 * decoded (not the whole stored fragment, which on LMDB also holds the chunk's projection state).
 */
function detached(fragment: LicensesFragment): LicensesFragment {
  const slots = fragment.activeSlots();
  return { ...fragment, body: ownCopy(fragment.body), activeSlots: () => slots };
}

/** A copy in memory of its own, not a slice of Node's shared pool that a kept layout would hold whole. */
function ownCopy(bytes: Uint8Array): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

/** A client's fragments as a visit files them: its own (`head`), and its projects' by project id. */
interface VisitedClient {
  head: Head | undefined;
  projects: Map<string, ProjectEntry>;
}

/** The first visit: the fragments' heads, filed by client, then each client's layout. */
class Layout {
  private readonly nowIso: string;
  /** Every visited fragment, by visiting order. */
  readonly refs: FragmentRef[] = [];
  /** By the client id the fragments are filed under. */
  private readonly clients = new Map<string, VisitedClient>();

  constructor(now: Date) {
    this.nowIso = now.toISOString();
  }

  visit({ clientId, projectId, chunk, bytes }: StoredFragment): void {
    const fragment = decodeFragment(bytes);
    const ref: FragmentRef = { index: this.refs.length, clientId, projectId, chunk, length: fragment.body.byteLength };
    this.refs.push(ref);
    let client = this.clients.get(clientId);
    if (!client) {
      client = { head: undefined, projects: new Map() };
      this.clients.set(clientId, client);
    }
    // A head filed under another client's key than its own is corrupt: left out, never shown twice.
    if (fragment.kind === "client") {
      if (fragment.order[1] === clientId) client.head = { ref, order: fragment.order };
      return;
    }
    let entry = client.projects.get(projectId);
    if (!entry) {
      entry = { head: undefined, chunks: [] };
      client.projects.set(projectId, entry);
    }
    if (fragment.kind === "project") {
      if (fragment.clientId === clientId) entry.head = { ref, order: fragment.order };
    } else {
      const { first, validUntil } = fragment;
      const stale = validUntil !== null && validUntil <= this.nowIso ? detached(fragment) : undefined;
      entry.chunks.push({ ref, first, validUntil, stale });
    }
  }

  /** Each visited client's layout (of those in `only`, when given), by client id. */
  clientLayouts(only?: ReadonlySet<string>): Map<string, ClientLayout> {
    const layouts = new Map<string, ClientLayout>();
    for (const [clientId, client] of this.clients)
      if (!only || only.has(clientId)) layouts.set(clientId, this.clientLayout(client));
    return layouts;
  }

  private clientLayout({ head, projects }: VisitedClient): ClientLayout {
    if (!head) return NOTHING_SHOWN;
    const items: BodyItem[] = [head.ref];
    let validUntil: string | undefined;
    const until = (activeUntil: string | null) => {
      if (activeUntil !== null && activeUntil > this.nowIso && (validUntil === undefined || activeUntil < validUntil))
        validUntil = activeUntil;
    };
    const listed = [...projects.values()].filter((entry) => entry.head !== undefined);
    listed.sort((a, b) => compareOrder(a.head!.order, b.head!.order));
    for (const [m, { head: project, chunks }] of listed.entries()) {
      if (m > 0) items.push(COMMA);
      items.push(project!.ref);
      this.licenses(items, chunks, until);
      items.push(CLOSE);
    }
    items.push(CLOSE);
    // A re-rendered chunk holds its copy and its re-rendered licenses: at most twice its bytes.
    let memory = items.length * ITEM_MEMORY;
    for (const { chunks } of listed) for (const { stale } of chunks) if (stale) memory += 2 * stale.body.byteLength;
    return { order: head.order, projectsCount: listed.length, items, byteLength: lengthOf(items), validUntil, memory };
  }

  /**
   * A project's licenses. The projector keeps each chunk to its own range of the order, so the
   * chunks' bodies are joined as they are, in the order of their first licenses; only a chunk
   * with an expired license is re-rendered.
   */
  private licenses(items: BodyItem[], chunks: ChunkHead[], until: (activeUntil: string | null) => void): void {
    chunks.sort((a, b) => compareOrder(a.first, b.first));
    for (const [k, chunk] of chunks.entries()) {
      if (k > 0) items.push(COMMA);
      if (!chunk.stale) {
        items.push(chunk.ref);
        until(chunk.validUntil);
        continue;
      }
      // Only the licenses past their end are re-rendered; the stretches between them (commas
      // included) are served as stored.
      const { body } = chunk.stale;
      let from = 0;
      for (const slot of chunk.stale.activeSlots()) {
        until(slot.activeUntil);
        if (slot.activeUntil > this.nowIso) continue;
        if (slot.start > from) items.push(body.subarray(from, slot.start));
        items.push(ownCopy(licenseBytesAt(body, slot, this.nowIso)));
        from = slot.end;
      }
      if (from < body.byteLength) items.push(body.subarray(from));
    }
  }
}

const lengthOf = (items: readonly BodyItem[]) => {
  let length = 0;
  for (const item of items) length += item instanceof Uint8Array ? item.byteLength : item.length;
  return length;
};

/** The body laid out: what goes where, in response order. */
interface Placement {
  sequence: readonly BodyItem[];
  byteLength: number;
  validUntil: string | undefined;
}

/** The body of the clients laid out (a page's, when `select` chooses some), in response order. */
function place(clients: Iterable<ClientLayout>, select: ClientSelection | undefined): Placement {
  const shown: (ClientLayout & { order: OrderKey })[] = [];
  for (const client of clients) if (client.order) shown.push(client as ClientLayout & { order: OrderKey });
  shown.sort((a, b) => compareOrder(a.order, b.order));
  const page = select?.(shown.map((client) => client.order));
  const chosen = page ? shown.slice(page.from, page.to) : shown;
  const sequence: BodyItem[] = [COMMA]; // replaced by the opening once counted
  let projectsCount = 0;
  let validUntil: string | undefined;
  for (const [n, client] of chosen.entries()) {
    if (n > 0) sequence.push(COMMA);
    for (const item of client.items) sequence.push(item);
    projectsCount += client.projectsCount;
    if (client.validUntil !== undefined && (validUntil === undefined || client.validUntil < validUntil))
      validUntil = client.validUntil;
  }
  sequence.push(CLOSE);
  const opening = utf8.encode(
    `{"message":"Dashboard fetched successfully","clientsCount":${chosen.length},"projectsCount":${projectsCount},${
      page ? `"nextCursor":${JSON.stringify(page.nextCursor)},` : ""
    }"data":[`,
  );
  sequence[0] = opening;
  // The clients' lengths are known: what is added is the opening, the commas and the closing.
  let byteLength = opening.byteLength + Math.max(0, chosen.length - 1) * COMMA.byteLength + CLOSE.byteLength;
  for (const client of chosen) byteLength += client.byteLength;
  return { sequence, byteLength, validUntil };
}

const SNAPSHOT_CHANGED = "a snapshot's fragments differed from their layout";

/** The stored body of a fragment visited again, checked against its first visit's length. */
function bodyAgain(bytes: Uint8Array | undefined, expectedLength: number): Buffer {
  const body = bytes && fragmentBody(bytes);
  if (body?.byteLength !== expectedLength) throw new Error(SNAPSHOT_CHANGED);
  return body;
}

/** A piece of a large body's memory (see bodyPieces.ts) given back, unless it is a small body's own. */
function recycle(piece: Uint8Array): void {
  givePieces([piece]);
}

/**
 * A body assembled whole (in one buffer of its own up to a MiB), each fragment read by key; other
 * requests get a turn after each MiB.
 */
async function assembledByKey(
  placement: Placement,
  read: (ref: FragmentRef) => Uint8Array | undefined,
): Promise<RenderedDashboard> {
  const body = new BodyFill(placement);
  let at = 0;
  let sinceTurn = 0;
  for (const item of placement.sequence) {
    const bytes = item instanceof Uint8Array ? item : bodyAgain(read(item), item.length);
    body.write(at, bytes);
    at += bytes.byteLength;
    sinceTurn += bytes.byteLength;
    if (sinceTurn >= PIECE_BYTES) {
      sinceTurn = 0;
      await setImmediate();
    }
  }
  return body.done();
}

/**
 * A large body filled piece by piece as they are taken, in response order, each fragment read by
 * key from the snapshot (`read`), which `close` ends once the last piece is filled or the body is
 * released. A fragment's bytes are only good until the next read, and other requests read between
 * two pieces: one that straddles two pieces is read again for the second.
 */
function streamedBody(
  { sequence, byteLength, validUntil }: Placement,
  read: (ref: FragmentRef) => Uint8Array | undefined,
  close: () => void,
  /** Called when filling a piece fails (a fragment not what the layout says: the pieces then throw). */
  failed: () => void,
): RenderedDashboard {
  let closed = false;
  const release = () => {
    if (!closed) close();
    closed = true;
  };
  function* pieces(): Generator<Uint8Array> {
    let piece = takePiece();
    let filled = 0;
    let left = byteLength;
    for (const item of sequence) {
      let bytes = item instanceof Uint8Array ? item : bodyAgain(read(item), item.length);
      for (let from = 0; from < bytes.byteLength; ) {
        const count = Math.min(bytes.byteLength - from, PIECE_BYTES - filled);
        piece.set(count === bytes.byteLength ? bytes : bytes.subarray(from, from + count), filled);
        from += count;
        filled += count;
        left -= count;
        if (filled < PIECE_BYTES) continue;
        if (left === 0) release(); // the last byte is read: the snapshot is not needed any more
        yield piece;
        piece = takePiece();
        filled = 0;
        if (!(item instanceof Uint8Array) && from < bytes.byteLength) bytes = bodyAgain(read(item), item.length);
      }
    }
    if (left !== 0) throw new Error("a dashboard body was not written whole");
    release();
    if (filled > 0) yield piece.subarray(0, filled);
    else givePieces([piece]);
  }
  function* checkedPieces(): Generator<Uint8Array> {
    try {
      yield* pieces();
    } catch (error) {
      failed();
      throw error;
    }
  }
  let taken = false;
  return {
    byteLength,
    validUntil,
    whole: undefined,
    streamed: true,
    pieces: () => {
      if (taken) throw new Error("a streamed dashboard's pieces are taken once");
      taken = true;
      return checkedPieces();
    },
    recycle,
    release,
  };
}

/** A body assembled whole: pieces of a MiB (one buffer of its own up to a MiB), bytes written into place. */
class BodyFill {
  private readonly pieces: Buffer[] = [];
  private written = 0;

  constructor(private readonly placement: Placement) {
    const { byteLength } = placement;
    if (byteLength <= PIECE_BYTES) this.pieces.push(Buffer.allocUnsafe(byteLength));
    else
      for (let at = 0; at < byteLength; at += PIECE_BYTES)
        this.pieces.push(takePiece().subarray(0, Math.min(PIECE_BYTES, byteLength - at)));
  }

  /** Copies `bytes` to `at` in the body, across pieces if it straddles them. */
  write(at: number, bytes: Uint8Array): void {
    this.written += bytes.byteLength;
    for (let from = 0; from < bytes.byteLength; ) {
      const piece = this.pieces[Math.floor(at / PIECE_BYTES)]!;
      const offset = at % PIECE_BYTES;
      const count = Math.min(bytes.byteLength - from, piece.byteLength - offset);
      piece.set(count === bytes.byteLength ? bytes : bytes.subarray(from, from + count), offset);
      from += count;
      at += count;
    }
  }

  done(): RenderedDashboard {
    const { byteLength, validUntil } = this.placement;
    // Sent only once every byte is written: the pieces are not zeroed, and may be a body's before.
    if (this.written !== byteLength) throw new Error("a dashboard body was not written whole");
    const { pieces } = this;
    const whole = pieces.length === 1 ? pieces[0] : undefined;
    return {
      byteLength,
      validUntil,
      whole,
      streamed: false,
      pieces: () => pieces,
      // A body in one piece is its own buffer (and may be cached): it never joins the pool.
      recycle: whole ? () => {} : recycle,
      release: () => {},
    };
  }
}

/**
 * A body assembled whole from a second visit of the fragments a layout visited, in the same order
 * (`refs`, the layout's): each stored body is copied to where the layout placed it.
 */
class SecondVisit {
  private readonly body: BodyFill;
  /** Where each visited fragment's body goes, by its index in the visit; -1 for one left out. */
  private readonly offsets: number[];
  private visited = 0;

  constructor(
    placement: Placement,
    private readonly refs: readonly FragmentRef[],
  ) {
    this.body = new BodyFill(placement);
    this.offsets = new Array<number>(refs.length).fill(-1);
    let at = 0;
    for (const item of placement.sequence) {
      if (item instanceof Uint8Array) this.body.write(at, item);
      else this.offsets[item.index] = at;
      at += item instanceof Uint8Array ? item.byteLength : item.length;
    }
  }

  fill(bytes: Uint8Array): void {
    const index = this.visited++;
    const at = this.offsets[index];
    if (at === undefined) throw new Error(SNAPSHOT_CHANGED);
    const stored = bodyAgain(bytes, this.refs[index]!.length);
    if (at >= 0) this.body.write(at, stored);
  }

  done(): RenderedDashboard {
    if (this.visited !== this.offsets.length) throw new Error(SNAPSHOT_CHANGED);
    return this.body.done();
  }
}
