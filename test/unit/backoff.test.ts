import { describe, expect, it } from "vitest";
import { backoffCeilingMs, backoffMs } from "../../src/loop/backoff.js";

const opts = { baseMs: 1000, capMs: 300_000 };
/** Just below 1: the top of Math.random's range. */
const top = 1 - Number.EPSILON;

describe("backoff", () => {
  it("doubles the ceiling with every attempt, from baseMs, until capMs", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((a) => backoffCeilingMs(a, opts))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000,
    ]);
    expect(backoffCeilingMs(1000, opts)).toBe(300_000);
    expect(backoffCeilingMs(Number.MAX_SAFE_INTEGER, { baseMs: 1, capMs: 5 })).toBe(5);
  });

  it("treats attempts below 1 as the first", () => {
    expect(backoffCeilingMs(0, opts)).toBe(1000);
    expect(backoffCeilingMs(-3, opts)).toBe(1000);
  });

  it("draws the whole interval [0, ceiling] from the injected random source", () => {
    expect(backoffMs(3, opts, () => 0)).toBe(0);
    expect(backoffMs(3, opts, () => 0.5)).toBe(2000);
    expect(backoffMs(3, opts, () => top)).toBe(4000);
    expect(backoffMs(12, opts, () => top)).toBe(300_000);
    expect(backoffMs(12, opts, () => 0.25)).toBe(75_000);
    // A faulty source returning 1 still stays within the ceiling.
    expect(backoffMs(2, opts, () => 1)).toBe(2000);
  });

  it("returns whole milliseconds within bounds, growing with the attempt, for any draw", () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    for (let attempt = 1; attempt <= 12; attempt++) {
      const draws = Array.from({ length: 200 }, () => backoffMs(attempt, opts, random));
      for (const d of draws) {
        expect(Number.isInteger(d)).toBe(true);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(backoffCeilingMs(attempt, opts));
      }
      // Full jitter: the draws spread over the interval, not a slice of it.
      expect(Math.max(...draws)).toBeGreaterThan(backoffCeilingMs(attempt, opts) * 0.8);
      expect(Math.min(...draws)).toBeLessThan(backoffCeilingMs(attempt, opts) * 0.2);
    }
  });
});
