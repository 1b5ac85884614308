// Accept-Encoding negotiation on its own (RFC 9110 §12.5.3): which coding a dashboard is sent in.
import { describe, expect, it } from "vitest";
import { negotiateCoding } from "../services/query-api/src/domain/contentCoding.ts";

describe("negotiating the content coding", () => {
  it.each([
    ["gzip, deflate, br, zstd", "br"], // a browser: br wins the tie
    ["gzip", "gzip"],
    ["x-gzip", "gzip"],
    ["GZip", "gzip"],
    ["br;q=0.5, gzip;q=0.8", "gzip"],
    ["gzip;q=0.5 , br ; q=0.9", "br"],
    ["br;q=1.000, gzip;q=1", "br"],
    ["*", "br"],
    ["*;q=0.1, br;q=0", "gzip"],
    ["identity;q=0, gzip", "gzip"],
    ["deflate, zstd", "identity"],
    ["gzip;q=0, br;q=0", "identity"],
    ["*;q=0", "identity"],
    ["identity;q=0", "identity"], // nothing else acceptable: uncompressed rather than a 406
    ["identity", "identity"],
    ["identity;q=1, gzip;q=0.5", "identity"],
    ["*;q=0.9, gzip;q=0.5", "br"], // br takes *'s weight, and identity only ties it
    ["identity;q=0.9, gzip;q=0.5", "identity"],
    ["gzip;q=0.5, gzip", "gzip"], // the first mention counts
    ["gzip, gzip;q=0", "gzip"],
    ["", "identity"],
    [" , ,", "identity"],
    [undefined, "identity"],
  ] as const)("%j gives %s", (header, coding) => {
    expect(negotiateCoding(header)).toBe(coding);
  });

  it.each([
    "gzip;q=2",
    "gzip;q=0.1234",
    "gzip;q=",
    "gzip;q=abc",
    "gzip;level=1",
    "gzip br",
    "gzip;q=1.5",
    "br;q=-1",
    'gzip;q="1"',
    "gzip\u00e9",
  ])("takes the malformed %j as no preference: identity", (header) => {
    expect(negotiateCoding(header)).toBe("identity");
  });

  it("answers a header alike every time, however many others came between (answers are remembered)", () => {
    const header = (n: number) => `${["gzip", "br", "identity", "deflate"][n % 4]};q=0.${n % 10}, x-${n}`;
    const expected = (n: number) => (n % 10 === 0 || n % 4 >= 2 ? "identity" : n % 4 === 0 ? "gzip" : "br");
    // Each asked twice in a row (the second answer remembered), 300 distinct ones (most forgotten
    // again), then a few over and over (remembered throughout).
    for (let round = 0; round < 2; round++)
      for (let n = 0; n < 300; n++)
        for (let again = 0; again < 2; again++) expect([n, negotiateCoding(header(n))]).toEqual([n, expected(n)]);
    for (let round = 0; round < 3; round++)
      for (let n = 0; n < 40; n++) expect([n, negotiateCoding(header(n))]).toEqual([n, expected(n)]);
    const long = `${" ".repeat(300)}gzip`; // too long to be remembered, answered all the same
    expect([negotiateCoding(long), negotiateCoding(long)]).toEqual(["gzip", "gzip"]);
  });
});
