// Recently served dashboards, so that a hot dashboard is not read and assembled again on
// every request. An entry is served only while the stored read-model version (the owner's, or the
// client's for one client's view) is still the one it was rendered from (the caller reads it: one
// point read) and no ACTIVE license in it has passed its end; the cache is bounded in entries and
// in bytes, least recently used out first. Its version and validUntil also make the ETag.

import type { RenderedDashboard } from "./renderDashboard.ts";

export interface CachedDashboard {
  /** The read-model version the body was rendered from (the owner's, or the client's when filtered). */
  version: number;
  /** The body; its validUntil says from when it is wrong (an ACTIVE license in it has expired). */
  dashboard: RenderedDashboard;
}

export interface DashboardCacheLimits {
  maxEntries: number;
  maxBytes: number;
}

/** The cache key of an owner's dashboard, or of one client's: ids never contain "/". */
export const dashboardKey = (ownerId: string, clientId: string | undefined) => `${ownerId}/${clientId ?? ""}`;

export class DashboardCache {
  private readonly entries = new Map<string, CachedDashboard>();
  private bytes = 0;

  constructor(private readonly limits: DashboardCacheLimits) {}

  /** The body cached under `key`, if it was rendered from `version` and is still right at `nowIso`. */
  get(key: string, version: number, nowIso: string): RenderedDashboard | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.remove(key, entry);
    const { validUntil } = entry.dashboard;
    if (entry.version !== version || (validUntil !== undefined && validUntil <= nowIso)) return undefined;
    this.add(key, entry); // now the most recently used
    return entry.dashboard;
  }

  set(key: string, entry: CachedDashboard): void {
    const previous = this.entries.get(key);
    if (previous) this.remove(key, previous);
    // A body larger than a quarter of the cache would push out too much to be worth keeping.
    if (entry.dashboard.byteLength > this.limits.maxBytes / 4) return;
    this.add(key, entry);
    for (const [oldest, old] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) break;
      this.remove(oldest, old);
    }
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.entries.size, bytes: this.bytes };
  }

  private add(key: string, entry: CachedDashboard): void {
    this.entries.set(key, entry);
    this.bytes += entry.dashboard.byteLength;
  }

  private remove(key: string, entry: CachedDashboard): void {
    this.entries.delete(key);
    this.bytes -= entry.dashboard.byteLength;
  }
}
