// What a live stream tells its client, as pure functions: which notices concern a stream, how
// waiting changes coalesce (bounded), the SSE text, and which Last-Event-IDs count.
import { describe, expect, it } from "vitest";
import {
  changedEvent,
  changeFor,
  changeOfAll,
  coalesce,
  MAX_CLIENTS_PER_CHANGE,
  missedChange,
  parseLastEventId,
} from "../services/query-api/src/domain/liveChanges.ts";

const notice = (version: number, clients: string[]) => ({ ownerId: "o", version, clients });

describe("live changes", () => {
  it("concern an unfiltered stream always, a filtered one only when they name its client", () => {
    expect(changeFor(notice(3, ["a", "b"]), undefined, 0)).toEqual({ version: 3, clients: new Set(["a", "b"]) });
    expect(changeFor(notice(3, ["a", "b"]), "b", 0)).toEqual({ version: 3, clients: new Set(["b"]) });
    expect(changeFor(notice(3, ["a"]), "b", 0)).toBeUndefined();
    expect(changeFor(notice(3, ["__proto__"]), "__proto__", 0)).toEqual({
      version: 3,
      clients: new Set(["__proto__"]),
    });
  });

  it("tell a late notice as the version the stream last told, so its ids never go back", () => {
    expect(changeFor(notice(5, ["a"]), undefined, 8)).toEqual({ version: 8, clients: new Set(["a"]) });
    expect(changeFor(notice(5, ["a"]), "a", 8)).toEqual({ version: 8, clients: new Set(["a"]) });
    expect(changeFor(notice(9, ["a"]), "a", 8)).toEqual({ version: 9, clients: new Set(["a"]) });
    expect(changeFor(notice(9, ["b"]), "a", 8)).toBeUndefined();
  });

  it("a missed change: the client's version for a filtered stream, naming it; else the owner's, extent unknown", () => {
    expect(missedChange("c1", 9, 7)).toEqual({ version: 9, clients: new Set(["c1"]) });
    expect(missedChange(undefined, 9, 7)).toEqual({ version: 9, clients: "all" });
    expect(missedChange("c1", 7, 7)).toBeUndefined();
    // Below what the client saw: a rebuilt store counting again from 0.
    expect(missedChange(undefined, 3, 7)).toEqual({ version: 3, clients: "all" });
    expect(missedChange("c1", 0, 7)).toEqual({ version: 0, clients: new Set(["c1"]) });
  });

  it("coalesce to the newest version and the union of clients, and to 'all' past the bound", () => {
    const first = changeFor(notice(4, ["a"]), undefined, 0);
    const second = changeFor(notice(7, ["b"]), undefined, 0)!;
    expect(coalesce(first, second)).toEqual({ version: 7, clients: new Set(["a", "b"]) });
    expect(coalesce(second, first!)).toEqual({ version: 7, clients: new Set(["b", "a"]) });
    expect(coalesce(first, changeOfAll(5))).toEqual({ version: 5, clients: "all" });
    const many = Array.from({ length: MAX_CLIENTS_PER_CHANGE }, (_, i) => `c${i}`);
    const full = changeFor(notice(1, many), undefined, 0)!;
    expect(full.clients).not.toBe("all");
    expect(coalesce(full, second)).toEqual({ version: 7, clients: "all" });
    expect(changeFor(notice(1, [...many, "one more"]), undefined, 0)!.clients).toBe("all");
  });

  it("are sent as `event: changed` with the version as id", () => {
    expect(changedEvent({ version: 12, clients: new Set(["a", "b"]) })).toBe(
      'event: changed\nid: 12\ndata: {"version":12,"clients":["a","b"]}\n\n',
    );
    expect(changedEvent(changeOfAll(13))).toBe('event: changed\nid: 13\ndata: {"version":13,"all":true}\n\n');
  });

  it("take a Last-Event-ID only when it is a version", () => {
    expect(parseLastEventId("42")).toBe(42);
    expect(parseLastEventId(" 0 ")).toBe(0);
    for (const bad of [undefined, "", "-1", "1.5", "1e3", "abc", "99999999999999999999"])
      expect(parseLastEventId(bad)).toBeUndefined();
  });
});
