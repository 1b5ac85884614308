// A license chunk as LMDB stores it (format 7): one record, its fragment, with the projection's
// state of the chunk in the fragment's head. The projection must get back exactly the chunk it
// wrote, and a reader must serve exactly what it would serve of the chunk's plain fragment.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeFragment,
  decodeStoredChunk,
  encodeFragment,
  encodeStoredChunk,
  licenseBytesAt,
  type LicenseChunk,
  type LicensesFragment,
  type Part,
} from "@keybox/read-model";

const ID = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const TIME = fc
  .integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) })
  .map((ms) => new Date(ms).toISOString());

/** A rendered license: any JSON text (not only ASCII), ACTIVE until a time or not. */
const rendered = fc.record(
  {
    order: TIME,
    json: fc.string({ unit: "binary", maxLength: 80 }).map((text) => JSON.stringify({ text })),
    activeUntil: TIME,
  },
  { requiredKeys: ["order", "json"] },
);

/** Entries with distinct ids, in any order (a chunk written before the projection kept them sorted). */
const chunks: fc.Arbitrary<LicenseChunk> = fc
  .uniqueArray(
    fc.record({ id: ID, v: fc.integer({ min: 1, max: 2 ** 31 }), state: fc.option(rendered, { nil: null }) }),
    { selector: (entry) => entry.id, minLength: 1, maxLength: 40 },
  )
  .chain((licenses) =>
    fc.integer({ min: 0, max: 1 << 20 }).map((bytes): LicenseChunk => ({ kind: "licenses", licenses, bytes })),
  );

const NOW = "2025-01-01T00:00:00.000Z";

/** What a reader serves of a licenses fragment at NOW: its head, and each ACTIVE license as of NOW. */
function served(bytes: Uint8Array) {
  const fragment = decodeFragment(bytes) as LicensesFragment;
  return {
    kind: fragment.kind,
    first: fragment.first,
    validUntil: fragment.validUntil,
    body: fragment.body.toString("utf8"),
    active: fragment
      .activeSlots()
      .map((slot) => Buffer.from(licenseBytesAt(fragment.body, slot, NOW)).toString("utf8")),
  };
}

describe("a license chunk stored as its fragment", () => {
  it("decodes to the chunk and revision it was stored with", () => {
    fc.assert(
      fc.property(chunks, fc.integer({ min: 1, max: 2 ** 40 }), (chunk, rev) => {
        const stored = encodeStoredChunk(chunk, rev);
        if (chunk.licenses.every((l) => l.state === null)) {
          expect(stored).toBeNull();
          return;
        }
        const decoded = decodeStoredChunk(stored!)!;
        expect(decoded).toEqual({ chunk, rev });
        // Stored again as it was read, unchanged, it is the same bytes.
        expect(Buffer.from(encodeStoredChunk(decoded.chunk, rev)!)).toEqual(Buffer.from(stored!));
      }),
    );
  });

  it("is served exactly as the chunk's plain fragment", () => {
    fc.assert(
      fc.property(chunks, (chunk) => {
        const plain = encodeFragment(chunk);
        fc.pre(plain !== null);
        expect(served(encodeStoredChunk(chunk, 7)!)).toEqual(served(plain!));
      }),
    );
  });

  it("is told from a chunk's fragment that carries no state (format 6's)", () => {
    fc.assert(
      fc.property(chunks, (chunk) => {
        const plain = encodeFragment(chunk);
        fc.pre(plain !== null);
        expect(decodeStoredChunk(plain!)).toBeNull();
      }),
    );
  });

  const created = { ownerId: "o1", name: "n", createdAt: "2024-01-01T00:00:00.000Z" };
  it.each<[string, Part]>([
    ["client's", { kind: "client", client: { v: 1, state: { id: "c1", email: "e@x.io", ...created } } }],
    [
      "project's",
      { kind: "project", project: { v: 1, state: { id: "p1", clientId: "c1", ...created } }, chunks: 0, ranges: [] },
    ],
  ])("is told from a %s fragment", (_, part) => {
    expect(decodeStoredChunk(encodeFragment(part)!)).toBeNull();
  });
});
