import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";

describe("priority configuration", () => {
  it("defaults to lanes on, no reserved share and a 100 ms yield", () => {
    expect(loadConfig({}, "production").priority).toEqual({ lanes: true, highShare: 0, yieldMs: 100 });
  });

  it("reads HERALD_PRIORITY_LANES, HERALD_RATE_LIMIT_HIGH_SHARE and HERALD_PRIORITY_YIELD_MS", () => {
    expect(
      loadConfig({ HERALD_PRIORITY_LANES: "off", HERALD_RATE_LIMIT_HIGH_SHARE: "0.2", HERALD_PRIORITY_YIELD_MS: "0" }, "production").priority,
    ).toEqual({ lanes: false, highShare: 0.2, yieldMs: 0 });
    expect(loadConfig({ HERALD_PRIORITY_LANES: "ON", HERALD_RATE_LIMIT_HIGH_SHARE: "0" }, "production").priority).toEqual({
      lanes: true,
      highShare: 0,
      yieldMs: 100,
    });
  });

  it("refuses values it cannot honour, naming the variable", () => {
    expect(() => loadConfig({ HERALD_PRIORITY_LANES: "no" }, "production")).toThrow('HERALD_PRIORITY_LANES: expected "on" or "off", got "no"');
    for (const bad of ["1", "-0.1", "half", "1.5"]) {
      expect(() => loadConfig({ HERALD_RATE_LIMIT_HIGH_SHARE: bad }, "production")).toThrow(
        `HERALD_RATE_LIMIT_HIGH_SHARE: expected a number in [0, 1), got "${bad}"`,
      );
    }
  });
});
