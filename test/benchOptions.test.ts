// `npm run bench` arguments: what a run measures, and a clear error for anything else.
import { describe, expect, it } from "vitest";
import { parseOptions } from "../bench/options.ts";

describe("bench options", () => {
  it("runs everything, full, without arguments", () => {
    const { options, only } = parseOptions([]);
    expect(only).toBeUndefined();
    expect(options).toBe(parseOptions([]).options);
    expect(parseOptions(["--quick"]).options).not.toBe(options);
  });

  it("limits a run to the scenarios named, over one --only or several; freshness brings reads", () => {
    expect([...parseOptions(["--only", "drain,live"]).only!].sort()).toEqual(["drain", "live"]);
    expect([...parseOptions(["--only", "drain", "--only", "large"]).only!].sort()).toEqual(["drain", "large"]);
    expect([...parseOptions(["--only", "freshness"]).only!].sort()).toEqual(["freshness", "reads"]);
  });

  it("names what is wrong with bad arguments", () => {
    expect(() => parseOptions(["--only"])).toThrow(/--only needs scenario names/);
    expect(() => parseOptions(["--only", "drain,nope"])).toThrow(/unknown scenario "nope"/);
    expect(() => parseOptions(["--fast"])).toThrow(/unknown argument "--fast"/);
  });
});
