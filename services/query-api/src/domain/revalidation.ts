// Revalidation of GET /dashboard: strong ETags made from the stored read-model version (never from
// the body), and If-None-Match answered from them.
//
// A dashboard's body is a function of three things only: whose dashboard it is (the owner, and the
// client when filtered), the stored parts it is rendered from, and the time, which turns an ACTIVE
// license past its end into EXPIRED. So its ETag names each of them:
//
//   "<version>.<validUntil>.<scope>"
//
// - version: the owner's read-model version, or the client's for a client-filtered read
//   (DashboardStore.version): it moves with every commit that changes what the body shows;
// - validUntil: when the first ACTIVE license in the body reaches its end, in epoch milliseconds,
//   or "-" when none will (RenderedDashboard.validUntil): until then the body stays the same;
// - scope: a short hash of owner and client, so one URL's tag for one owner (or with a clientId
//   in its JSON body) never matches another's.
//
// A tag whose version and scope are the current ones still names the current body while its
// validUntil is ahead: that is decided from the tag and one point read of the version, with no
// fragment read and no render.
import { parseWholeNumber } from "./wholeNumber.ts";
import { createHash } from "node:crypto";

/**
 * Every dashboard answer, 200 or 304: a browser (or other private cache) may keep it but must ask
 * again before each use, which If-None-Match makes cheap; shared caches must not keep it at all.
 */
export const DASHBOARD_CACHE_CONTROL = "private, no-cache";

/** The parsed If-None-Match: `*`, or the opaque tags listed (their quotes and any `W/` removed). */
export type IfNoneMatch = { any: true } | { any: false; tags: string[] };

/** `*`, alone (RFC 9110: If-None-Match = "*" / #entity-tag). */
const ANY: IfNoneMatch = { any: true };

/**
 * One list element at the sticky position: optional whitespace, optionally an entity-tag (its weak
 * prefix `W/`, case-sensitive, and the opaque tag: etagc = %x21 / %x23-7E / obs-text), optional
 * whitespace, then a comma or the end. Empty elements are allowed (RFC 9110 §5.6.1).
 */
const ELEMENT = /[ \t]*(?:(?:W\/)?"([\x21\x23-\x7E\x80-\xFF]*)")?[ \t]*(?:,|$)/y;

/**
 * Parses an If-None-Match value. Undefined when there is none, or when it is not valid (garbage,
 * an unterminated tag, `*` in a list): such a header is ignored and the request answered as if it
 * had none.
 */
export function parseIfNoneMatch(value: string | undefined): IfNoneMatch | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === "*") return ANY;
  const tags: string[] = [];
  let at = 0;
  while (at < value.length) {
    ELEMENT.lastIndex = at;
    const match = ELEMENT.exec(value);
    if (match === null || ELEMENT.lastIndex === at) return undefined;
    if (match[1] !== undefined) tags.push(match[1]);
    at = ELEMENT.lastIndex;
  }
  return tags.length > 0 ? { any: false, tags } : undefined;
}

/** The longest scope cache before it starts again (one entry per owner and client filter asked for). */
const SCOPES_KEPT = 10_000;
const scopes = new Map<string, string>();

/**
 * The scope part of a dashboard's tags: 16 base64url characters (96 bits) of the SHA-256 of the
 * store's identity (a rebuilt store counts versions from 0 again), owner, client and page (see
 * paging.ts). Remembered, since a revalidation is answered with little more work than this.
 */
export function dashboardScope(
  storeIdentity: string,
  ownerId: string,
  clientId: string | undefined,
  page?: string,
): string {
  // The identity is digits and ids never contain ":", "/" or "?", so store, owner, client and page
  // (`?limit=…`) cannot run into each other.
  const key = `${storeIdentity}:${ownerId}/${clientId ?? ""}${page ?? ""}`;
  let scope = scopes.get(key);
  if (scope === undefined) {
    scope = createHash("sha256").update(key).digest("base64url").slice(0, 16);
    if (scopes.size >= SCOPES_KEPT) scopes.clear();
    scopes.set(key, scope);
  }
  return scope;
}

/** The opaque tag (without its quotes) of a body rendered from `version` that stays right until `validUntil` (ISO). */
export function dashboardTag(scope: string, version: number, validUntil: string | undefined): string {
  return `${version}.${validUntil === undefined ? "-" : Date.parse(validUntil)}.${scope}`;
}

/** An opaque tag as an ETag header value: quoted, strong. */
export const etagValue = (tag: string) => `"${tag}"`;

/**
 * The tag of one content coding of a body: a strong validator names one representation, so a
 * compressed body's tag carries its coding (`<tag>.gzip`, `<tag>.br`).
 */
export const codedTag = (tag: string, coding: "identity" | "gzip" | "br") =>
  coding === "identity" ? tag : `${tag}.${coding}`;

/**
 * What every dashboard answer carries: its body depends on Accept-Encoding, compressed or not; its
 * validator names the representation sent (`tag` in `coding`); caches must ask before reuse.
 */
export function dashboardHeaders(
  tag: string,
  coding: "identity" | "gzip" | "br",
  extra: Record<string, string>,
): Record<string, string> {
  const headers: Record<string, string> = {
    ...extra,
    "Content-Type": "application/json",
    Vary: "Accept-Encoding",
    "Cache-Control": DASHBOARD_CACHE_CONTROL,
    ETag: etagValue(codedTag(tag, coding)),
  };
  if (coding !== "identity") headers["Content-Encoding"] = coding;
  return headers;
}

/** A 304's headers: the body the client holds under `tag` (as it sent it) is still the current one. */
export function notModifiedHeaders(tag: string, extra?: Record<string, string>): Record<string, string> {
  // A literal of fixed shape: the fast path sends one per revalidation, with nothing extra.
  const headers = { "Cache-Control": DASHBOARD_CACHE_CONTROL, ETag: etagValue(tag), Vary: "Accept-Encoding" };
  return extra ? { ...extra, ...headers } : headers;
}

/**
 * A tag without its coding, when the client may use the representation it names: one without a
 * coding, or one in the coding this request would be answered in (`negotiated`). Every coding of a
 * current body has the same content, but a 304 must not point a client at a coding it no longer
 * accepts. Undefined for a tag of another coding.
 */
export function uncodedTag(tag: string, negotiated: "identity" | "gzip" | "br"): string | undefined {
  const coding = /\.(gzip|br)$/.exec(tag);
  if (coding === null) return tag;
  return coding[1] === negotiated ? tag.slice(0, coding.index) : undefined;
}

/**
 * The first of `tags` that still names the current body of `scope` at `version`: made by
 * dashboardTag from the same version and scope, with its validUntil still ahead of `nowMs`. Weak
 * comparison, as RFC 9110 asks for If-None-Match: the tags came without their `W/`.
 */
export function stillCurrent(
  tags: readonly string[],
  scope: string,
  version: number,
  nowMs: number,
  negotiated: "identity" | "gzip" | "br",
): string | undefined {
  const prefix = `${version}.`;
  const suffix = `.${scope}`;
  for (const tag of tags) {
    const uncoded = uncodedTag(tag, negotiated);
    if (uncoded === undefined || !uncoded.startsWith(prefix) || !uncoded.endsWith(suffix)) continue;
    const until = uncoded.slice(prefix.length, uncoded.length - suffix.length);
    if (until === "-" || nowMs < (parseWholeNumber(until) ?? 0)) return tag;
  }
  return undefined;
}
