// Assembling a body from a snapshot's fragments (renderDashboard.ts), in two visits or streamed by
// reads by key: the body's pieces, the reuse of their memory, the snapshot's end, and a snapshot
// that does not hold still.
import { describe, expect, it } from "vitest";
import type { DashboardSnapshot, StoredFragment } from "@keybox/read-model";
import { freePieceCount, givePieces, PIECE_BYTES, takePiece } from "../services/query-api/src/domain/bodyPieces.ts";
import {
  LargeBodyRefusedError,
  renderDashboard,
  renderSnapshot,
} from "../services/query-api/src/domain/renderDashboard.ts";
import { clientCreated, licenseEvent, projectCreated } from "./support/events.ts";
import { dashboardText, ownerFragments, project, toEvent } from "./support/inMemory.ts";

const NOW = new Date("2026-01-01T00:00:00.000Z");
const OWNER = "pieceOwner";

/** An owner with `licenses` licenses of about 2 KB each under one client and project. */
function fragmentsOf(licenses: number): StoredFragment[] {
  const place = { clientId: "c1", projectId: "p1" };
  const events = [
    clientCreated(OWNER, "c1"),
    projectCreated(OWNER, "p1", { clientId: "c1" }),
    ...Array.from({ length: licenses }, (_, i) =>
      licenseEvent(OWNER, `l${String(i).padStart(5, "0")}`, { ...place, services: ["x".repeat(2000)] }),
    ),
  ];
  return ownerFragments(project(events.map(toEvent)), OWNER);
}

/**
 * A snapshot of `fragments`, visited as a store would; `second` (if given) is what a later visit
 * or read sees. With `byKey`, it also reads a fragment by key as LMDB does: into one scratch buffer
 * that the next read overwrites, as `otherRead` does (another request's read, all of it). `closed`
 * counts close() calls.
 */
function snapshotOf(fragments: StoredFragment[], { second = fragments, byKey = false } = {}) {
  let visits = 0;
  const scratch = Buffer.alloc(1 << 16);
  const stored = new Map(second.map((f) => [`${f.clientId}/${f.projectId}/${f.chunk}`, f.bytes]));
  const snapshot: DashboardSnapshot & { closed: number; otherRead: () => void } = {
    version: 1,
    closed: 0,
    otherRead: () => scratch.fill("!"),
    fragments: async (visit) => {
      for (const fragment of visits++ === 0 ? fragments : second) visit(fragment);
    },
    close: () => {
      snapshot.closed++;
    },
  };
  if (byKey)
    snapshot.fragment = (clientId, projectId, chunk) => {
      const bytes = stored.get(`${clientId}/${projectId}/${chunk}`);
      if (!bytes) return undefined;
      scratch.set(bytes);
      return scratch.subarray(0, bytes.byteLength);
    };
  return snapshot;
}

const KINDS = [
  { kind: "assembled from a second visit", byKey: false },
  { kind: "streamed by reads by key", byKey: true },
] as const;

describe("a rendered dashboard", () => {
  it("is one buffer up to a MiB", () => {
    const small = renderDashboard(fragmentsOf(10), NOW);
    expect(small.whole?.byteLength).toBe(small.byteLength);
    expect([...small.pieces()]).toEqual([small.whole]);
  });

  describe.each(KINDS)("beyond a MiB, $kind", ({ byKey }) => {
    it("is pieces of a MiB (the last less) that join to the same JSON, its snapshot closed once", async () => {
      const fragments = fragmentsOf(1500);
      const snapshot = snapshotOf(fragments, { byKey });
      const large = await renderSnapshot(snapshot, NOW);
      expect({ whole: large.whole, streamed: large.streamed }).toEqual({ whole: undefined, streamed: byKey });
      expect(large.byteLength).toBeGreaterThan(2 * PIECE_BYTES);
      const pieces: Uint8Array[] = [];
      for (const piece of large.pieces()) pieces.push(Buffer.from(piece)); // each as it was when taken
      expect(pieces.map((piece) => piece.byteLength)).toEqual([
        ...Array(pieces.length - 1).fill(PIECE_BYTES),
        large.byteLength - (pieces.length - 1) * PIECE_BYTES,
      ]);
      const text = Buffer.concat(pieces).toString("utf8");
      expect(JSON.parse(text).data[0].projects[0].licenses).toHaveLength(1500);
      expect(text).toBe(dashboardText(renderDashboard(fragments, NOW)));
      large.release();
      expect(snapshot.closed).toBe(1);
    });

    it("is refused when what the snapshot holds differs from its first visit", async () => {
      const fragments = fragmentsOf(1500);
      const changed = fragments.map((f) =>
        f.projectId === "" ? f : { ...f, bytes: Buffer.concat([f.bytes, Buffer.from(" ")]) },
      );
      for (const second of [fragments.slice(1), changed]) {
        const snapshot = snapshotOf(fragments, { second, byKey });
        // Assembled: while rendering; streamed: while its pieces are taken.
        await expect(renderSnapshot(snapshot, NOW).then((body) => [...body.pieces()])).rejects.toThrow(
          "a snapshot's fragments differed from their layout",
        );
      }
    });
  });

  it("gives an assembled body's pieces back, each once, and the next one reuses them", async () => {
    const fragments = fragmentsOf(1500);
    const first = await renderSnapshot(snapshotOf(fragments), NOW);
    const before = freePieceCount();
    const pieces = [...first.pieces()];
    for (const piece of [...pieces, ...pieces]) first.recycle(piece);
    expect(freePieceCount()).toBe(before + pieces.length);
    const second = await renderSnapshot(snapshotOf(fragments), NOW);
    expect(freePieceCount()).toBe(before);
    const reused = new Set(pieces.map((piece) => piece.buffer));
    expect([...second.pieces()].every((piece) => reused.has(piece.buffer))).toBe(true);
    expect(JSON.parse(dashboardText(second)).data[0].projects[0].licenses).toHaveLength(1500);
  });

  it("streamed, holds no more than two pieces of memory when each is given back once sent", async () => {
    const fragments = fragmentsOf(3000);
    const snapshot = snapshotOf(fragments, { byKey: true });
    const large = await renderSnapshot(snapshot, NOW);
    expect(snapshot.closed).toBe(0); // held for the pieces
    const memory = new Set<ArrayBufferLike>();
    const taken: Uint8Array[] = [];
    for (const piece of large.pieces()) {
      memory.add(piece.buffer);
      taken.push(Buffer.from(piece));
      // Another request reads meanwhile, overwriting the scratch a straddling fragment was read into.
      snapshot.otherRead();
      large.recycle(piece);
    }
    expect(taken.length).toBeGreaterThan(4);
    expect(memory.size).toBeLessThanOrEqual(2);
    expect(Buffer.concat(taken).toString("utf8")).toBe(dashboardText(renderDashboard(fragments, NOW)));
    expect(snapshot.closed).toBe(1); // by the last piece
    large.release();
    expect(snapshot.closed).toBe(1);
  });

  it("streamed and released before its pieces are all taken, ends its snapshot then", async () => {
    const snapshot = snapshotOf(fragmentsOf(1500), { byKey: true });
    const large = await renderSnapshot(snapshot, NOW);
    const pieces = large.pieces()[Symbol.iterator]();
    pieces.next();
    large.release();
    large.release();
    expect(snapshot.closed).toBe(1);
  });

  it("leaves out heads filed under another client's key (corrupt), never showing them twice", async () => {
    const fragments = fragmentsOf(1500);
    const client = fragments.find((f) => f.projectId === "")!;
    const project = fragments.find((f) => f.projectId !== "" && f.chunk === 0)!;
    const corrupt = [...fragments, { ...client, clientId: "elsewhere" }, { ...project, clientId: "elsewhere" }];
    const expected = dashboardText(renderDashboard(fragments, NOW));
    expect(dashboardText(renderDashboard(corrupt, NOW))).toBe(expected);
    const snapshot = snapshotOf(corrupt, { byKey: true });
    expect(dashboardText(await renderSnapshot(snapshot, NOW))).toBe(expected);
  });

  it("is assembled whole, its snapshot closed at once, when streaming is not allowed", async () => {
    const fragments = fragmentsOf(1500);
    const snapshot = snapshotOf(fragments, { byKey: true });
    const large = await renderSnapshot(snapshot, NOW, { stream: false });
    expect({ streamed: large.streamed, closed: snapshot.closed }).toEqual({ streamed: false, closed: 1 });
    expect(dashboardText(large)).toBe(dashboardText(renderDashboard(fragments, NOW)));
  });

  it("asks `admit` before assembling a large body, and takes no memory when refused", async () => {
    const fragments = fragmentsOf(1500);
    const asked: number[] = [];
    const admit = (refuse: boolean) => (bytes: number) => {
      asked.push(bytes);
      return !refuse;
    };
    givePieces([takePiece()]); // a free piece at least, which a body taking memory would take
    const freeBefore = freePieceCount();
    const refusing = snapshotOf(fragments);
    await expect(renderSnapshot(refusing, NOW, { admit: admit(true) })).rejects.toBeInstanceOf(LargeBodyRefusedError);
    expect({ closed: refusing.closed, free: freePieceCount() }).toEqual({ closed: 1, free: freeBefore });
    const whole = renderDashboard(fragments, NOW);
    expect(asked).toEqual([whole.byteLength]);
    const admitted = await renderSnapshot(snapshotOf(fragments), NOW, { admit: admit(false) });
    expect(dashboardText(admitted)).toBe(dashboardText(whole));
    // Neither a streamed body nor one up to a MiB is asked.
    await renderSnapshot(snapshotOf(fragments, { byKey: true }), NOW, { admit: admit(true) });
    await renderSnapshot(snapshotOf(fragmentsOf(10)), NOW, { admit: admit(true) });
    expect(asked).toHaveLength(2);
  });
});
