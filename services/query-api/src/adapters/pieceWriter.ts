// Writing a large dashboard body to a stream (the socket, or a compressor in front of it) piece by
// piece, so that it neither blocks other requests nor sits whole in memory.
import type { Writable } from "node:stream";
import { setImmediate } from "node:timers/promises";

/** Pieces written and not yet reported written at most: one being written, one queued behind it. */
const UNWRITTEN_MAX = 2;

/**
 * Writes `pieces` to `destination` in order. The next piece is taken (a streamed body is filled
 * then) only after a turn of the event loop and while fewer than two written ones are still
 * unwritten, so the destination always has one queued but never a whole large body. Each piece
 * goes to `written` once the destination reports it written (nothing reads it any more then).
 *
 * Resolves true once every piece is handed over (the last may still be unwritten; the destination
 * is not ended), false as soon as the destination is destroyed (the client left, or stalled and was
 * cut off); rejects with the error of taking a piece (a streamed body whose snapshot changed).
 */
export async function writePieces(
  destination: Writable,
  pieces: Iterable<Uint8Array>,
  written: (piece: Uint8Array) => void,
): Promise<boolean> {
  let unwritten = 0;
  let wake: (() => void) | undefined;
  const settle = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  destination.on("close", settle);
  try {
    for (const piece of pieces) {
      unwritten++;
      destination.write(piece, (error) => {
        unwritten--;
        if (!error) written(piece);
        settle();
      });
      while (unwritten >= UNWRITTEN_MAX && !destination.destroyed)
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      if (!destination.destroyed) await setImmediate();
      if (destination.destroyed) return false;
    }
    return true;
  } finally {
    destination.off("close", settle);
  }
}
