// gzip and brotli for dashboard bodies, with node:zlib: its asynchronous APIs and streams run in
// libuv's threadpool, so compressing never blocks the event loop. A small body is compressed whole
// (once: the response cache keeps the result); a large one is streamed through a compressor to the
// socket as the socket drains, its compressed form never held whole.
import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import zlib from "node:zlib";
import type { ContentCoding } from "../domain/contentCoding.ts";
import { writePieces } from "./pieceWriter.ts";

const gzip = promisify(zlib.gzip);
const brotliCompress = promisify(zlib.brotliCompress);

/**
 * Levels, measured on dashboard JSON (CPU per MiB of body, on a busy 2-core machine). A whole body
 * is compressed once and then served from the cache, so it affords gzip's default level 6 (13-18 ms,
 * to 23%) and brotli quality 4 (23-31 ms, to 22%; quality 5 costs 40 ms for no gain). A streamed
 * body is compressed again for every request, so it takes the fastest levels: gzip 1 (9-12 ms, to
 * 26%) and brotli 1 (6-8 ms, to 23-24%).
 */
const WHOLE = { gzipLevel: 6, brotliQuality: 4 };
const STREAMED = { gzipLevel: 1, brotliQuality: 1 };

const brotliOptions = (quality: number, sizeHint: number): zlib.BrotliOptions => ({
  params: {
    [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
    [zlib.constants.BROTLI_PARAM_QUALITY]: quality,
    [zlib.constants.BROTLI_PARAM_SIZE_HINT]: sizeHint,
  },
});

/** A body held in one piece, compressed in the threadpool. */
export function compressWhole(body: Uint8Array, coding: ContentCoding): Promise<Buffer> {
  return coding === "br"
    ? brotliCompress(body, brotliOptions(WHOLE.brotliQuality, body.byteLength))
    : gzip(body, { level: WHOLE.gzipLevel });
}

/**
 * Writes `pieces` compressed in `coding` to `destination` (whose head is sent already) and ends it,
 * piece by piece (writePieces): each piece goes to `written` once the compressor has read it.
 * Resolves true once all of it is sent, false when the destination closed early (the client went
 * away; the compressor is destroyed with it); rejects with the error of taking a piece.
 */
export async function streamCompressed(
  pieces: Iterable<Uint8Array>,
  byteLength: number,
  coding: ContentCoding,
  destination: Writable,
  written: (piece: Uint8Array) => void,
): Promise<boolean> {
  const compressor =
    coding === "br"
      ? zlib.createBrotliCompress(brotliOptions(STREAMED.brotliQuality, byteLength))
      : zlib.createGzip({ level: STREAMED.gzipLevel });
  const sent = pipeline(compressor, destination).then(
    () => true,
    () => false,
  );
  try {
    if (await writePieces(compressor, pieces, written)) compressor.end();
  } catch (error) {
    compressor.destroy();
    await sent;
    throw error;
  }
  return sent;
}
