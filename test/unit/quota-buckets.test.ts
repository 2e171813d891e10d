import { describe, expect, it } from "vitest";
import { decide, memoryBuckets } from "../../src/server/quota/buckets.js";

describe("token buckets (GCRA)", () => {
  const quota = { perSecond: 10, burst: 5 };

  it("grants a full burst at once, then one token per interval, and says how long to wait", async () => {
    let now = 1_000_000;
    const take = memoryBuckets({ now: () => now });
    const results: number[] = [];
    for (let i = 0; i < 6; i++) results.push(await take("t", quota, 1));
    // 5 taken, the 6th must wait one interval (100 ms at 10/s).
    expect(results).toEqual([0, 0, 0, 0, 0, 100]);
    now += 100;
    expect(await take("t", quota, 1)).toBe(0);
    expect(await take("t", quota, 1)).toBe(100);
  });

  it("takes a multi-token call whole or not at all; a refusal spends nothing", () => {
    const now = 5_000;
    // 3 of 5 spent: a take of 3 needs one more token (100 ms); a take of 2 still fits.
    let tat = decide(0, now, quota, 3);
    expect(tat).toEqual({ wait: 0, tat: now + 300 });
    const refused = decide((tat as { tat: number }).tat, now, quota, 3);
    expect(refused).toEqual({ wait: 100 });
    tat = decide((tat as { tat: number }).tat, now, quota, 2);
    expect(tat).toEqual({ wait: 0, tat: now + 500 });
  });

  it("keeps buckets apart by key and refills after an idle spell no further than the burst", async () => {
    let now = 0;
    const take = memoryBuckets({ now: () => now });
    for (let i = 0; i < 5; i++) expect(await take("a", quota, 1)).toBe(0);
    expect(await take("a", quota, 1)).toBeGreaterThan(0);
    expect(await take("b", quota, 5)).toBe(0);
    now += 60_000;
    expect(await take("a", quota, 5)).toBe(0);
    expect(await take("a", quota, 1)).toBe(100);
  });
});
