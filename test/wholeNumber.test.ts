// The one reading of numbers given as text (minSeq, limit, Last-Event-ID, an ETag's validity).
import { describe, expect, it } from "vitest";
import { parseWholeNumber } from "../services/query-api/src/domain/wholeNumber.ts";

describe("a whole number given as text", () => {
  it("is plain decimal digits up to 2^53 - 1, nothing else", () => {
    expect(["0", "7", "41", "9007199254740991"].map(parseWholeNumber)).toEqual([0, 7, 41, 9007199254740991]);
    for (const refused of ["", " 7", "7 ", "+7", "-7", "07", "7.0", "1e3", "0x10", "9007199254740992", "1".repeat(17)])
      expect([refused, parseWholeNumber(refused)]).toEqual([refused, undefined]);
  });
});
