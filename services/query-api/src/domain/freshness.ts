// Read your own writes: a writer that knows the stream sequence of its event (JetStream's publish
// acknowledgement) asks for a dashboard at least that fresh, with `?minSeq=` or the KeyBox-Min-Seq
// header; the answer says in KeyBox-Fresh whether it is, and in KeyBox-Visible-Seq up to which
// sequence every event is known to be committed.
import { parseWholeNumber } from "./wholeNumber.ts";

/** Whether a sequence is visible, and the highest sequence known visible (undefined: unknown). */
export interface Freshness {
  fresh: boolean;
  visibleSeq: number | undefined;
}

/** Waits, up to its own bound, until every event up to `seq` is committed. */
export interface FreshnessSource {
  /** Rejects with TooManyWaitersError when too many requests wait already. */
  waitFor(seq: number): Promise<Freshness>;
}

export class TooManyWaitersError extends Error {
  override name = "TooManyWaitersError";
}

export const MIN_SEQ_HEADER = "KeyBox-Min-Seq";

export type MinSeqInput = { ok: true; minSeq: number | undefined } | { ok: false };

/**
 * The sequence asked for, from the query string (once) or the header; both may be given only if
 * they agree. A repeated header arrives joined with commas and is refused.
 */
export function readMinSeq(fromQuery: readonly string[] | undefined, fromHeader: string | undefined): MinSeqInput {
  if (fromQuery && fromQuery.length > 1) return { ok: false };
  const given = [fromQuery?.[0], fromHeader].filter((v) => v !== undefined);
  if (given.length === 0) return { ok: true, minSeq: undefined };
  if (!given.every((v) => v === given[0])) return { ok: false };
  const minSeq = parseWholeNumber(given[0]!);
  return minSeq !== undefined && minSeq > 0 ? { ok: true, minSeq } : { ok: false };
}

/** The response headers of an answer to a minSeq request. */
export function freshnessHeaders({ fresh, visibleSeq }: Freshness): Record<string, string> {
  return {
    "KeyBox-Fresh": String(fresh),
    ...(visibleSeq !== undefined && { "KeyBox-Visible-Seq": String(visibleSeq) }),
  };
}
