import { describe, expect, it } from "vitest";
import { createKeyLanes } from "../../src/workers/key-lanes.js";

/** A promise resolved from outside, to decide exactly when each task finishes. */
function gate() {
  let open!: () => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("key lanes", () => {
  it("runs one key's tasks strictly in order and different keys side by side", async () => {
    const lanes = createKeyLanes();
    const keys = Array.from({ length: 60 }, (_, i) => `user-${i % 4}`);
    const started: number[] = [];
    const running = new Map<string, number>();
    let maxPerKey = 0;
    let maxAtOnce = 0;
    await Promise.all(
      keys.map((key, i) =>
        lanes.run(key, async () => {
          started.push(i);
          running.set(key, (running.get(key) ?? 0) + 1);
          maxPerKey = Math.max(maxPerKey, running.get(key)!);
          maxAtOnce = Math.max(maxAtOnce, [...running.values()].reduce((a, b) => a + b, 0));
          // Uneven durations, so keys overtake each other.
          await new Promise((r) => setTimeout(r, (i * 7) % 5));
          running.set(key, running.get(key)! - 1);
        }),
      ),
    );
    expect(maxPerKey).toBe(1);
    expect(maxAtOnce).toBe(4);
    for (let k = 0; k < 4; k++) {
      const mine = started.filter((i) => keys[i] === `user-${k}`);
      expect(mine).toEqual([...mine].sort((a, b) => a - b));
      expect(mine).toHaveLength(15);
    }
    // Keys really overtook each other.
    expect(started).not.toEqual([...Array(60).keys()]);
  });

  it("keeps a key's order across tasks queued at different times, while an earlier one still runs", async () => {
    const lanes = createKeyLanes();
    const first = gate();
    const order: string[] = [];
    const a1 = lanes.run("a", async () => {
      order.push("a1 start");
      await first.promise;
      order.push("a1 end");
    });
    await tick();
    // Queued later (as from the next fetched batch): waits for a1, while b runs at once.
    const a2 = lanes.run("a", async () => void order.push("a2"));
    const b1 = lanes.run("b", async () => void order.push("b1"));
    await b1;
    expect(order).toEqual(["a1 start", "b1"]);
    first.open();
    await Promise.all([a1, a2]);
    expect(order).toEqual(["a1 start", "b1", "a1 end", "a2"]);
  });

  it("settles a failed task's turn and lets the next one of its key decide for itself", async () => {
    const lanes = createKeyLanes();
    const failing = gate();
    const failed = lanes.run("a", () => failing.promise);
    let ran = false;
    const next = lanes.run("a", async () => void (ran = true));
    failing.fail(new Error("boom"));
    await expect(failed).resolves.toBeUndefined();
    await next;
    expect(ran).toBe(true);
  });

  it("forgets a key once its last task settled", async () => {
    const lanes = createKeyLanes();
    const g = gate();
    const t = lanes.run("a", () => g.promise);
    void lanes.run("b", async () => {});
    expect(lanes.size).toBe(2);
    await tick();
    expect(lanes.size).toBe(1);
    g.open();
    await t;
    await tick();
    expect(lanes.size).toBe(0);
  });
});
