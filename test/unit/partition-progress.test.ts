import { describe, expect, it } from "vitest";
import { createPartitionProgress } from "../../src/workers/partition-progress.js";

describe("partition progress", () => {
  it("commits nothing before anything is taken on", () => {
    expect(createPartitionProgress().next()).toBeUndefined();
  });

  it("is the lowest unfinished offset, whatever order offsets finish in, across batches", () => {
    const p = createPartitionProgress();
    for (const o of ["10", "11", "12"]) expect(p.admit(o)).toBe(true);
    expect(p.next()).toBe("10");
    p.finish("11");
    expect(p.next()).toBe("10"); // 10 still runs: never passed
    // The next batch is taken on while 10 runs.
    for (const o of ["13", "14"]) p.admit(o);
    p.finish("14");
    p.finish("10");
    expect(p.next()).toBe("12");
    p.finish("12");
    expect(p.next()).toBe("13");
    p.finish("13");
    expect(p.next()).toBe("15");
  });

  it("commits past the last record when offsets have gaps", () => {
    const p = createPartitionProgress();
    p.admit("5");
    p.admit("9");
    p.finish("9");
    expect(p.next()).toBe("5");
    p.finish("5");
    expect(p.next()).toBe("10");
  });

  it("refuses offsets it already took on (a refetch from the committed offset after a rejoin)", () => {
    const p = createPartitionProgress();
    for (const o of ["0", "1", "2", "3"]) p.admit(o);
    p.finish("0");
    p.finish("2");
    // Refetched from the committed offset 1: 1 and 3 still run here, 2 is finished.
    expect(["1", "2", "3"].map((o) => p.admit(o))).toEqual([false, false, false]);
    expect(p.admit("4")).toBe(true);
    expect(p.next()).toBe("1");
  });

  it("throws on finishing an offset twice or one never taken on", () => {
    const p = createPartitionProgress();
    p.admit("1");
    p.finish("1");
    expect(() => p.finish("1")).toThrow(/already finished/);
    expect(() => p.finish("7")).toThrow(/not taken on/);
  });
});
