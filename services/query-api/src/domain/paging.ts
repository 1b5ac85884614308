// Paging GET /dashboard over clients, in response order. A cursor is the position after the last
// client served (its order key: createdAt, then id), never an offset, so a walk over a tenant that
// changes meanwhile serves every client that exists throughout exactly once: clients created or
// deleted before the position shift nothing after it.
import { parseWholeNumber } from "./wholeNumber.ts";
import { idSchema } from "@keybox/contract";
import { compareOrder, type OrderKey } from "@keybox/read-model";
import type { ClientSelection } from "./renderDashboard.ts";

export interface PageRequest {
  /** The most clients the page holds. */
  limit: number;
  /** The page starts after this order key; undefined for the first page. */
  after: OrderKey | undefined;
  /** The cursor as given (canonical, since decoding is strict): part of the cache key. */
  cursor: string | undefined;
}

export type PageInput = { ok: true; page: PageRequest | undefined } | { ok: false; message: string };

/** Longer than any cursor this API issues (about 140 characters for 64-character ids). */
const MAX_CURSOR_LENGTH = 256;
const CURSOR_PATTERN = /^[A-Za-z0-9_-]+$/;

/** The cursor of the position after `order`: base64url of `[time, id]` as JSON. Opaque to clients. */
function encodeCursor(order: OrderKey): string {
  return Buffer.from(JSON.stringify(order), "utf8").toString("base64url");
}

/** The order key a cursor holds, or undefined for anything this API did not issue. */
function decodeCursor(cursor: string): OrderKey | undefined {
  if (cursor.length > MAX_CURSOR_LENGTH || !CURSOR_PATTERN.test(cursor)) return undefined;
  const text = Buffer.from(cursor, "base64url").toString("utf8");
  // Node's decoder skips what it cannot read; only the one canonical spelling is accepted.
  if (Buffer.from(text, "utf8").toString("base64url") !== cursor) return undefined;
  let key: unknown;
  try {
    key = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(key) || key.length !== 2) return undefined;
  const [time, id] = key as unknown[];
  if (typeof time !== "string" || !isCanonicalTime(time) || !idSchema.safeParse(id).success) return undefined;
  return [time, id as string];
}

/** Times are stored and ordered in their `toISOString()` form. */
function isCanonicalTime(time: string): boolean {
  const ms = Date.parse(time);
  return !Number.isNaN(ms) && new Date(ms).toISOString() === time;
}

/**
 * The paging parameters of a request (`limit`, `cursor`, each at most once). No paging without
 * either; a cursor without a limit gets pages of `maxLimit` clients.
 */
export function readPageRequest(
  limits: readonly string[] | undefined,
  cursors: readonly string[] | undefined,
  maxLimit: number,
): PageInput {
  if (limits === undefined && cursors === undefined) return { ok: true, page: undefined };
  const invalidLimit = { ok: false, message: `Invalid limit: must be a whole number from 1 to ${maxLimit}` } as const;
  let limit = maxLimit;
  if (limits !== undefined) {
    const asked = limits.length === 1 ? parseWholeNumber(limits[0]!) : undefined;
    if (asked === undefined || asked < 1 || asked > maxLimit) return invalidLimit;
    limit = asked;
  }
  const cursor = cursors?.[0];
  const after = cursor === undefined ? undefined : decodeCursor(cursor);
  if (cursors !== undefined && (cursors.length !== 1 || after === undefined))
    return { ok: false, message: "Invalid cursor: pass nextCursor from the previous page as it is" };
  return { ok: true, page: { limit, after, cursor } };
}

/**
 * The clients of a page, from all of an owner's clients in response order: those after the
 * cursor's position, at most `limit`, and nextCursor when more follow.
 */
export function pageSelection({ limit, after }: PageRequest): ClientSelection {
  return (clients) => {
    const next = after === undefined ? 0 : clients.findIndex((order) => compareOrder(order, after) > 0);
    const from = next === -1 ? clients.length : next;
    const to = Math.min(from + limit, clients.length);
    return { from, to, nextCursor: to < clients.length ? encodeCursor(clients[to - 1]!) : null };
  };
}

/**
 * What tells a page's body from the whole dashboard's and from other pages': appended to its cache
 * key and hashed into its ETag's scope (ids never contain "?").
 */
export const pageKey = ({ limit, cursor }: PageRequest) => `?limit=${limit}&cursor=${cursor ?? ""}`;
