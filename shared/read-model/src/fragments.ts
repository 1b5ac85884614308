// A part as GET /dashboard serves it: its JSON bytes, rendered when the part is written, and the
// little a read needs to put them in response order. A read then copies bytes: it never decodes
// the projection's state, which is what made large dashboards slow.
//
// Encoding: [u32 head length][u32 index length][head][index JSON][body], lengths little-endian.
// The head is a kind byte and length-prefixed ASCII strings (ids and ISO times are ASCII), read on
// every request without a parser; the index (one slot per license) is read only when a chunk
// needs re-rendering for expiry or merging with an overlapping chunk; the body is response JSON.
// A license chunk as LMDB stores it (encodeStoredChunk) also carries the projection's state of the
// chunk at the end of its head, where readers, which read the head's first strings only, skip it.
import { licenseJsonAt, type RenderedLicense } from "./licenseView.ts";
import {
  compareTimeAndId,
  type ClientPart,
  type LicenseChunk,
  type LicenseEntry,
  type OrderKey,
  type Part,
  type ProjectHead,
} from "./shape.ts";

/** A client's opening JSON, up to its projects: `{"_id":…,"owner":…,"projects":[`. */
export interface ClientFragment {
  kind: "client";
  order: OrderKey;
  body: Uint8Array;
}

/** A project's opening JSON, up to its licenses: `{"_id":…,"client":…,"licenses":[`. */
export interface ProjectFragment {
  kind: "project";
  order: OrderKey;
  /** The client the project is listed under. */
  clientId: string;
  body: Uint8Array;
}

/** An ACTIVE license in a chunk's body: its byte range, and until when it is served ACTIVE. */
export interface LicenseSlot {
  start: number;
  end: number;
  activeUntil: string;
}

/** A license chunk's live licenses, in response order, as comma-separated JSON. */
export interface LicensesFragment {
  kind: "licenses";
  /** The first license's order key: chunks hold ranges of the order that do not overlap. */
  first: OrderKey;
  /** The earliest end of an ACTIVE license in it: from then on the body is out of date. */
  validUntil: string | null;
  body: Buffer;
  /** Decodes where its ACTIVE licenses are, in body order (only needed once one has expired). */
  activeSlots(): LicenseSlot[];
}

export type Fragment = ClientFragment | ProjectFragment | LicensesFragment;

const CLIENT = 1;
const PROJECT = 2;
const LICENSES = 3;

/** Index entries as stored: [start, end, activeUntil]. */
type StoredSlot = [number, number, string];

const utf8 = new TextEncoder();
const COMMA = 0x2c;
const str = JSON.stringify;

/** A fragment's body: its length in bytes, and how to write it. */
interface Body {
  length: number;
  writeAt(out: Buffer, at: number): void;
}

const textBody = (text: string): Body => ({
  length: Buffer.byteLength(text, "utf8"),
  writeAt: (out, at) => void out.write(text, at, "utf8"),
});

/**
 * The head's strings, each an ASCII string of at most 255 bytes (ids are 64, times 24 to 27), then
 * `state` (JSON of a StoredChunkState), when given, as a u32 length and its UTF-8 bytes.
 */
function encode(
  kind: number,
  head: readonly string[],
  index: StoredSlot[] | null,
  body: Body,
  state?: string,
): Uint8Array {
  let headLength = 1;
  for (const field of head) {
    // A length byte each, Latin-1 written: anything else would corrupt the head.
    if (field.length > 255 || !/^[\x20-\x7e]*$/.test(field))
      throw new Error(`fragment head field not short ASCII: ${field}`);
    headLength += 1 + field.length;
  }
  const stateLength = state === undefined ? 0 : Buffer.byteLength(state, "utf8");
  if (state !== undefined) headLength += 4 + stateLength;
  const indexBytes = index ? utf8.encode(str(index)) : new Uint8Array(0);
  const out = Buffer.allocUnsafe(8 + headLength + indexBytes.length + body.length);
  out.writeUInt32LE(headLength, 0);
  out.writeUInt32LE(indexBytes.length, 4);
  let at = 8;
  out[at++] = kind;
  for (const field of head) {
    out[at++] = field.length;
    at += out.write(field, at, "latin1");
  }
  if (state !== undefined) {
    out.writeUInt32LE(stateLength, at);
    at += 4 + out.write(state, at + 4, "utf8");
  }
  out.set(indexBytes, at);
  body.writeAt(out, at + indexBytes.length);
  return out;
}

function clientFragment({ client }: ClientPart): string | null {
  const c = client.state;
  if (!c) return null;
  return `{"_id":${str(c.id)},"name":${str(c.name)},"email":${str(c.email)},"owner":${str(c.ownerId)},"projects":[`;
}

function projectFragment({ project }: ProjectHead): string | null {
  const p = project?.state;
  if (!p) return null;
  return `{"_id":${str(p.id)},"name":${str(p.name)},"client":${str(p.clientId)},"licenses":[`;
}

/**
 * The fragment a part is served as, encoded; null when the part shows nothing (a deleted client or
 * project, a project head whose project has not arrived, a chunk of deleted licenses).
 */
export function encodeFragment(part: Part): Uint8Array | null {
  if (part.kind === "client") {
    const body = clientFragment(part);
    const c = part.client.state;
    return body && c ? encode(CLIENT, [c.createdAt, c.id], null, textBody(body)) : null;
  }
  if (part.kind === "project") {
    const body = projectFragment(part);
    const p = part.project?.state;
    return body && p ? encode(PROJECT, [p.createdAt, p.id, p.clientId], null, textBody(body)) : null;
  }
  return encodeLicenses(part);
}

/** A live license of a chunk: its id, rendered state, and where it is in the chunk's `licenses`. */
type LiveLicense = { id: string; state: RenderedLicense; at: number };

const compareLicenses = (a: LiveLicense, b: LiveLicense) => compareTimeAndId(a.state.order, a.id, b.state.order, b.id);

/**
 * A chunk's state as stored in its fragment's head: [rev, bytes, entries], the entries in the
 * chunk's order, a live license as [id, v, order, start, end] (its JSON is body[start, end)) with
 * its activeUntil appended while it has one, a tombstone as [id, v].
 */
type StoredChunkState = [rev: number, bytes: number, entries: StoredEntry[]];
type StoredEntry =
  | [id: string, v: number]
  | [id: string, v: number, order: string, start: number, end: number]
  | [id: string, v: number, order: string, start: number, end: number, activeUntil: string];

/** A chunk's fragment; with `rev`, also its state (see encodeStoredChunk). */
function encodeLicenses(chunk: LicenseChunk, rev?: number): Uint8Array | null {
  const live: LiveLicense[] = [];
  let sorted = true;
  for (let at = 0; at < chunk.licenses.length; at++) {
    const { id, state } = chunk.licenses[at]!;
    if (state === null) continue;
    const license = { id, state, at };
    if (sorted && live.length > 0 && compareLicenses(live[live.length - 1]!, license) > 0) sorted = false;
    live.push(license);
  }
  if (live.length === 0) return null;
  // The projection keeps a chunk's licenses in order (it files each in its place); a chunk written
  // before it did is sorted here.
  if (!sorted) live.sort(compareLicenses);
  let bytes = 0;
  let validUntil: string | null = null;
  const index: StoredSlot[] = [];
  const entries: StoredEntry[] | undefined = rev === undefined ? undefined : [];
  for (let n = 0; n < live.length; n++) {
    const { id, state: license, at } = live[n]!;
    if (n > 0) bytes += 1; // the comma
    // License JSON is ASCII except inside string values; measure it as UTF-8 to place slots right.
    const length = Buffer.byteLength(license.json, "utf8");
    const activeUntil = license.activeUntil ?? null;
    if (activeUntil !== null) index.push([bytes, bytes + length, activeUntil]);
    if (entries) {
      const { v } = chunk.licenses[at]!;
      entries[at] =
        activeUntil === null
          ? [id, v, license.order, bytes, bytes + length]
          : [id, v, license.order, bytes, bytes + length, activeUntil];
    }
    bytes += length;
    if (activeUntil !== null && (validUntil === null || activeUntil < validUntil)) validUntil = activeUntil;
  }
  // Each license's JSON is written straight into the fragment, never joined into one string first.
  const body: Body = {
    length: bytes,
    writeAt: (out, start) => {
      let at = start;
      for (let n = 0; n < live.length; n++) {
        if (n > 0) out[at++] = COMMA;
        at += out.write(live[n]!.state.json, at, "utf8");
      }
    },
  };
  let stored: string | undefined;
  if (rev !== undefined && entries) {
    for (let at = 0; at < chunk.licenses.length; at++) {
      const { id, v, state } = chunk.licenses[at]!;
      if (state === null) entries[at] = [id, v];
    }
    stored = str([rev, chunk.bytes, entries] satisfies StoredChunkState);
  }
  return encode(LICENSES, [live[0]!.state.order, live[0]!.id, validUntil ?? ""], index, body, stored);
}

/**
 * A license chunk as LMDB stores it: its fragment, which readers serve as encodeFragment's, with the
 * chunk's state and revision in its head, so that the projection reads and writes the chunk as one
 * record. Null for a chunk with no live license, which has no fragment to carry its tombstones.
 */
export function encodeStoredChunk(chunk: LicenseChunk, rev: number): Uint8Array | null {
  return encodeLicenses(chunk, rev);
}

/** The chunk and revision encodeStoredChunk stored; null for a fragment that carries no state. */
export function decodeStoredChunk(bytes: Uint8Array): { chunk: LicenseChunk; rev: number } | null {
  const buf = asBuffer(bytes);
  if (buf[8] !== LICENSES) return null;
  let at = 9;
  for (let field = 0; field < 3; field++) at += 1 + buf[at]!;
  if (at === headEnd(buf)) return null;
  const length = buf.readUInt32LE(at);
  const [rev, chunkBytes, entries] = JSON.parse(buf.toString("utf8", at + 4, at + 4 + length)) as StoredChunkState;
  const body = indexEnd(buf);
  const licenses: LicenseEntry[] = [];
  for (const entry of entries) {
    const order = entry[2];
    if (order === undefined) {
      licenses.push({ id: entry[0], v: entry[1], state: null });
      continue;
    }
    const json = buf.toString("utf8", body + entry[3]!, body + entry[4]!);
    const activeUntil = entry[5];
    licenses.push({
      id: entry[0],
      v: entry[1],
      state: activeUntil === undefined ? { order, json } : { order, json, activeUntil },
    });
  }
  return { chunk: { kind: "licenses", licenses, bytes: chunkBytes }, rev };
}

const asBuffer = (bytes: Uint8Array) =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** A fragment's body (response JSON), a view of `bytes`, its head and index skipped unread. */
export function fragmentBody(bytes: Uint8Array): Buffer {
  const buf = asBuffer(bytes);
  return buf.subarray(indexEnd(buf));
}

/** Where a fragment's head ends (its index starts): after the two lengths and the head. */
const headEnd = (buf: Buffer) => 8 + buf.readUInt32LE(0);
/** Where its index ends (its body starts). */
const indexEnd = (buf: Buffer) => headEnd(buf) + buf.readUInt32LE(4);

/** Reads a fragment's head; its body is a view of `bytes`, not a copy. */
export function decodeFragment(bytes: Uint8Array): Fragment {
  const buf = asBuffer(bytes);
  const body = buf.subarray(indexEnd(buf));
  let at = 9;
  const next = () => {
    const length = buf[at]!;
    at += 1 + length;
    return buf.toString("latin1", at - length, at);
  };
  switch (buf[8]) {
    case CLIENT:
      return { kind: "client", order: [next(), next()], body };
    case PROJECT:
      return { kind: "project", order: [next(), next()], clientId: next(), body };
    default: {
      const first: OrderKey = [next(), next()];
      return {
        kind: "licenses",
        first,
        validUntil: next() || null,
        body,
        activeSlots: () =>
          (JSON.parse(buf.toString("utf8", headEnd(buf), indexEnd(buf))) as StoredSlot[]).map(
            ([start, end, activeUntil]) => ({
              start,
              end,
              activeUntil,
            }),
          ),
      };
    }
  }
}

/**
 * A license's JSON from a chunk's body as of `nowIso`: served EXPIRED once an ACTIVE license has
 * passed its end, before any event says so.
 */
export function licenseBytesAt(body: Uint8Array, slot: LicenseSlot, nowIso: string): Uint8Array {
  const bytes = body.subarray(slot.start, slot.end);
  if (slot.activeUntil > nowIso) return bytes;
  const json = asBuffer(bytes).toString("utf8");
  return Buffer.from(licenseJsonAt({ order: "", json, activeUntil: slot.activeUntil }, nowIso), "utf8");
}
