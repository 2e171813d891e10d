import { describe, expect, it } from "vitest";
import { createGroupCommit } from "../../src/store/group-commit.js";

/** A flush the test finishes by hand; records every batch it was given and how many ran at once. */
function manualFlush() {
  const batches: { items: number[]; finish(): void }[] = [];
  let running = 0;
  let mostAtOnce = 0;
  return {
    batches,
    get mostAtOnce() {
      return mostAtOnce;
    },
    flush: (items: readonly number[]): Promise<PromiseSettledResult<number>[]> => {
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      return new Promise((resolve) => {
        batches.push({
          items: [...items],
          finish() {
            running--;
            resolve(items.map((value) => ({ status: "fulfilled", value: value * 10 })));
          },
        });
      });
    },
  };
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe("group commit", () => {
  it("with one flush in flight, what arrives meanwhile waits and goes out as one batch", async () => {
    const f = manualFlush();
    const gc = createGroupCommit<number, number>({ maxBatch: 100, maxDelayMs: 1, flush: f.flush, closedError: () => new Error("closed") });
    const first = gc.submit(1);
    await tick(5);
    expect(f.batches).toHaveLength(1);
    const later = [gc.submit(2), gc.submit(3)];
    await tick(5);
    expect(f.batches).toHaveLength(1); // still waiting on the first
    f.batches[0]!.finish();
    await tick();
    expect(f.batches.map((b) => b.items)).toEqual([[1], [2, 3]]);
    f.batches[1]!.finish();
    expect(await Promise.all([first, ...later])).toEqual([10, 20, 30]);
    expect(f.mostAtOnce).toBe(1);
  });

  it("with maxInFlight 2, a second batch starts while the first still commits, never a third", async () => {
    const f = manualFlush();
    const gc = createGroupCommit<number, number>({
      maxBatch: 100,
      maxDelayMs: 1,
      maxInFlight: 2,
      flush: f.flush,
      closedError: () => new Error("closed"),
    });
    const a = gc.submit(1);
    await tick(5);
    const b = gc.submit(2);
    await tick(5);
    expect(f.batches.map((x) => x.items)).toEqual([[1], [2]]);
    const c = [gc.submit(3), gc.submit(4)];
    await tick(5);
    expect(f.batches).toHaveLength(2); // two in flight: the third batch waits
    // The second finishing first settles its own caller at once, and frees a slot.
    f.batches[1]!.finish();
    expect(await b).toBe(20);
    await tick();
    expect(f.batches.map((x) => x.items)).toEqual([[1], [2], [3, 4]]);
    f.batches[0]!.finish();
    f.batches[2]!.finish();
    expect(await Promise.all([a, ...c])).toEqual([10, 30, 40]);
    expect(f.mostAtOnce).toBe(2);
  });

  it("close() flushes what waits and waits for every flush in flight", async () => {
    const f = manualFlush();
    const gc = createGroupCommit<number, number>({ maxBatch: 100, maxDelayMs: 1_000, maxInFlight: 2, flush: f.flush, closedError: () => new Error("closed") });
    const a = gc.submit(1);
    let closed = false;
    const closing = gc.close().then(() => (closed = true));
    await tick();
    expect(f.batches.map((x) => x.items)).toEqual([[1]]);
    expect(closed).toBe(false);
    f.batches[0]!.finish();
    await closing;
    expect(await a).toBe(10);
    await expect(gc.submit(2)).rejects.toThrow("closed");
  });
});
