// Assembles the GET /dashboard body from an owner's stored fragments: the projector rendered each
// part's JSON when it wrote it, so a read puts byte ranges in response order (clients, projects
// and license chunks by time, then id) and re-renders only license chunks that a license's expiry
// has overtaken. Nothing of the projection's state is decoded.
//
// It visits the fragments twice, from one snapshot of the store: first their heads, which give the
// response order and every body's length, so the body's size and each fragment's place in it are
// known; then their bodies, each copied once, straight into its place. Only a chunk to re-render is
// copied on the way (kept from the first visit), and few objects outlive a visit: a large tenant's
// read made about ten per fragment survive until the body was assembled, and collecting them was a
// quarter of its time.
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
  /** The body's bytes, in order: one buffer up to a MiB, else pieces of a MiB each (the last less). */
  pieces: Uint8Array[];
  byteLength: number;
  /**
   * The first time at which an ACTIVE license in it passes its end and is served as EXPIRED
   * (ISO form); undefined when the body stays right until the read model changes.
   */
  validUntil: string | undefined;
  /**
   * Gives a large body's memory back for the next one (see bodyPieces.ts): only once nothing reads
   * its pieces again. Not calling it is always safe; for a body in one piece it does nothing.
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
  const body = layout.place(select);
  for (const fragment of stored) body.fill(fragment);
  return body.done();
}

/** renderDashboard of a store's snapshot (which the caller closes), visiting its fragments twice. */
export async function renderSnapshot(
  snapshot: DashboardSnapshot,
  now: Date,
  select?: ClientSelection,
): Promise<RenderedDashboard> {
  const layout = new Layout(now);
  await snapshot.fragments((fragment) => layout.visit(fragment));
  const body = layout.place(select);
  await snapshot.fragments((fragment) => body.fill(fragment));
  return body.done();
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
  /** Each visited fragment's body length, by visiting order. */
  private readonly bodyLengths: number[] = [];
  private readonly clients: ClientHead[] = [];
  /** Project heads and license chunks by the part key they are filed under (client/project). */
  private readonly projects = new Map<string, ProjectEntry>();
  private validUntil: string | undefined;

  constructor(now: Date) {
    this.nowIso = now.toISOString();
  }

  visit({ clientId, projectId, bytes }: StoredFragment): void {
    const fragment = decodeFragment(bytes);
    const index = this.bodyLengths.push(fragment.body.byteLength) - 1;
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

  /** The body in response order: joints and re-rendered licenses as bytes, stored bodies by index. */
  place(select: ClientSelection | undefined): BodyFill {
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
    return new BodyFill(sequence, this.bodyLengths, this.validUntil);
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

/** The second visit: each stored body copied into its place in the body. */
class BodyFill {
  /** Where each visited fragment's body goes in the body; -1 for one left out. */
  private readonly offsets: number[];
  private readonly pieces: Buffer[] = [];
  private readonly byteLength: number;
  private visited = 0;
  private written = 0;

  constructor(
    sequence: readonly (Uint8Array | number)[],
    private readonly bodyLengths: readonly number[],
    private readonly validUntil: string | undefined,
  ) {
    const length = (item: Uint8Array | number) => (typeof item === "number" ? bodyLengths[item]! : item.byteLength);
    this.byteLength = sequence.reduce<number>((sum, item) => sum + length(item), 0);
    if (this.byteLength <= PIECE_BYTES) this.pieces.push(Buffer.allocUnsafe(this.byteLength));
    else
      for (let at = 0; at < this.byteLength; at += PIECE_BYTES)
        this.pieces.push(takePiece().subarray(0, Math.min(PIECE_BYTES, this.byteLength - at)));
    this.offsets = new Array<number>(bodyLengths.length).fill(-1);
    let at = 0;
    for (const item of sequence) {
      if (typeof item !== "number") this.write(at, item);
      // One place per fragment, or the body would keep bytes it never wrote (a pooled piece's old
      // ones): only corrupt data (two heads naming one client) could list a fragment twice.
      else if (this.offsets[item] !== -1) throw new Error("a dashboard fragment was placed twice in the body");
      else this.offsets[item] = at;
      at += length(item);
    }
  }

  fill({ bytes }: StoredFragment): void {
    const index = this.visited++;
    const at = this.offsets[index];
    const body = fragmentBody(bytes);
    if (at === undefined || body.byteLength !== this.bodyLengths[index])
      throw new Error("a snapshot's fragments differed between two visits");
    if (at >= 0) this.write(at, body);
  }

  done(): RenderedDashboard {
    if (this.visited !== this.offsets.length) throw new Error("a snapshot's fragments differed between two visits");
    // Sent only once every byte is written: the pieces are not zeroed, and may be a body's before.
    if (this.written !== this.byteLength) throw new Error("a dashboard body was not written whole");
    const { pieces, byteLength, validUntil } = this;
    let released = pieces.length === 1;
    const release = () => {
      if (!released) givePieces(pieces); // once: a piece given back twice would serve two bodies
      released = true;
    };
    return { pieces, byteLength, validUntil, release };
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
