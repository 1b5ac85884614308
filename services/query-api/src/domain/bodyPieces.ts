// The memory large bodies are assembled in, reused from one body to the next. The first write to
// each page of fresh memory faults: copying a 22 MiB dashboard into fresh memory took 39 ms of a
// 90 ms read and render (profiled), into memory written before about 3 ms. So the pieces of a body
// that has been sent come back here, and the next large body is copied into the same pages.

/** A large body is assembled in pieces of this size (the last one a view of a whole piece). */
export const PIECE_BYTES = 1024 * 1024;
/** Free pieces kept: one large tenant's body and some; a read needing more allocates them. */
const MAX_FREE_PIECES = 32;

const freePieces: Buffer[] = [];

/** A piece of PIECE_BYTES: a free one if there is one. */
export function takePiece(): Buffer {
  return freePieces.pop() ?? Buffer.allocUnsafeSlow(PIECE_BYTES);
}

/**
 * Gives pieces back for reuse: only once nothing reads them again (the response that sent them
 * has finished). Views are given back as the whole pieces they are views of.
 */
export function givePieces(pieces: readonly Uint8Array[]): void {
  for (const piece of pieces) {
    if (freePieces.length >= MAX_FREE_PIECES) return;
    // Not kept twice if it comes back while still free (a piece kept twice would hold two bodies at
    // once); callers give each piece back once, after its last reader is done with it.
    if (piece.buffer.byteLength !== PIECE_BYTES || piece.byteOffset !== 0) continue;
    if (freePieces.some((free) => free.buffer === piece.buffer)) continue;
    freePieces.push(Buffer.from(piece.buffer, 0, PIECE_BYTES));
  }
}

/** How many free pieces are kept now (for tests). */
export function freePieceCount(): number {
  return freePieces.length;
}
