// Assembling a body from a snapshot's fragments in two visits (renderDashboard.ts): the body's
// pieces, the reuse of their memory, and a snapshot that does not hold still.
import { describe, expect, it } from "vitest";
import type { DashboardSnapshot, StoredFragment } from "@keybox/read-model";
import { freePieceCount, PIECE_BYTES } from "../services/query-api/src/domain/bodyPieces.ts";
import { renderDashboard, renderSnapshot } from "../services/query-api/src/domain/renderDashboard.ts";
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

/** A snapshot of `fragments`, visited as a store would; `second` (if given) is what a second visit sees. */
function snapshotOf(fragments: StoredFragment[], second = fragments): DashboardSnapshot {
  let visits = 0;
  return {
    version: 1,
    fragments: async (visit) => {
      for (const fragment of visits++ === 0 ? fragments : second) visit(fragment);
    },
    close: () => {},
  };
}

describe("a rendered dashboard", () => {
  it("is one piece up to a MiB, and pieces of a MiB beyond, that join to the same JSON", async () => {
    const small = renderDashboard(fragmentsOf(10), NOW);
    expect(small.pieces).toHaveLength(1);
    expect(small.pieces[0]!.byteLength).toBe(small.byteLength);

    const fragments = fragmentsOf(1500);
    const large = await renderSnapshot(snapshotOf(fragments), NOW);
    expect(large.byteLength).toBeGreaterThan(2 * PIECE_BYTES);
    expect(large.pieces.map((piece) => piece.byteLength)).toEqual([
      ...Array(large.pieces.length - 1).fill(PIECE_BYTES),
      large.byteLength - (large.pieces.length - 1) * PIECE_BYTES,
    ]);
    const body = JSON.parse(dashboardText(large));
    expect(body.data[0].projects[0].licenses).toHaveLength(1500);
    expect(dashboardText(large)).toBe(dashboardText(renderDashboard(fragments, NOW)));
  });

  it("gives a large body's pieces back once released, once only, and the next one reuses them", async () => {
    const fragments = fragmentsOf(1500);
    const first = await renderSnapshot(snapshotOf(fragments), NOW);
    const before = freePieceCount();
    first.release();
    first.release();
    expect(freePieceCount()).toBe(before + first.pieces.length);
    const second = await renderSnapshot(snapshotOf(fragments), NOW);
    expect(freePieceCount()).toBe(before);
    const reused = new Set(first.pieces.map((piece) => piece.buffer));
    expect(second.pieces.every((piece) => reused.has(piece.buffer))).toBe(true);
    expect(JSON.parse(dashboardText(second)).data[0].projects[0].licenses).toHaveLength(1500);
  });

  it("is refused rather than sent with bytes it never wrote, when corrupt heads list a project twice", () => {
    const fragments = fragmentsOf(1500);
    // A second client head naming the same client, under another key: its projects would be listed twice.
    const client = fragments.find((f) => f.projectId === "")!;
    expect(() => renderDashboard([...fragments, { ...client, clientId: "elsewhere" }], NOW)).toThrow(
      "a dashboard fragment was placed twice in the body",
    );
  });

  it("is refused when a snapshot's second visit differs from its first", async () => {
    const fragments = fragmentsOf(20);
    const fewer = fragments.slice(1);
    await expect(renderSnapshot(snapshotOf(fragments, fewer), NOW)).rejects.toThrow(
      "a snapshot's fragments differed between two visits",
    );
    const changed = fragments.map((f) =>
      f.projectId === "" ? f : { ...f, bytes: Buffer.concat([f.bytes, Buffer.from(" ")]) },
    );
    await expect(renderSnapshot(snapshotOf(fragments, changed), NOW)).rejects.toThrow(
      "a snapshot's fragments differed between two visits",
    );
  });
});
