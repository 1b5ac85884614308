// Assembles the GET /dashboard body from an owner's stored fragments: the projector rendered each
// part's JSON when it wrote it, so a read puts byte ranges in response order (clients, projects
// and license chunks by time, then id) and re-renders only license chunks that a license's expiry
// has overtaken. Nothing of the projection's state is decoded.
//
// It visits the fragments first for their heads, which give the response order and every body's
// length, so the body's size and each fragment's place in it are known before a byte of it is
// written. Then the bodies, each copied once, straight into their place: a large body from a store
// that reads a fragment by key (LMDB) is filled piece by piece in response order as the response
// takes the pieces, from the same snapshot, so it is never whole in memory; otherwise (and for a
// body up to a MiB) the fragments are visited a second time and the body is assembled whole. Only
// a chunk to re-render is copied on the way (kept from the first visit), and few objects outlive a
// visit: a large tenant's read made about ten per fragment survive until the body was assembled,
// and collecting them was a quarter of its time.
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
import { givePieces, PIECE_BYTES, takePiece } from "./bodyPieces.ts";

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
   * and fail (throw) if that snapshot's fragments differ from its first visit.
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

/** Where a fragment was visited (its place in the visiting order), once its bytes are gone. */
type Visited = { index: number };
type ClientHead = Visited & { order: OrderKey };
type ProjectHead = Visited & { order: OrderKey; clientId: string };
/** A license chunk; `stale` (a copy) when a license in it has expired since it was rendered. */
type ChunkHead = Visited & { first: OrderKey; validUntil: string | null; stale: LicensesFragment | undefined };
type ProjectEntry = { head: ProjectHead | undefined; chunks: ChunkHead[] };

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
  const body = new BodyFill(layout.place(select));
  for (const fragment of stored) body.fill(fragment);
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
}

/**
 * renderDashboard of a store's snapshot, which it takes over: it is closed here, or by the body's
 * release() when the body is streamed from it (a body over a MiB, from a store that reads a
 * fragment by key, when `stream` allows: each holds the snapshot while it is sent).
 */
export async function renderSnapshot(
  snapshot: DashboardSnapshot,
  now: Date,
  { select, stream = true, admit }: RenderOptions = {},
): Promise<RenderedDashboard> {
  let streamed = false;
  try {
    const layout = new Layout(now);
    await snapshot.fragments((fragment) => layout.visit(fragment));
    const placement = layout.place(select);
    const fragment = snapshot.fragment?.bind(snapshot);
    const large = placement.byteLength > PIECE_BYTES;
    if (stream && fragment && large) {
      streamed = true;
      return streamedBody(placement, layout.readAgain(fragment), () => snapshot.close());
    }
    if (large && admit && !admit(placement.byteLength)) throw new LargeBodyRefusedError(placement.byteLength);
    const body = new BodyFill(placement);
    await snapshot.fragments((stored) => body.fill(stored));
    return body.done();
  } finally {
    if (!streamed) snapshot.close();
  }
}

/**
 * A chunk to re-render, kept past the visit its bytes are valid for: its body copied, its slots
 * decoded (not the whole stored fragment, which on LMDB also holds the chunk's projection state).
 */
function detached(fragment: LicensesFragment): LicensesFragment {
  const slots = fragment.activeSlots();
  return { ...fragment, body: Buffer.from(fragment.body), activeSlots: () => slots };
}

/** The first visit: the fragments' heads, then the body's layout. */
class Layout {
  private readonly nowIso: string;
  /** Each visited fragment's body length and key (client, project, chunk), by visiting order. */
  private readonly bodyLengths: number[] = [];
  private readonly clientIds: string[] = [];
  private readonly projectIds: string[] = [];
  private readonly chunks: number[] = [];
  private readonly clients: ClientHead[] = [];
  /** Project heads and license chunks by the part key they are filed under (client/project). */
  private readonly projects = new Map<string, ProjectEntry>();
  private validUntil: string | undefined;

  constructor(now: Date) {
    this.nowIso = now.toISOString();
  }

  visit({ clientId, projectId, chunk, bytes }: StoredFragment): void {
    const fragment = decodeFragment(bytes);
    const index = this.bodyLengths.push(fragment.body.byteLength) - 1;
    this.clientIds.push(clientId);
    this.projectIds.push(projectId);
    this.chunks.push(chunk);
    if (fragment.kind === "client") {
      this.clients.push({ index, order: fragment.order });
      return;
    }
    const key = `${clientId}/${projectId}`;
    let entry = this.projects.get(key);
    if (!entry) {
      entry = { head: undefined, chunks: [] };
      this.projects.set(key, entry);
    }
    if (fragment.kind === "project") entry.head = { index, order: fragment.order, clientId: fragment.clientId };
    else {
      const { first, validUntil } = fragment;
      const stale = validUntil !== null && validUntil <= this.nowIso ? detached(fragment) : undefined;
      entry.chunks.push({ index, first, validUntil, stale });
    }
  }

  /**
   * Reads a visited fragment again, by its index: through `read`, by the key its visit gave it.
   * It keeps the keys only, not the layout, for as long as the body is sent.
   */
  readAgain(read: NonNullable<DashboardSnapshot["fragment"]>): (index: number) => Uint8Array | undefined {
    const { clientIds, projectIds, chunks } = this;
    return (index) => read(clientIds[index]!, projectIds[index]!, chunks[index]!);
  }

  /** The body in response order: joints and re-rendered licenses as bytes, stored bodies by index. */
  place(select: ClientSelection | undefined): Placement {
    const projectsByClient = new Map<string, ProjectEntry[]>();
    for (const entry of this.projects.values()) {
      if (!entry.head) continue;
      const list = projectsByClient.get(entry.head.clientId) ?? [];
      list.push(entry);
      projectsByClient.set(entry.head.clientId, list);
    }
    const clients = this.clients.sort((a, b) => compareOrder(a.order, b.order));
    const page = select?.(clients.map((client) => client.order));
    const chosen = page ? clients.slice(page.from, page.to) : clients;
    const sequence: (Uint8Array | number)[] = [COMMA]; // replaced by the opening once counted
    let projectsCount = 0;
    for (const [n, client] of chosen.entries()) {
      if (n > 0) sequence.push(COMMA);
      sequence.push(client.index);
      const listed = (projectsByClient.get(client.order[1]) ?? []).sort((a, b) =>
        compareOrder(a.head!.order, b.head!.order),
      );
      for (const [m, { head, chunks }] of listed.entries()) {
        if (m > 0) sequence.push(COMMA);
        sequence.push(head!.index);
        this.licenses(sequence, chunks);
        sequence.push(CLOSE);
      }
      projectsCount += listed.length;
      sequence.push(CLOSE);
    }
    sequence.push(CLOSE);
    sequence[0] = utf8.encode(
      `{"message":"Dashboard fetched successfully","clientsCount":${chosen.length},"projectsCount":${projectsCount},${
        page ? `"nextCursor":${JSON.stringify(page.nextCursor)},` : ""
      }"data":[`,
    );
    // One place per fragment, or an assembled body would keep bytes it never wrote (a pooled
    // piece's old ones): only corrupt data (two heads naming one client) could list one twice.
    const placed = new Uint8Array(this.bodyLengths.length);
    let byteLength = 0;
    for (const item of sequence) {
      if (typeof item !== "number") byteLength += item.byteLength;
      else if (placed[item]) throw new Error("a dashboard fragment was placed twice in the body");
      else {
        placed[item] = 1;
        byteLength += this.bodyLengths[item]!;
      }
    }
    return { sequence, bodyLengths: this.bodyLengths, byteLength, validUntil: this.validUntil };
  }

  private until(activeUntil: string | null): void {
    if (
      activeUntil !== null &&
      activeUntil > this.nowIso &&
      (this.validUntil === undefined || activeUntil < this.validUntil)
    )
      this.validUntil = activeUntil;
  }

  /**
   * A project's licenses. The projector keeps each chunk to its own range of the order, so the
   * chunks' bodies are joined as they are, in the order of their first licenses; only a chunk
   * with an expired license is re-rendered.
   */
  private licenses(sequence: (Uint8Array | number)[], chunks: ChunkHead[]): void {
    chunks.sort((a, b) => compareOrder(a.first, b.first));
    for (const [k, chunk] of chunks.entries()) {
      if (k > 0) sequence.push(COMMA);
      if (!chunk.stale) {
        sequence.push(chunk.index);
        this.until(chunk.validUntil);
        continue;
      }
      // Only the licenses past their end are re-rendered; the stretches between them (commas
      // included) are served as stored.
      const { body } = chunk.stale;
      let from = 0;
      for (const slot of chunk.stale.activeSlots()) {
        this.until(slot.activeUntil);
        if (slot.activeUntil > this.nowIso) continue;
        if (slot.start > from) sequence.push(body.subarray(from, slot.start));
        sequence.push(licenseBytesAt(body, slot, this.nowIso));
        from = slot.end;
      }
      if (from < body.byteLength) sequence.push(body.subarray(from));
    }
  }
}

/**
 * The body laid out: what goes where, in response order — bytes (joints, re-rendered licenses) and
 * visited fragments' bodies by their index.
 */
interface Placement {
  sequence: readonly (Uint8Array | number)[];
  /** Each visited fragment's body length, by visiting order. */
  bodyLengths: readonly number[];
  byteLength: number;
  validUntil: string | undefined;
}

const SNAPSHOT_CHANGED = "a snapshot's fragments differed between two visits";

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
 * A large body filled piece by piece as they are taken, in response order, each fragment read by
 * key from the snapshot (`read`), which `close` ends once the last piece is filled or the body is
 * released. A fragment's bytes are only good until the next read, and other requests read between
 * two pieces: one that straddles two pieces is read again for the second.
 */
function streamedBody(
  { sequence, bodyLengths, byteLength, validUntil }: Placement,
  read: (index: number) => Uint8Array | undefined,
  close: () => void,
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
      let bytes = typeof item === "number" ? bodyAgain(read(item), bodyLengths[item]!) : item;
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
        if (typeof item === "number" && from < bytes.byteLength) bytes = bodyAgain(read(item), bodyLengths[item]!);
      }
    }
    if (left !== 0) throw new Error("a dashboard body was not written whole");
    release();
    if (filled > 0) yield piece.subarray(0, filled);
    else givePieces([piece]);
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
      return pieces();
    },
    recycle,
    release,
  };
}

/** The second visit: each stored body copied into its place in the body, assembled whole. */
class BodyFill {
  /** Where each visited fragment's body goes in the body; -1 for one left out. */
  private readonly offsets: number[];
  private readonly pieces: Buffer[] = [];
  private visited = 0;
  private written = 0;

  constructor(private readonly placement: Placement) {
    const { sequence, bodyLengths, byteLength } = placement;
    if (byteLength <= PIECE_BYTES) this.pieces.push(Buffer.allocUnsafe(byteLength));
    else
      for (let at = 0; at < byteLength; at += PIECE_BYTES)
        this.pieces.push(takePiece().subarray(0, Math.min(PIECE_BYTES, byteLength - at)));
    this.offsets = new Array<number>(bodyLengths.length).fill(-1);
    let at = 0;
    for (const item of sequence) {
      if (typeof item !== "number") this.write(at, item);
      else this.offsets[item] = at;
      at += typeof item === "number" ? bodyLengths[item]! : item.byteLength;
    }
  }

  fill({ bytes }: StoredFragment): void {
    const index = this.visited++;
    const at = this.offsets[index];
    if (at === undefined) throw new Error(SNAPSHOT_CHANGED);
    const body = bodyAgain(bytes, this.placement.bodyLengths[index]!);
    if (at >= 0) this.write(at, body);
  }

  done(): RenderedDashboard {
    if (this.visited !== this.offsets.length) throw new Error(SNAPSHOT_CHANGED);
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

  /** Copies `bytes` to `at` in the body, across pieces if it straddles them. */
  private write(at: number, bytes: Uint8Array): void {
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
}
