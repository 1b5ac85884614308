// Writing a large body piece by piece (adapters/pieceWriter.ts), to a real node:stream Writable whose
// writes complete only when the test says so: at most two pieces unwritten, a turn between pieces,
// each piece given back once written, stopping when the destination is destroyed.
import { Writable } from "node:stream";
import { setImmediate } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { writePieces } from "../services/query-api/src/adapters/pieceWriter.ts";

/** A destination whose writes wait until `complete()` finishes the oldest one. */
function heldDestination() {
  const pending: (() => void)[] = [];
  const received: string[] = [];
  const destination = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _encoding, callback) {
      received.push(chunk.toString());
      pending.push(() => callback());
    },
  });
  return { destination, received, complete: () => pending.shift()?.(), pendingCount: () => pending.length };
}

/** Pieces "0".."n-1", noting when each is taken. */
function* counted(n: number, taken: number[]) {
  for (let i = 0; i < n; i++) {
    taken.push(i);
    yield Buffer.from(String(i));
  }
}

describe("writing a large body piece by piece", () => {
  it("takes the next piece only while fewer than two are unwritten, and gives each back once written", async () => {
    const { destination, received, complete, pendingCount } = heldDestination();
    const taken: number[] = [];
    const written: string[] = [];
    const done = writePieces(destination, counted(5, taken), (piece) => written.push(piece.toString()));
    await setImmediate();
    await setImmediate();
    expect({ taken: taken.length, written }).toEqual({ taken: 2, written: [] }); // waiting: two unwritten
    for (let i = 0; i < 5; i++) {
      while (pendingCount() === 0) await setImmediate();
      complete();
      await setImmediate();
    }
    expect(await done).toBe(true);
    expect({ received, written }).toEqual({ received: ["0", "1", "2", "3", "4"], written: ["0", "1", "2", "3", "4"] });
  });

  it("lets other work run between two pieces", async () => {
    const destination = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    const order: string[] = [];
    const pieces = (function* () {
      for (let i = 0; i < 3; i++) {
        order.push(`piece ${i}`);
        // Other work scheduled now runs before the next piece is taken.
        globalThis.setImmediate(() => order.push(`other ${i}`));
        yield Buffer.from("x");
      }
    })();
    expect(await writePieces(destination, pieces, () => {})).toBe(true);
    expect(order).toEqual(["piece 0", "other 0", "piece 1", "other 1", "piece 2", "other 2"]);
  });

  it("stops, taking no further piece, once the destination is destroyed", async () => {
    const { destination } = heldDestination();
    const taken: number[] = [];
    const written: string[] = [];
    const done = writePieces(destination, counted(10, taken), (piece) => written.push(piece.toString()));
    await setImmediate();
    await setImmediate();
    destination.destroy(); // the client left: the pending writes never complete
    expect(await done).toBe(false);
    expect({ taken: taken.length, written }).toEqual({ taken: 2, written: [] });
  });

  it("rejects with the error of taking a piece", async () => {
    const destination = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    const pieces = (function* () {
      yield Buffer.from("a");
      throw new Error("a snapshot's fragments differed between two visits");
    })();
    await expect(writePieces(destination, pieces, () => {})).rejects.toThrow("differed between two visits");
  });
});
