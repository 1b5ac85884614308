// Recently served dashboards, so that a hot dashboard is not read and assembled again on
// every request. An entry is served only while the stored read-model version (the owner's, or the
// client's for one client's view) is still the one it was rendered from (the caller reads it: one
// point read) and no ACTIVE license in it has passed its end; the cache is bounded in entries and
// in bytes, least recently used out first. Its version and validUntil also make the ETag. Beside a
// body it keeps the body's compressed forms once made, so a hot dashboard is compressed once per
// coding rather than per request; they count in its bytes.

import type { ContentCoding } from "./contentCoding.ts";
import type { RenderedDashboard } from "./renderDashboard.ts";

export interface CachedDashboard {
  /** The read-model version the body was rendered from (the owner's, or the client's when filtered). */
  version: number;
  /** The body; its validUntil says from when it is wrong (an ACTIVE license in it has expired). */
  dashboard: RenderedDashboard;
}

interface Entry extends CachedDashboard {
  /** The body's validUntil in milliseconds (Infinity without one): compared on every hit. */
  validUntilMs: number;
  /** The body compressed, per coding. */
  encoded: Map<ContentCoding, Uint8Array>;
  /** The body's bytes and its compressed forms'. */
  bytes: number;
}

export interface DashboardCacheLimits {
  maxEntries: number;
  maxBytes: number;
}

/** The cache key of an owner's dashboard, or of one client's: ids never contain "/". */
export const dashboardKey = (ownerId: string, clientId: string | undefined) => `${ownerId}/${clientId ?? ""}`;

export class DashboardCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly limits: DashboardCacheLimits) {}

  /** The body cached under `key`, if it was rendered from `version` and is still right at `nowMs`. */
  get(key: string, version: number, nowMs: number): RenderedDashboard | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.remove(key, entry);
    // Not `validUntilMs <= nowMs`: a validUntil that did not parse (NaN) counts as passed.
    if (entry.version !== version || !(entry.validUntilMs > nowMs)) return undefined;
    this.add(key, entry); // now the most recently used
    return entry.dashboard;
  }

  set(key: string, { version, dashboard }: CachedDashboard): void {
    const previous = this.entries.get(key);
    if (previous) this.remove(key, previous);
    if (!this.worthKeeping(dashboard.byteLength)) return;
    const validUntilMs =
      dashboard.validUntil === undefined ? Number.POSITIVE_INFINITY : Date.parse(dashboard.validUntil);
    this.add(key, { version, dashboard, validUntilMs, encoded: new Map(), bytes: dashboard.byteLength });
    this.evictBeyondLimits();
  }

  /** `dashboard` compressed in `coding`, if kept beside it under `key`. */
  encodedForm(key: string, dashboard: RenderedDashboard, coding: ContentCoding): Uint8Array | undefined {
    const entry = this.entries.get(key);
    return entry?.dashboard === dashboard ? entry.encoded.get(coding) : undefined;
  }

  /** Keeps `body`, `dashboard` compressed in `coding`, beside it, while `dashboard` is what `key` holds. */
  keepEncodedForm(key: string, dashboard: RenderedDashboard, coding: ContentCoding, body: Uint8Array): void {
    const entry = this.entries.get(key);
    if (entry?.dashboard !== dashboard) return; // replaced or dropped while it was compressed
    const replaced = entry.encoded.get(coding)?.byteLength ?? 0;
    if (!this.worthKeeping(entry.bytes - replaced + body.byteLength)) return;
    entry.encoded.set(coding, body);
    entry.bytes += body.byteLength - replaced;
    this.bytes += body.byteLength - replaced;
    this.evictBeyondLimits();
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  /** An entry larger than a quarter of the cache would push out too much to be worth keeping. */
  private worthKeeping(entryBytes: number): boolean {
    return entryBytes <= this.limits.maxBytes / 4;
  }

  private evictBeyondLimits(): void {
    for (const [oldest, old] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) break;
      this.remove(oldest, old);
    }
  }

  private add(key: string, entry: Entry): void {
    this.entries.set(key, entry);
    this.bytes += entry.bytes;
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }
}
