// Assembles the GET /dashboard body from an owner's stored fragments: the projector rendered each
// part's JSON when it wrote it, so a read puts byte ranges in response order (clients, projects
// and license chunks by time, then id) and re-renders only license chunks that a license's expiry
// has overtaken. Nothing of the projection's state is decoded.
import {
  compareOrder,
  decodeFragment,
  licenseBytesAt,
  type ClientFragment,
  type LicensesFragment,
  type LicenseView,
  type ProjectFragment,
  type StoredFragment,
} from "@keybox/read-model";

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
  /** The body's bytes, in order: views of the stored fragments and a few joints. */
  pieces: Uint8Array[];
  byteLength: number;
  /**
   * The first time at which an ACTIVE license in it passes its end and is served as EXPIRED
   * (ISO form); undefined when the body stays right until the read model changes.
   */
  validUntil: string | undefined;
}

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

interface ProjectEntry {
  head: ProjectFragment | undefined;
  chunks: LicensesFragment[];
}

/**
 * Renders the dashboard from an owner's fragments (in any order) as the bytes of a DashboardBody,
 * as of `now`. Deleted entities have no fragment; a project whose client is missing, and licenses
 * whose project is missing, are left out; children that arrived before their parent show once it
 * exists. A page (see paging.ts) is rendered from its clients' fragments and carries `nextCursor`
 * after the counts.
 */
export function renderDashboard(
  stored: readonly StoredFragment[],
  now: Date,
  page?: { nextCursor: string | null },
): RenderedDashboard {
  const nowIso = now.toISOString();
  const clients: ClientFragment[] = [];
  const projects = new Map<string, ProjectEntry>();
  for (const { clientId, projectId, bytes } of stored) {
    const fragment = decodeFragment(bytes);
    if (fragment.kind === "client") {
      clients.push(fragment);
      continue;
    }
    // Licenses are filed under their project's part key, as the project head is.
    const key = `${clientId}/${projectId}`;
    let entry = projects.get(key);
    if (!entry) {
      entry = { head: undefined, chunks: [] };
      projects.set(key, entry);
    }
    if (fragment.kind === "project") entry.head = fragment;
    else entry.chunks.push(fragment);
  }
  const projectsByClient = new Map<string, ProjectEntry[]>();
  for (const entry of projects.values()) {
    if (!entry.head) continue;
    const list = projectsByClient.get(entry.head.clientId) ?? [];
    list.push(entry);
    projectsByClient.set(entry.head.clientId, list);
  }

  const out = new Output();
  out.push(COMMA); // replaced by the opening once the counts are known
  let projectsCount = 0;
  clients.sort((a, b) => compareOrder(a.order, b.order));
  for (const [n, client] of clients.entries()) {
    if (n > 0) out.push(COMMA);
    out.push(client.body);
    const listed = (projectsByClient.get(client.order[1]) ?? []).sort((a, b) =>
      compareOrder(a.head!.order, b.head!.order),
    );
    for (const [m, { head, chunks }] of listed.entries()) {
      if (m > 0) out.push(COMMA);
      out.push(head!.body);
      out.licenses(chunks, nowIso);
      out.push(CLOSE);
    }
    projectsCount += listed.length;
    out.push(CLOSE);
  }
  out.push(CLOSE);
  out.replaceFirst(
    utf8.encode(
      `{"message":"Dashboard fetched successfully","clientsCount":${clients.length},"projectsCount":${projectsCount},${
        page ? `"nextCursor":${JSON.stringify(page.nextCursor)},` : ""
      }"data":[`,
    ),
  );
  return { pieces: out.pieces, byteLength: out.byteLength, validUntil: out.validUntil };
}

/** The body being assembled, and until when it stays right. */
class Output {
  readonly pieces: Uint8Array[] = [];
  byteLength = 0;
  validUntil: string | undefined;

  push(piece: Uint8Array): void {
    this.pieces.push(piece);
    this.byteLength += piece.byteLength;
  }

  replaceFirst(piece: Uint8Array): void {
    this.byteLength += piece.byteLength - this.pieces[0]!.byteLength;
    this.pieces[0] = piece;
  }

  private until(activeUntil: string | null, nowIso: string): void {
    if (
      activeUntil !== null &&
      activeUntil > nowIso &&
      (this.validUntil === undefined || activeUntil < this.validUntil)
    )
      this.validUntil = activeUntil;
  }

  /**
   * A project's licenses. The projector keeps each chunk to its own range of the order, so the
   * chunks' bodies are joined as they are, in the order of their first licenses; only a chunk
   * with an expired license is re-rendered.
   */
  licenses(chunks: LicensesFragment[], nowIso: string): void {
    chunks.sort((a, b) => compareOrder(a.first, b.first));
    let first = true;
    const separate = () => {
      if (!first) this.push(COMMA);
      first = false;
    };
    for (const chunk of chunks) {
      separate();
      if (chunk.validUntil === null || chunk.validUntil > nowIso) {
        this.push(chunk.body);
        this.until(chunk.validUntil, nowIso);
        continue;
      }
      // Only the licenses past their end are re-rendered; the stretches between them (commas
      // included) are served as stored.
      let from = 0;
      for (const slot of chunk.activeSlots()) {
        this.until(slot.activeUntil, nowIso);
        if (slot.activeUntil > nowIso) continue;
        if (slot.start > from) this.push(chunk.body.subarray(from, slot.start));
        this.push(licenseBytesAt(chunk.body, slot, nowIso));
        from = slot.end;
      }
      if (from < chunk.body.byteLength) this.push(chunk.body.subarray(from));
    }
  }
}
