// The query API's response cache on its own: an entry is served only for the version it was
// rendered from and until its first ACTIVE license expires; it stays within its bounds.
import { describe, expect, it } from "vitest";
import { DashboardCache, dashboardKey } from "../services/query-api/src/domain/dashboardCache.ts";

/** A rendered dashboard of `text`, right until `validUntil`. */
const dashboard = (text: string, validUntil?: string) => {
  const body = new TextEncoder().encode(text);
  return { pieces: [body], byteLength: body.byteLength, validUntil };
};
const T = "2026-01-01T00:00:00.000Z";
const LATER = "2026-06-01T00:00:00.000Z";

describe("the dashboard cache", () => {
  it("serves an entry only for the version it was rendered from", () => {
    const cache = new DashboardCache({ maxEntries: 10, maxBytes: 1 << 20 });
    cache.set(dashboardKey("o", undefined), { version: 3, dashboard: dashboard("v3") });
    expect(cache.get(dashboardKey("o", undefined), 3, T)).toEqual(dashboard("v3"));
    expect(cache.get(dashboardKey("o", "c"), 3, T)).toBeUndefined();
    expect(cache.get(dashboardKey("o", undefined), 4, T)).toBeUndefined();
    expect(cache.size.entries).toBe(0); // a stale entry is dropped when found
  });

  it("stops serving an entry when an ACTIVE license in it reaches its end", () => {
    const cache = new DashboardCache({ maxEntries: 10, maxBytes: 1 << 20 });
    cache.set("k", { version: 1, dashboard: dashboard("active", LATER) });
    expect(cache.get("k", 1, T)).toEqual(dashboard("active", LATER));
    expect(cache.get("k", 1, LATER)).toBeUndefined();
  });

  it("keeps within its entry and byte bounds, dropping the least recently used first", () => {
    const cache = new DashboardCache({ maxEntries: 2, maxBytes: 100 });
    cache.set("a", { version: 1, dashboard: dashboard("a".repeat(20)) });
    cache.set("b", { version: 1, dashboard: dashboard("b".repeat(20)) });
    cache.get("a", 1, T); // a is now more recent than b
    cache.set("c", { version: 1, dashboard: dashboard("c".repeat(20)) });
    expect(cache.get("b", 1, T)).toBeUndefined();
    expect(cache.get("a", 1, T)).toBeDefined();
    expect(cache.get("c", 1, T)).toBeDefined();
    cache.set("d", { version: 1, dashboard: dashboard("d".repeat(24)) }); // 44 bytes in 2 entries
    expect(cache.size).toEqual({ entries: 2, bytes: 44 });
    cache.set("huge", { version: 1, dashboard: dashboard("h".repeat(26)) }); // over a quarter
    expect(cache.get("huge", 1, T)).toBeUndefined();
    expect(cache.size.bytes).toBeLessThanOrEqual(100);
  });
});
