// The query API's response cache on its own: an entry is served only for the version it was
// rendered from and until its first ACTIVE license expires; it stays within its bounds.
import { describe, expect, it } from "vitest";
import { DashboardCache, dashboardKey } from "../services/query-api/src/domain/dashboardCache.ts";
import { wholeDashboard } from "./support/inMemory.ts";

/** A rendered dashboard of `text`, right until `validUntil`. */
const dashboard = (text: string, validUntil?: string) => wholeDashboard(new TextEncoder().encode(text), validUntil);
const T = "2026-01-01T00:00:00.000Z";
const LATER = "2026-06-01T00:00:00.000Z";

describe("the dashboard cache", () => {
  it("serves an entry only for the version it was rendered from", () => {
    const cache = new DashboardCache({ maxEntries: 10, maxBytes: 1 << 20 });
    cache.set(dashboardKey("o", undefined), { version: 3, dashboard: dashboard("v3") });
    expect(cache.get(dashboardKey("o", undefined), 3, Date.parse(T))).toEqual(dashboard("v3"));
    expect(cache.get(dashboardKey("o", "c"), 3, Date.parse(T))).toBeUndefined();
    expect(cache.get(dashboardKey("o", undefined), 4, Date.parse(T))).toBeUndefined();
    expect(cache.size.entries).toBe(0); // a stale entry is dropped when found
  });

  it("stops serving an entry when an ACTIVE license in it reaches its end", () => {
    const cache = new DashboardCache({ maxEntries: 10, maxBytes: 1 << 20 });
    cache.set("k", { version: 1, dashboard: dashboard("active", LATER) });
    expect(cache.get("k", 1, Date.parse(T))).toEqual(dashboard("active", LATER));
    expect(cache.get("k", 1, Date.parse(LATER))).toBeUndefined();
  });

  it("keeps within its entry and byte bounds, dropping the least recently used first", () => {
    const cache = new DashboardCache({ maxEntries: 2, maxBytes: 100 });
    cache.set("a", { version: 1, dashboard: dashboard("a".repeat(20)) });
    cache.set("b", { version: 1, dashboard: dashboard("b".repeat(20)) });
    cache.get("a", 1, Date.parse(T)); // a is now more recent than b
    cache.set("c", { version: 1, dashboard: dashboard("c".repeat(20)) });
    expect(cache.get("b", 1, Date.parse(T))).toBeUndefined();
    expect(cache.get("a", 1, Date.parse(T))).toBeDefined();
    expect(cache.get("c", 1, Date.parse(T))).toBeDefined();
    cache.set("d", { version: 1, dashboard: dashboard("d".repeat(24)) }); // 44 bytes in 2 entries
    expect(cache.size).toEqual({ entries: 2, bytes: 44 });
    cache.set("huge", { version: 1, dashboard: dashboard("h".repeat(26)) }); // over a quarter
    expect(cache.get("huge", 1, Date.parse(T))).toBeUndefined();
    expect(cache.size.bytes).toBeLessThanOrEqual(100);
  });

  it("keeps a body's compressed forms beside it, counted in its bytes and gone with it", () => {
    const cache = new DashboardCache({ maxEntries: 10, maxBytes: 100 });
    const body = dashboard("a".repeat(10));
    cache.set("a", { version: 1, dashboard: body });
    cache.keepEncodedForm("a", body, "gzip", new Uint8Array(5));
    cache.keepEncodedForm("a", body, "br", new Uint8Array(4));
    expect(cache.encodedForm("a", body, "gzip")).toHaveLength(5);
    expect(cache.encodedForm("a", body, "br")).toHaveLength(4);
    expect(cache.size).toEqual({ entries: 1, bytes: 19 });
    // A form made again replaces the first, not adds to it.
    cache.keepEncodedForm("a", body, "gzip", new Uint8Array(6));
    expect(cache.size.bytes).toBe(20);
    // A form that would take the entry over a quarter of the cache is not kept.
    cache.keepEncodedForm("a", body, "br", new Uint8Array(10));
    expect(cache.encodedForm("a", body, "br")).toHaveLength(4);

    // A newer body under the key has none of the old one's forms, and takes none made from it.
    const newer = dashboard("b".repeat(10));
    cache.set("a", { version: 2, dashboard: newer });
    expect(cache.size.bytes).toBe(10);
    expect(cache.encodedForm("a", newer, "gzip")).toBeUndefined();
    cache.keepEncodedForm("a", body, "gzip", new Uint8Array(5));
    expect(cache.encodedForm("a", newer, "gzip")).toBeUndefined();
    expect(cache.size.bytes).toBe(10);

    // Compressed forms push out the least recently used entries like bodies do.
    for (const key of ["b", "c", "d", "e", "f", "g", "h"])
      cache.set(key, { version: 1, dashboard: dashboard("x".repeat(12)) });
    expect(cache.size.bytes).toBeLessThanOrEqual(100);
    cache.get("a", 2, Date.parse(T));
    cache.keepEncodedForm("a", newer, "gzip", new Uint8Array(12));
    expect(cache.size.bytes).toBeLessThanOrEqual(100);
    expect(cache.encodedForm("a", newer, "gzip")).toHaveLength(12);
    expect(cache.get("b", 1, Date.parse(T))).toBeUndefined();
  });
});
